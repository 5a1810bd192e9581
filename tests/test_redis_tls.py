"""Redis over TLS with a self-signed certificate (Heroku Redis): NOTIF_REDIS_TLS_VERIFY, NOTIF_REDIS_TLS_CA.

A real redis-server speaking only TLS (tests/tls_redis.py). The clients are the ones
notif.redis_client makes; end to end, every process runs against that server.
"""
from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
import redis

from helpers import SSE, free_port, wait_until
from notif.auth import make_token
from notif.config import load_settings
from notif.errors import ConfigError
from notif.redis_client import async_client, sync_client, tls_options
from tls_redis import self_signed_certificate, start_tls_redis, stop_tls_redis


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    server = start_tls_redis(tmp_path_factory.mktemp("tls-redis"))
    yield server
    stop_tls_redis(server)


def settings_for(url: str, **variables: str):
    return load_settings({"REDIS_URL": url, **variables}, use_state=False)


def round_trip(client: redis.Redis) -> bytes:
    key = f"notif-tls-{uuid.uuid4().hex}"
    try:
        client.set(key, "over tls", ex=60)
        return client.get(key)
    finally:
        client.close()


async def async_round_trip(client) -> bytes:
    key = f"notif-tls-{uuid.uuid4().hex}"
    try:
        await client.set(key, "over tls", ex=60)
        return await client.get(key)
    finally:
        await client.aclose()


def assert_unverified(excinfo) -> None:
    assert isinstance(excinfo.value, redis.ConnectionError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(excinfo.value)


# -- the clients notif makes -----------------------------------------------------------
def test_by_default_a_self_signed_server_is_refused(tls_redis):
    settings = settings_for(tls_redis.url)
    assert settings.redis_tls_verify == "required" and settings.redis_tls_ca is None
    with pytest.raises(redis.ConnectionError) as excinfo:
        round_trip(sync_client(settings))
    assert_unverified(excinfo)
    with pytest.raises(redis.ConnectionError) as excinfo:
        asyncio.run(async_round_trip(async_client(settings)))
    assert_unverified(excinfo)


@pytest.mark.parametrize("value", ["none", "NONE", " none "])
def test_verify_none_connects_sync_and_async(tls_redis, value):
    settings = settings_for(tls_redis.url, NOTIF_REDIS_TLS_VERIFY=value)
    assert settings.redis_tls_verify == "none"
    assert round_trip(sync_client(settings)) == b"over tls"
    assert asyncio.run(async_round_trip(async_client(settings))) == b"over tls"


def test_the_server_certificate_as_ca_connects_with_verification_required(tls_redis):
    settings = settings_for(tls_redis.url, NOTIF_REDIS_TLS_CA=str(tls_redis.cert))
    assert settings.redis_tls_verify == "required"
    assert round_trip(sync_client(settings)) == b"over tls"
    assert asyncio.run(async_round_trip(async_client(settings))) == b"over tls"


def test_a_ca_that_did_not_sign_the_server_certificate_is_refused(tls_redis, tmp_path):
    other, _ = self_signed_certificate(tmp_path, "other")
    settings = settings_for(tls_redis.url, NOTIF_REDIS_TLS_CA=str(other))
    with pytest.raises(redis.ConnectionError) as excinfo:
        round_trip(sync_client(settings))
    assert_unverified(excinfo)


def test_the_health_checks_own_timeouts_keep_the_tls_options(tls_redis):
    settings = settings_for(tls_redis.url, NOTIF_REDIS_TLS_VERIFY="none")
    client = sync_client(settings, socket_timeout=2, socket_connect_timeout=2)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (2, 2)
    assert round_trip(client) == b"over tls"


def test_a_plain_redis_url_gets_no_tls_options():
    for verify in ("required", "none"):
        settings = settings_for("redis://127.0.0.1:6379/0", NOTIF_REDIS_TLS_VERIFY=verify, NOTIF_REDIS_TLS_CA="/x.pem")
        assert tls_options(settings) == {}


@pytest.mark.parametrize("value", ["optional", "false", "no", "verify"])
def test_a_bad_verify_value_is_a_config_error_naming_the_variable(value):
    with pytest.raises(ConfigError) as excinfo:
        settings_for("rediss://127.0.0.1:6379/0", NOTIF_REDIS_TLS_VERIFY=value)
    message = str(excinfo.value)
    assert "NOTIF_REDIS_TLS_VERIFY" in message and repr(value) in message
    assert "required" in message and "none" in message


# -- end to end ------------------------------------------------------------------------
@pytest.mark.e2e
def test_every_process_runs_against_a_self_signed_tls_redis(tls_redis, processes, env, sqs, queues):
    """SQS → poller → broker → worker → inbox and the live stream, all through Redis over TLS."""
    processes.env.update({"REDIS_URL": tls_redis.url, "NOTIF_REDIS_TLS_VERIFY": "none",
                          "NOTIF_HEARTBEAT_SECONDS": "0.5"})
    for start in (processes.start_worker, processes.start_poller, processes.start_scheduler):
        processes.env["NOTIF_METRICS_PORT"] = str(free_port())
        start()
    processes.env.pop("NOTIF_METRICS_PORT")
    base = processes.start_web()
    assert processes.procs["web"].poll() is None, processes.log("web")  # (not another process on a reused port)

    user = f"tls-{uuid.uuid4().hex[:6]}"
    token = make_token(env["NOTIF_JWT_SECRET"], user)
    with httpx.Client(base_url=base, timeout=httpx.Timeout(10, read=60)) as http:
        # every process is alive, as its heartbeat in the TLS Redis says; /readyz reaches Redis over TLS too
        kinds = {"worker", "poller", "scheduler", "web"}
        seen: dict = {}

        def missing() -> set:
            seen["readyz"] = body = http.get("/readyz").json()
            alive = {kind for kind, p in body.get("processes", {}).items() if p["alive"]}
            seen["missing"] = kinds - alive if body["status"] == "ready" else kinds  # ready: Redis reached too
            return seen["missing"]

        try:
            wait_until(lambda: not missing(), 60, 0.2, "/readyz ready and every process's heartbeat in the TLS Redis")
        except AssertionError as exc:
            logs = "\n".join(f"--- {kind}:\n{processes.log(kind)[-1500:]}" for kind in sorted(seen.get("missing", kinds)))
            raise AssertionError(f"{exc}\nlast /readyz: {seen.get('readyz')}\n{logs}") from None
        assert seen["readyz"]["checks"]["redis"] == "ok"

        with http.stream("GET", "/events", params={"token": token}) as response:
            assert response.status_code == 200, response.read()
            sse = SSE(response)
            sse.until_comment("connected")  # subscribed (over TLS) before anything is sent
            sqs.send_message(QueueUrl=queues["normal"], MessageBody=json.dumps(
                {"id": "tls-1", "user_id": user, "title": "Over TLS", "message": "hello"}))
            event = sse.next()
        assert event["event"] == "notification"
        live = json.loads(event["data"])
        assert live["title"] == "Over TLS" and live["unread_count"] == 1

        inbox = wait_until(lambda: http.get("/api/notifications",
                                            headers={"Authorization": f"Bearer {token}"}).json()["items"],
                           30, 0.2, "the notification in the inbox")
    assert [(n["id"], n["title"], n["message"]) for n in inbox] == [(int(event["id"]), "Over TLS", "hello")]

    # the work went through the TLS server: the processes' keys are there
    check = tls_redis.client()
    try:
        assert check.exists(f"{env['NOTIF_REDIS_PREFIX']}:processes")
    finally:
        check.close()
