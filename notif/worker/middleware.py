"""Dramatiq middleware of notif's worker (besides :class:`notif.worker.metrics.WorkerMetrics`)."""
from __future__ import annotations

from dramatiq.middleware import Middleware

from ..config import Settings
from ..monitoring.heartbeat import Heartbeat
from ..redis_client import sync_client


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
