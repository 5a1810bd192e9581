"""Assembling the poller process: logging, the broker it sends to, heartbeat, metrics."""
from __future__ import annotations

import signal
import threading

from ..config import Settings
from ..logs import configure_logging
from ..monitoring.exposition import serve as serve_metrics
from ..monitoring.heartbeat import Heartbeat
from ..worker.tasks import producer
from .poller import Poller

DEFAULT_METRICS_PORT = 9301


def run_poller(settings: Settings, install_signals: bool = True) -> None:
    """``notif poll``: receive until SIGTERM/SIGINT, then hand off what was received and stop."""
    stop = threading.Event()
    if install_signals:  # first: a stop asked for while starting up is a clean stop too
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    configure_logging(settings.log_format, settings.log_level, process="poller")
    tasks = producer(settings)
    serve_metrics(settings.metrics_port or DEFAULT_METRICS_PORT, "poller")
    heartbeat = Heartbeat(tasks.broker.client, settings, "poller").start()
    try:
        Poller(settings, tasks.broker.client, tasks.send_ingest, stop).run(install_signals=False)
    finally:
        heartbeat.stop()
