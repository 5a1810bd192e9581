"""A general worker leaves HIGH to a live HIGH lane (``NOTIF_LEAVE_HIGH_TO_LANE``, default on).

The Procfile runs a HIGH lane (``worker_high``: HIGH's queues only, a process and a GIL of its
own) beside the general ``worker``, which keeps HIGH's queues too so that HIGH is served where
no lane runs (a host that scales ``worker_high`` to 0). But a general worker that takes HIGH
messages while a lane runs does them in a process busy with a LOW flood: sharing its GIL with
the LOW threads, they take several times longer than in the lane (docs/benchmarks.md).

So each lane process announces itself in Redis (:class:`LaneBeacon`: a field ``host:pid`` in
``<prefix>:high-lanes`` with a deadline, renewed every ``NOTIF_HEARTBEAT_SECONDS``, removed
when it stops), and a general worker's HIGH consumers hand over nothing new while some lane's
deadline is ahead (:class:`DeferringConsumer`): the HIGH messages stay in Redis for the lane.
When the last lane stops, or dies and its deadline (three beats) passes, the general worker
takes HIGH again within a second. Messages it already fetched are still done; delayed
retries are not held back (they return to the HIGH queue when due, and whoever serves it
takes them). If Redis cannot say, the general worker takes HIGH (never both waiting).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time

from dramatiq.broker import Consumer, MessageProxy

from ..config import Settings
from ..monitoring.heartbeat import HashBeat
from ..redis_keys import deliver_queue, high_lanes_hash, ingest_queue

log = logging.getLogger(__name__)

HIGH_QUEUES = frozenset({ingest_queue("high"), deliver_queue("high")})
MISSED_BEATS = 3  # a lane this many beats late is taken for gone


def role(queues: set[str] | None) -> str:
    """``lane`` for a worker on HIGH's queues only, ``general`` for one on HIGH's and others
    (``queues`` None or empty: every queue), else ``other`` (a worker without HIGH)."""
    if not queues:
        return "general"
    if queues <= HIGH_QUEUES:
        return "lane"
    return "general" if queues & HIGH_QUEUES else "other"


class LaneBeacon(HashBeat):
    """Keeps this lane process's field in the lanes hash fresh (its deadline), from boot to shutdown."""

    def __init__(self, redis_client, settings: Settings) -> None:
        super().__init__(redis_client, high_lanes_hash(settings), f"{socket.gethostname()}:{os.getpid()}",
                         settings.heartbeat_seconds, "high-lane-beacon")

    def value(self) -> float:
        return time.time() + MISSED_BEATS * self.interval

    def start(self) -> LaneBeacon:
        self.beat()  # before the first message: the general workers step back at once
        return super().start()


class LaneWatch:
    """Whether some HIGH lane is alive now, read from Redis at most once a second."""

    def __init__(self, redis_client, settings: Settings, every: float = 1.0) -> None:
        self.redis, self.key, self.every = redis_client, high_lanes_hash(settings), every
        self._lock = threading.Lock()
        self._checked, self._alive = 0.0, False

    def alive(self) -> bool:
        with self._lock:
            if time.monotonic() - self._checked >= self.every:
                self._checked = time.monotonic()
                try:
                    now = time.time()
                    self._alive = any(float(until) > now for until in self.redis.hvals(self.key))
                except Exception:
                    log.warning("cannot tell whether a HIGH lane runs; taking HIGH here", exc_info=True)
                    self._alive = False
            return self._alive


class DeferringConsumer(Consumer):
    """A general worker's HIGH consumer: hands over nothing new while a lane is alive."""

    def __init__(self, inner: Consumer, watch: LaneWatch, timeout_ms: int) -> None:
        self.inner, self.watch, self.timeout = inner, watch, timeout_ms / 1000

    def __next__(self) -> MessageProxy | None:
        # what it fetched before a lane came (its cache) is still handed over, never kept back
        if self.watch.alive() and not getattr(self.inner, "message_cache", None):
            time.sleep(self.timeout)  # as an idle queue's long poll does
            return None
        return next(self.inner)

    def ack(self, message: MessageProxy) -> None:
        self.inner.ack(message)

    def nack(self, message: MessageProxy) -> None:
        self.inner.nack(message)

    def requeue(self, messages) -> None:
        self.inner.requeue(messages)

    def close(self) -> None:
        self.inner.close()
