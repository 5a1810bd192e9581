"""Prometheus metrics: every family notif exports, in one place.

Counters and histograms are updated where the work happens (poller, ingest, deliver, web).
Queue depths, dead letters and live processes are read when Prometheus scrapes, from a
:class:`SnapshotCollector` over :func:`notif.stats.snapshot`. In the worker the figures are
kept in Prometheus multi-process mode (see :mod:`notif.actors`) and summed on exposition.
"""
from __future__ import annotations

import logging

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600)

RECEIVED = Counter("notif_messages_received_total", "SQS messages received by the poller", ["priority"])
PROCESSED = Counter("notif_messages_processed_total",
                    "SQS messages ingest is done with, by outcome (stored, duplicate, dead_lettered, retry)",
                    ["priority", "outcome"])
PROCESSING = Histogram("notif_message_processing_seconds",
                       "Time ingest took for a message (its batch: validate, render, commit, dead-letter, delete)",
                       ["priority"])
ERRORS = Counter("notif_errors_total", "Errors by stage (ingest, deliver, poll), kind (transient, permanent) and type",
                 ["stage", "kind", "error"])
DELIVERIES = Counter("notif_deliveries_total",
                     "Deliveries by channel and outcome (sent, failed, retry, skipped, deferred: over a rate limit, "
                     "shadow: shadow mode, not sent)",
                     ["channel", "outcome"])
DELIVERY_LATENCY = Histogram("notif_delivery_latency_seconds",
                             "End to end: SQS SentTimestamp to the channel's success", ["priority", "channel"],
                             buckets=LATENCY_BUCKETS)
SLA_BREACHES = Counter("notif_sla_breaches_total", "Deliveries slower end to end than their priority's SLA target",
                       ["priority"])
DIGESTS = Counter("notif_digests_total", "Digest windows closed, by outcome (sent: several items grouped, "
                  "single: one item sent as it was, empty: every item cancelled)", ["outcome"])
DIGEST_ITEMS = Counter("notif_digest_items_total", "Notifications folded into digests")
SSE_CONNECTIONS = Gauge("notif_sse_connections", "Open SSE streams on this web process", multiprocess_mode="livesum")


class SnapshotCollector:
    """Queue depths, dead letters and processes, read from SQS, Redis and the database at scrape time."""

    def __init__(self, settings, redis_client) -> None:
        self.settings, self.redis = settings, redis_client

    def collect(self):
        from .stats import snapshot
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
        dead = GaugeMetricFamily("notif_dead_letters", "Dead letters: inputs on the SQS DLQ, failed deliveries",
                                 labels=["kind"])
        for kind, count in snap["dead_letters"].items():
            if count is not None:
                dead.add_metric([kind], count)
        yield dead
        alive = GaugeMetricFamily("notif_processes_alive", "Processes whose heartbeat is fresh, by kind",
                                  labels=["kind"])
        for kind in ("web", "poller", "worker", "scheduler"):
            alive.add_metric([kind], sum(1 for p in snap["processes"] if p["kind"] == kind and p["alive"]))
        yield alive


_collector_registered = False


def register_snapshot(settings, redis_client) -> None:
    global _collector_registered
    if not _collector_registered:
        REGISTRY.register(SnapshotCollector(settings, redis_client))
        _collector_registered = True


def serve(port: int, what: str) -> None:
    """Expose this process's metrics on ``port`` (0: not at all); a taken port is a warning, not a crash."""
    if not port:
        return
    try:
        start_http_server(port)
        log.info("metrics exposed", extra={"port": port, "process_type": what})
    except OSError as exc:
        log.warning("metrics port unavailable; this process's metrics are not exposed",
                    extra={"port": port, "error": str(exc)})
