"""Metrics of a Dramatiq worker: its processes write, one fork serves the sum.

``dramatiq notif.actors`` starts worker processes (and forks) from a main process. Each
child keeps its figures in Prometheus multi-process mode, in a directory named after that
main process (:func:`metrics_dir`); one fork (:func:`serve`) exposes the sum on
``NOTIF_METRICS_PORT`` (default 9191).

prometheus_client and Dramatiq's Prometheus middleware take that directory from the
environment and nowhere else (``PROMETHEUS_MULTIPROC_DIR``, ``dramatiq_prom_db``), so
:func:`use_multiprocess_storage` sets it there — called by the worker's assembly and by
the fork, never at import.
"""
from __future__ import annotations

import logging
import os
import tempfile
import threading

from dramatiq.middleware.prometheus import Prometheus
from prometheus_client import CollectorRegistry, multiprocess, start_http_server, values

from ..config import load_settings

log = logging.getLogger(__name__)

DEFAULT_PORT = 9191


def metrics_dir() -> str:
    """The same for every child of one Dramatiq main process."""
    return os.path.join(tempfile.gettempdir(), f"notif-worker-metrics-{os.getppid()}")


def use_multiprocess_storage() -> str:
    """Put this process's Prometheus figures in :func:`metrics_dir`, shared with its siblings."""
    path = metrics_dir()
    os.makedirs(path, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path  # prometheus_client's only way to be told
    values.ValueClass = values.get_value_class()  # metrics made from now on write to files there
    return path


class WorkerMetrics(Prometheus):
    """Dramatiq's Prometheus middleware (dramatiq_* figures), in notif's directory, served by :func:`serve`."""

    @property
    def forks(self):
        return [serve]

    def after_process_boot(self, broker) -> None:
        use_multiprocess_storage()
        super().after_process_boot(broker)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir()  # Dramatiq's own choice, replaced by ours

    def after_worker_shutdown(self, broker, worker) -> None:
        multiprocess.mark_process_dead(os.getpid(), metrics_dir())


def serve() -> int:
    """A Dramatiq fork: serve the worker's summed metrics until stopped."""
    use_multiprocess_storage()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=metrics_dir())
    port = load_settings().metrics_port or DEFAULT_PORT
    try:
        start_http_server(port, registry=registry)
    except OSError as exc:
        log.warning("worker metrics port %s unavailable: %s", port, exc)
        return 0
    threading.Event().wait()  # until the fork is terminated
    return 0
