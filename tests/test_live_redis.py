"""NOTIF_LIVE_REDIS_URL: live events (every in-app publish, every web process's subscriptions) on a Redis of
their own, so a burst of them does not share the broker's server; the broker, locks and counters stay on
REDIS_URL. A second real redis-server, on a port of the test's own."""
import asyncio
import json

import pytest
import redis as redis_lib

from faults import OwnRedis
from helpers import wait_until
from notif.config import load_settings
from notif.deliver import deliver
from notif.models import Delivery, Notification
from notif.redis_keys import user_channel
from notif.runtime import Runtime
from notif.web.app import LiveState


@pytest.fixture
def live_server(tmp_path):
    server = OwnRedis(tmp_path)
    yield server
    server.close()


@pytest.fixture
def live_settings(env, live_server):
    return load_settings({**env, "NOTIF_LIVE_REDIS_URL": live_server.url}, use_state=False)


def subscribed(client: redis_lib.Redis, channel: str):
    pubsub = client.pubsub()
    pubsub.subscribe(channel)
    wait_until(lambda: pubsub.get_message(timeout=0.1), 5, message="the subscription")  # its confirmation
    return pubsub


def published(pubsub):
    """The next published message (not a subscribe confirmation), or None."""
    message = pubsub.get_message(timeout=0.5)
    return message if message and message["type"] == "message" else None


def test_an_in_app_delivery_is_published_on_the_live_redis_and_not_on_the_shared_one(live_settings, live_server,
                                                                                       redis_server):
    rt = Runtime.start(live_settings)
    channel = user_channel(live_settings, "ana")
    live_client = redis_lib.Redis.from_url(live_server.url)  # (kept: a client closes its pool when collected)
    live = subscribed(live_client, channel)
    shared = subscribed(redis_server, channel)
    try:
        n = Notification.create(user_id="ana", key="k-live", title="Hi", message="there", priority="high",
                                correlation_id="cid-live")
        d = Delivery.create(notification=n, channel="in_app")
        assert deliver(rt, d.id) == "sent"
        event = wait_until(lambda: published(live), 5, message="the event on the live Redis")
        assert json.loads(event["data"])["notification"]["id"] == n.id
        # anything notif had published on the shared Redis came before this: the first message there is ours
        redis_server.publish(channel, "sentinel")
        first = wait_until(lambda: published(shared), 5, message="the sentinel")
        assert first["data"] == b"sentinel"
        assert rt.redis.connection_pool.connection_kwargs["port"] == 6379  # the broker's, counters', locks' Redis
    finally:
        live.close()
        live_client.close()
        shared.close()
        rt.redis.close()
        rt.live_redis.close()


def test_a_web_process_subscribes_for_its_streams_on_the_live_redis(live_settings, live_server, redis_server):
    async def scenario():
        state = LiveState(live_settings)
        try:
            hub = await state.hub()
            await hub.subscribe("ana", expires=2**31)
            channel = user_channel(live_settings, "ana")
            live = redis_lib.Redis.from_url(live_server.url)
            assert dict(live.pubsub_numsub(channel)) == {channel.encode(): 1}
            assert dict(redis_server.pubsub_numsub(channel)) == {channel.encode(): 0}
            live.close()
        finally:
            await state.close()

    asyncio.run(scenario())


def test_readiness_checks_the_live_redis_too(app_client, live_server):
    client = app_client(NOTIF_LIVE_REDIS_URL=live_server.url)
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["live_redis"] == "ok"
    live_server.kill()
    down = client.get("/readyz")
    assert down.status_code == 503
    checks = down.json()["checks"]
    assert checks["live_redis"].startswith("error") and checks["redis"] == "ok"
