"""Dramatiq middleware of notif's worker (besides :class:`notif.worker.metrics.WorkerMetrics`)."""
from __future__ import annotations

import logging

from dramatiq.middleware import Middleware

from ..config import Settings
from ..monitoring.heartbeat import Heartbeat
from ..redis_client import sync_client
from .lanes import LaneBeacon, LaneWatch, role
from .low_gate import LOW_QUEUES, low_threads

log = logging.getLogger(__name__)


class WorkerHeartbeat(Middleware):
    """A heartbeat for each worker process, from boot to shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.heartbeat: Heartbeat | None = None

    def after_worker_boot(self, broker, worker) -> None:
        self.heartbeat = Heartbeat(sync_client(self.settings), self.settings, "worker").start()

    def before_worker_shutdown(self, broker, worker) -> None:
        if self.heartbeat:
            self.heartbeat.stop()


class LowThreadsCap(Middleware):
    """Sets this worker process's LOW cap (:mod:`notif.worker.low_gate`) from its thread count at boot,
    before its consumers start, and says what it chose in the log."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def before_worker_boot(self, broker, worker) -> None:
        gate = getattr(broker, "low_gate", None)
        queues = set(worker.consumer_whitelist or ())
        if gate is None or (queues and not queues & LOW_QUEUES):  # a stub broker, or a worker without LOW
            return
        gate.cap = low_threads(self.settings.low_threads, worker.worker_threads)
        log.info("LOW work holds at most %s of %d threads", "all" if gate.cap is None else gate.cap,
                 worker.worker_threads, extra={"low_threads": gate.cap, "threads": worker.worker_threads})


class HighLane(Middleware):
    """A HIGH lane announces itself while it runs; a general worker watches for one and leaves HIGH
    to it (:mod:`notif.worker.lanes`). The role comes from the worker's ``--queues``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.beacon: LaneBeacon | None = None

    def before_worker_boot(self, broker, worker) -> None:
        kind = role(set(worker.consumer_whitelist or ()))
        if kind == "general" and self.settings.leave_high_to_lane and hasattr(broker, "lane_watch"):
            broker.lane_watch = LaneWatch(sync_client(self.settings), self.settings)
            log.info("HIGH is left to a HIGH lane while one runs", extra={"leave_high_to_lane": True})

    def after_worker_boot(self, broker, worker) -> None:
        if role(set(worker.consumer_whitelist or ())) == "lane":
            self.beacon = LaneBeacon(sync_client(self.settings), self.settings).start()
            log.info("this worker is a HIGH lane")

    def before_worker_shutdown(self, broker, worker) -> None:
        if self.beacon:
            self.beacon.stop()  # general workers take HIGH again at once
