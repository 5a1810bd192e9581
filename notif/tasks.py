"""Dramatiq actors and their broker (a worker runs them through :mod:`notif.actors`).

Two actors per priority, each on a Redis queue of its own: Dramatiq's ``priority`` option
only orders work inside one process, so separate queues are what keep a LOW flood out of
HIGH's path.

- ``ingest_<priority>(messages)`` on ``notif.<priority>``: a batch of up to 10 SQS
  messages → stored notifications. The poller meters these queues (backpressure, weights).
- ``deliver_<priority>(delivery_id)`` on ``notif.deliver.<priority>``: one delivery row →
  its channel.

Inside a worker process HIGH work is taken before NORMAL before LOW (the ``priority``
option); LOW cannot starve because the poller stops admitting HIGH batches while the
shared ingest backlog is full, which leaves the workers the LOW batches already queued.
"""
from __future__ import annotations

import logging
import threading
import uuid

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis

from . import deliver as deliver_mod
from . import ingest as ingest_mod
from .config import PRIORITIES, Settings, load_settings
from .db import database
from .errors import PermanentError
from .keys import deliver_queue, dramatiq_namespace, ingest_queue
from .logs import configure_logging
from .runtime import Runtime
from .sqs import Received

log = logging.getLogger(__name__)

INGEST_RETRIES = 8
DELIVER_RETRIES = 30  # a safety net: the channel's retry policy decides, counting attempts in the database


PROCESS_PRIORITY = {"high": 0, "normal": 10, "low": 20}  # lower runs first within a worker




def make_broker(settings: Settings) -> RedisBroker:
    broker = RedisBroker(
        url=settings.require("redis_url"),
        namespace=dramatiq_namespace(settings),
        heartbeat_timeout=settings.broker_heartbeat_timeout_ms,
        socket_timeout=10,
        socket_connect_timeout=5,
    )
    return broker


settings = load_settings()
configure_logging(settings.log_format, settings.log_level, process="worker")
broker = make_broker(settings)
dramatiq.set_broker(broker)

_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime.start(settings)
        return _runtime


def _retry_when(limit: int):
    def retry_when(retries: int, exc: BaseException) -> bool:
        return not isinstance(exc, PermanentError) and retries < limit
    return retry_when


def enqueue_deliveries(pending: list[tuple[int, str]]) -> None:
    """One ``deliver`` message per (delivery id, priority), in one Redis round trip."""
    if pending:
        enqueue_many(broker, [DELIVER[priority].message(delivery_id) for delivery_id, priority in pending])


def enqueue_many(broker: RedisBroker, messages: list[dramatiq.Message]) -> None:
    """``RedisBroker.enqueue`` for many messages, pipelined.

    The same Redis writes as Dramatiq's own enqueue (its dispatch script, its arguments, its
    middleware hooks), sent in one round trip instead of one each: an ingest batch queues
    10 to 1,000 deliveries, and a round trip per message was a third of ingest's time (see
    docs/benchmarks.md). Falls back to one enqueue each if a Dramatiq release changes the
    broker's internals.
    """
    try:
        dispatch, maintenance, unpack = (broker.scripts["dispatch"], broker._should_do_maintenance,
                                         broker._max_unpack_size)
    except (AttributeError, KeyError):
        for message in messages:
            broker.enqueue(message)
        return
    pipe = broker.client.pipeline(transaction=False)
    ready = []
    for message in messages:
        message = message.copy(options={"redis_message_id": str(uuid.uuid4())})
        broker.emit_before("enqueue", message, None)
        dispatch(keys=[broker.namespace], client=pipe, args=[
            "enqueue", current_millis(), message.queue_name, broker.broker_id, broker.heartbeat_timeout,
            broker.dead_message_ttl, maintenance("enqueue"), unpack(),
            message.options["redis_message_id"], message.encode()])
        ready.append(message)
    pipe.execute()
    for message in ready:
        broker.emit_after("enqueue", message, None)


def _ingest(messages: list[dict]) -> None:
    rt = runtime()
    with database.connection_context():
        ingest_mod.ingest_batch(rt, [Received.from_json(m) for m in messages], enqueue_deliveries,
                                deliver_now=deliver_mod.deliver_batch)


def _deliver(delivery_id: int) -> None:
    rt = runtime()
    with database.connection_context():
        try:
            deliver_mod.deliver(rt, delivery_id)
        except deliver_mod.RetryLater as retry:
            # the channel's policy chose the delay (backoff with jitter, Retry-After honoured)
            raise dramatiq.Retry(str(retry), delay=int(retry.delay * 1000)) from None


def _actor(fn, name: str, queue: str, priority: str, retries: int, time_limit_ms: int):
    return dramatiq.actor(
        fn,
        actor_name=name,
        queue_name=queue,
        priority=PROCESS_PRIORITY[priority],
        max_retries=retries,
        min_backoff=1_000,
        max_backoff=300_000,
        retry_when=_retry_when(retries),
        time_limit=time_limit_ms,
    )


INGEST = {p: _actor(_ingest, f"ingest_{p}", ingest_queue(p), p, INGEST_RETRIES, 120_000) for p in PRIORITIES}
DELIVER = {p: _actor(_deliver, f"deliver_{p}", deliver_queue(p), p, DELIVER_RETRIES, 60_000) for p in PRIORITIES}
