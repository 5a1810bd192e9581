"""The Dramatiq Redis broker, and the one place notif reaches into Dramatiq's internals.

:func:`enqueue_many` sends many messages in one Redis round trip by calling Dramatiq's own
dispatch script the way :meth:`RedisBroker.enqueue` does. That argument order is private
to Dramatiq, so it is fenced twice:

- setup.cfg pins the Dramatiq versions this was checked against, and
  ``tests/worker/test_broker.py`` checks that ``enqueue_many`` leaves Redis in the same
  state as ``broker.enqueue`` for the same messages (an upgrade that changes the script
  fails a test, not production);
- at run time, :func:`pipelining_supported` compares a fingerprint of Dramatiq's dispatch
  code (the Lua script and the Python that orders its arguments) with the one checked
  here; on any other Dramatiq it enqueues one message at a time, correct if slower, and
  says so once in the log.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import uuid
from collections.abc import Sequence

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis

from ..config import Settings
from ..redis_client import sync_client
from ..redis_keys import dramatiq_namespace
from .lanes import HIGH_QUEUES, DeferringConsumer, LaneWatch
from .low_gate import LOW_QUEUES, GatedConsumer, LowGate

log = logging.getLogger(__name__)

#: sha256 of Dramatiq's dispatch.lua and of RedisBroker._dispatch's source, as checked (Dramatiq 2.2)
CHECKED_DISPATCH = "1978af11ccfadf069caaa1a3b6c4db424f203c2f6ae8b927dd2998609e8f7e15"


class NotifBroker(RedisBroker):
    """Dramatiq's Redis broker whose LOW queues' consumers go through :attr:`low_gate`
    (:mod:`notif.worker.low_gate`; no cap until a worker sets one at boot) and, in a general
    worker, whose HIGH queues' consumers defer to a live HIGH lane (:attr:`lane_watch`,
    :mod:`notif.worker.lanes`)."""

    def __init__(self, idle_poll_ms: int = 1000, **options) -> None:
        super().__init__(**options)
        self.idle_poll_ms = idle_poll_ms
        self.low_gate = LowGate()
        self.lane_watch: LaneWatch | None = None

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000):
        # Dramatiq's consumer polls an empty queue with a backoff that doubles up to `timeout` (the worker's,
        # 1 s): a message arriving in a lull waited up to that long for its first fetch. Capped here; HIGH's
        # queues poll ten times as often (10 to 20 Redis calls a second more per idle queue at the default),
        # for HIGH's latency after every lull (at 10 messages a second, every message comes after one).
        if self.idle_poll_ms > 0:
            timeout = min(timeout, self.idle_poll_ms)
        fetch_every = max(1, timeout // 10) if queue_name in HIGH_QUEUES and self.idle_poll_ms > 0 else timeout
        if queue_name in HIGH_QUEUES and self.lane_watch is not None:  # (deferring, it checks the lane less often)
            return DeferringConsumer(super().consume(queue_name, prefetch, fetch_every), self.lane_watch, timeout)
        if queue_name in HIGH_QUEUES:
            return super().consume(queue_name, prefetch, fetch_every)
        cap = self.low_gate.cap
        if cap is None or queue_name not in LOW_QUEUES:
            return super().consume(queue_name, prefetch, timeout)
        # prefetch counts the messages in progress too: at most the cap waits in this process per LOW queue
        return GatedConsumer(super().consume(queue_name, min(prefetch, cap), timeout), self.low_gate, timeout)


def make_broker(settings: Settings) -> NotifBroker:
    """The broker every notif process uses (workers consume; the poller and scheduler enqueue)."""
    # a client, not url= plus options: given url=, RedisBroker builds its pool from the URL
    # alone and drops every other option (timeouts, TLS)
    return NotifBroker(
        client=sync_client(settings, health_check_interval=0, retry_on_timeout=False),
        namespace=dramatiq_namespace(settings),
        heartbeat_timeout=settings.broker_heartbeat_timeout_ms,
        idle_poll_ms=settings.worker_idle_poll_ms,
    )


def dispatch_fingerprint(broker: RedisBroker) -> str:
    """What :func:`enqueue_many` depends on in this Dramatiq: its dispatch script and argument order."""
    digest = hashlib.sha256()
    digest.update(broker.scripts["dispatch"].script.encode() if isinstance(broker.scripts["dispatch"].script, str)
                  else broker.scripts["dispatch"].script)
    digest.update(inspect.getsource(RedisBroker._dispatch).encode())
    return digest.hexdigest()


@functools.cache
def _supported(fingerprint: str) -> bool:
    if fingerprint == CHECKED_DISPATCH:
        return True
    log.warning("this Dramatiq's dispatch code is not the one notif was checked against; deliveries are "
                "enqueued one at a time (correct, slower): pin dramatiq as setup.cfg does",
                extra={"dramatiq": dramatiq.__version__, "fingerprint": fingerprint})
    return False


def pipelining_supported(broker: RedisBroker) -> bool:
    try:
        return _supported(dispatch_fingerprint(broker))
    except (AttributeError, KeyError, OSError, TypeError):  # the internals moved: do it the public way
        return _supported("unreadable")


def enqueue_many(broker: RedisBroker, messages: Sequence[dramatiq.Message]) -> None:
    """``RedisBroker.enqueue`` for many messages, pipelined.

    The same Redis writes as Dramatiq's own enqueue (its dispatch script, its arguments, its
    middleware hooks), sent in one round trip instead of one each: an ingest batch queues
    10 to 1,000 deliveries, and a round trip per message was a third of ingest's time (see
    docs/benchmarks.md).
    """
    if not pipelining_supported(broker):
        for message in messages:
            broker.enqueue(message)
        return
    dispatch = broker.scripts["dispatch"]
    pipe = broker.client.pipeline(transaction=False)
    ready = []
    for message in messages:
        message = message.copy(options={"redis_message_id": str(uuid.uuid4())})
        broker.emit_before("enqueue", message, None)
        dispatch(keys=[broker.namespace], client=pipe, args=[
            "enqueue", current_millis(), message.queue_name, broker.broker_id, broker.heartbeat_timeout,
            broker.dead_message_ttl, broker._should_do_maintenance("enqueue"), broker._max_unpack_size(),
            message.options["redis_message_id"], message.encode()])
        ready.append(message)
    pipe.execute()
    for message in ready:
        broker.emit_after("enqueue", message, None)
