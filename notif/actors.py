"""The worker entry point: ``dramatiq notif.actors``.

Imports the actors (:mod:`notif.tasks`) after putting this worker process's metrics in
Prometheus multi-process mode (:mod:`notif.worker_metrics`), and adds the middleware that
serves them, counts Dramatiq's own figures and keeps a heartbeat. Other processes import
:mod:`notif.tasks` directly and keep ordinary single-process metrics.
"""
from __future__ import annotations

from .worker_metrics import enable_multiprocess

enable_multiprocess()  # before anything imports prometheus_client: it picks its storage then

from dramatiq.middleware.prometheus import Prometheus  # noqa: E402

from .heartbeat import WorkerHeartbeat  # noqa: E402
from .tasks import DELIVER, INGEST, broker  # noqa: E402,F401


class WorkerMetrics(Prometheus):
    """Dramatiq's Prometheus middleware (dramatiq_* figures), served by notif's own fork."""

    @property
    def forks(self):
        from .worker_metrics import serve
        return [serve]


broker.add_middleware(WorkerMetrics())
broker.add_middleware(WorkerHeartbeat())
