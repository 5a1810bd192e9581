"""Assembling the worker: settings, logging, metrics storage, broker, actors, middleware.

``dramatiq notif.actors`` imports :mod:`notif.actors`, which calls :func:`build_worker`
once in each worker process; nothing else assembles a worker. The actors' runtime
(database, channels, templates, Redis) starts on the first message a process takes.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping

import dramatiq

from ..config import Settings, load_settings
from ..logs import configure_logging
from ..runtime import Runtime
from .broker import make_broker
from .metrics import WorkerMetrics, use_multiprocess_storage
from .middleware import HighLane, LowThreadsCap, WorkerHeartbeat
from .tasks import Tasks, declare


class LazyRuntime:
    """The worker process's :class:`Runtime`, started when the first message needs it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._runtime: Runtime | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Runtime:
        with self._lock:
            if self._runtime is None:
                self._runtime = Runtime.start(self.settings)
            return self._runtime


def build_worker(environ: Mapping[str, str] | None = None) -> Tasks:
    """The worker of this process, set as Dramatiq's broker for the ``dramatiq`` command."""
    settings = load_settings(environ)
    configure_logging(settings.log_format, settings.log_level, process="worker")
    use_multiprocess_storage()
    broker = make_broker(settings)
    tasks = declare(broker, LazyRuntime(settings), settings.deliver_batch)
    broker.add_middleware(WorkerMetrics())
    broker.add_middleware(WorkerHeartbeat(settings))
    broker.add_middleware(LowThreadsCap(settings))
    broker.add_middleware(HighLane(settings))
    dramatiq.set_broker(broker)
    return tasks
