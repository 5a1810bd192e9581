"""The fence around Dramatiq's internals: ``enqueue_many`` writes what ``broker.enqueue`` writes.

``notif.worker.broker.enqueue_many`` calls Dramatiq's private dispatch script itself (one
round trip for many messages). If a Dramatiq release changes that script or its argument
order, these tests fail here instead of deliveries going wrong in production.
"""
from __future__ import annotations

import json
import uuid

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker

from notif.worker import broker as broker_mod
from notif.worker.broker import enqueue_many, pipelining_supported

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def brokers(redis_prefix, redis_server):
    made = [RedisBroker(url=REDIS_URL, namespace=f"{redis_prefix}:{side}") for side in ("one-by-one", "pipelined")]
    yield made
    for b in made:
        b.close()


def messages(broker: RedisBroker, n: int = 25) -> list[dramatiq.Message]:
    """The same messages (same ids, times, options) on both brokers' queues."""
    fixed = []
    for i in range(n):
        queue = ("notif.deliver.high", "notif.deliver.normal", "notif.deliver.low")[i % 3]
        broker.declare_queue(queue)
        fixed.append(dramatiq.Message(queue_name=queue, actor_name=f"deliver_{queue.rsplit('.', 1)[1]}",
                                      args=(i,), kwargs={}, options={"retries": 0},
                                      message_id=str(uuid.UUID(int=i)), message_timestamp=1_700_000_000_000 + i))
    return fixed


def redis_state(broker: RedisBroker) -> dict:
    """Everything Dramatiq keeps in Redis for the broker's namespace, with its random ids taken out."""
    client, ns = broker.client, broker.namespace
    state: dict = {}
    for raw in sorted(client.scan_iter(f"{ns}:*")):
        key = raw.decode()[len(ns) + 1:]
        kind = client.type(raw).decode()
        if key.endswith(".msgs"):  # redis_message_id -> encoded message
            continue
        if kind == "list":  # a queue: redis message ids in order -> the messages in that order
            msgs = client.hgetall(raw + b".msgs")
            order = [json.loads(msgs[i]) for i in client.lrange(raw, 0, -1)]
            for m in order:
                m["options"].pop("redis_message_id")
            state[key] = order
        elif kind == "zset":  # heartbeats, acks: members are this broker's random id
            state[key] = ("zset", client.zcard(raw))
        elif kind == "set":
            state[key] = ("set", client.scard(raw))
        else:
            state[key] = kind
    return state


def test_enqueue_many_leaves_redis_as_broker_enqueue_does(brokers):
    one, piped = brokers
    assert pipelining_supported(piped), "this Dramatiq is not the one enqueue_many was checked against"
    for message in messages(one):
        one.enqueue(message)
    enqueue_many(piped, messages(piped))
    expected = redis_state(one)
    assert len(expected["notif.deliver.high"]) == 9  # the state was read: 25 messages over three queues
    assert redis_state(piped) == expected


def test_an_unchecked_dramatiq_enqueues_one_at_a_time(brokers, monkeypatch, caplog):
    one, piped = brokers
    monkeypatch.setattr(broker_mod, "CHECKED_DISPATCH", "another dramatiq")
    broker_mod._supported.cache_clear()
    try:
        assert not pipelining_supported(piped)
        for message in messages(one):
            one.enqueue(message)
        enqueue_many(piped, messages(piped))
        assert redis_state(piped) == redis_state(one)
        assert "enqueued one at a time" in caplog.text
    finally:
        broker_mod._supported.cache_clear()


@pytest.mark.parametrize("setting, polls_every, high_polls_every", [(None, 100, 10), ("20", 20, 2), ("0", 5000, 5000)])
def test_a_lull_is_polled_at_most_notif_worker_idle_poll_ms_apart(redis_prefix, redis_server, setting, polls_every,
                                                                  high_polls_every):
    """Dramatiq's consumer backs off on an empty queue up to the idle timeout it is given (1 s from a worker): a
    HIGH message arriving after a lull waited up to that long. notif's broker caps it for every queue, wrapped
    (the LOW gate, a HIGH lane's deference) or not; HIGH's queues ten times as often."""
    from notif.config import load_settings
    from notif.worker.broker import make_broker

    env = {"REDIS_URL": REDIS_URL, "NOTIF_REDIS_PREFIX": redis_prefix}
    if setting is not None:
        env["NOTIF_WORKER_IDLE_POLL_MS"] = setting
    broker = make_broker(load_settings(env, use_state=False))
    broker.low_gate.cap = 2
    try:
        for queue in ("notif.high", "notif.low", "notif.deliver.normal"):
            consumer = broker.consume(queue, prefetch=4, timeout=5000)
            expected = high_polls_every if queue == "notif.high" else polls_every
            assert getattr(consumer, "inner", consumer).timeout == expected, queue
            consumer.close()
    finally:
        broker.close()
