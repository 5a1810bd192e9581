"""Metrics of a Dramatiq worker: its processes write, one fork serves the sum.

``dramatiq notif.actors`` starts worker processes (and forks) from a main process that
imports nothing of ours; each child puts prometheus_client in multi-process mode in a
directory named after that main process, before anything imports prometheus_client.
One fork process (:func:`serve`) exposes the sum on ``NOTIF_METRICS_PORT`` (default 9191).
"""
from __future__ import annotations

import os
import tempfile
import threading

DEFAULT_PORT = 9191


def metrics_dir() -> str:
    """The same for every child of one Dramatiq main process."""
    return os.path.join(tempfile.gettempdir(), f"notif-worker-metrics-{os.getppid()}")


def enable_multiprocess() -> str:
    path = metrics_dir()
    os.makedirs(path, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    os.environ["dramatiq_prom_db"] = path  # where Dramatiq's own Prometheus middleware writes
    return path


def serve() -> int:
    """A Dramatiq fork: serve the worker's summed metrics until stopped."""
    import logging

    enable_multiprocess()
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    port = int(os.environ.get("NOTIF_METRICS_PORT") or DEFAULT_PORT)
    try:
        start_http_server(port, registry=registry)
    except OSError as exc:
        logging.getLogger(__name__).warning("worker metrics port %s unavailable: %s", port, exc)
        return 0
    threading.Event().wait()  # until the fork is terminated
    return 0
