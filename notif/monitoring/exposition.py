"""Serving a process's /metrics, and the figures read only when Prometheus scrapes.

Queue depths, dead letters and live processes are not counted as they happen: a
:class:`SnapshotCollector` reads them from SQS, Redis and the database at scrape time
(:func:`notif.monitoring.snapshot.snapshot`). One process per deployment registers it (the
scheduler), so a scrape does not ask SQS once per process.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import REGISTRY, start_http_server
from prometheus_client.core import GaugeMetricFamily

from ..config import Settings
from .snapshot import snapshot

log = logging.getLogger(__name__)

PROCESS_KINDS = ("web", "poller", "worker", "scheduler")


class SnapshotCollector:
    """Queue depths, dead letters and processes, read from SQS, Redis and the database at scrape time."""

    def __init__(self, settings: Settings, redis_client) -> None:
        self.settings, self.redis = settings, redis_client

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            snap = snapshot(self.settings, self.redis, rates=False)
        except Exception:
            log.warning("could not collect the queue snapshot for /metrics", exc_info=True)
            return
        sqs = GaugeMetricFamily("notif_sqs_queue_messages", "Approximate messages on each SQS queue",
                                labels=["queue", "state"])
        for queue, counts in snap["sqs"].items():
            if counts is not None:
                sqs.add_metric([queue, "visible"], counts["visible"])
                sqs.add_metric([queue, "in_flight"], counts["in_flight"])
        yield sqs
        dramatiq = GaugeMetricFamily("notif_dramatiq_queue_messages", "Messages in each Dramatiq queue in Redis",
                                     labels=["queue"])
        for queue, count in snap["dramatiq"].items():
            dramatiq.add_metric([queue], count)
        yield dramatiq
        dead = GaugeMetricFamily("notif_dead_letters", "Dead letters: inputs on the SQS DLQ, failed deliveries, failed "
                                 "webhook events",
                                 labels=["kind"])
        for kind, count in snap["dead_letters"].items():
            if count is not None:
                dead.add_metric([kind], count)
        yield dead
        alive = GaugeMetricFamily("notif_processes_alive", "Processes whose heartbeat is fresh, by kind",
                                  labels=["kind"])
        for kind in PROCESS_KINDS:
            alive.add_metric([kind], sum(1 for p in snap["processes"] if p["kind"] == kind and p["alive"]))
        yield alive


def register_snapshot(settings: Settings, redis_client, registry=REGISTRY) -> SnapshotCollector:
    """Add the scrape-time figures to this process's metrics (once per process)."""
    collector = SnapshotCollector(settings, redis_client)
    registry.register(collector)
    return collector


def serve(port: int, what: str) -> None:
    """Expose this process's metrics on ``port`` (0: not at all); a taken port is a warning, not a crash."""
    if not port:
        return
    try:
        start_http_server(port)
        log.info("metrics exposed", extra={"port": port, "metrics_of": what})
    except OSError as exc:
        log.warning("metrics port unavailable; this process's metrics are not exposed",
                    extra={"port": port, "error": str(exc)})
