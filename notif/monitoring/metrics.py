"""Prometheus metrics: every family notif exports, in one place (a leaf module).

Counters and histograms are bumped through :mod:`notif.monitoring.record`, never directly,
so each event also reaches the rolling counters of ``notif stats``. Queue depths, dead
letters and live processes are read when Prometheus scrapes
(:class:`notif.monitoring.exposition.SnapshotCollector`). In the worker the figures are
kept in Prometheus multi-process mode (:mod:`notif.worker.metrics`) and summed on exposition.
"""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
                     "withdrawn: its notification was retracted or expired first, "
                     "shadow: shadow mode, not sent)",
                     ["channel", "outcome"])
DELIVERY_LATENCY = Histogram("notif_delivery_latency_seconds",
                             "End to end: SQS SentTimestamp to the channel's success", ["priority", "channel"],
                             buckets=LATENCY_BUCKETS)
SLA_BREACHES = Counter("notif_sla_breaches_total", "Deliveries slower end to end than their priority's SLA target",
                       ["priority"])
DIGESTS = Counter("notif_digests_total", "Digest windows closed, by outcome (sent: several items grouped, "
                  "single: one item sent as it was, empty: every item cancelled)", ["outcome"])
TOPIC_MESSAGES = Counter("notif_topic_messages_total", "Topic messages recorded, by outcome (running: fanning out; "
                         "unknown_topic, empty_topic: acknowledged, for no one)", ["outcome"])
FANOUT_STORED = Counter("notif_fanout_notifications_total", "Notifications stored by topic fan-outs", ["priority"])
FANOUT_CHUNK_SECONDS = Histogram("notif_fanout_chunk_seconds", "Time one fan-out chunk's transaction took",
                                 ["priority"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
DIGEST_ITEMS = Counter("notif_digest_items_total", "Notifications folded into digests")
ESCALATIONS = Counter("notif_escalations_total", "Escalations settled by the leading scheduler, by outcome (escalated: "
                      "sent on its escalation channels; read: read in time, nothing sent; withdrawn: retracted or "
                      "expired first)", ["outcome"])
RETENTION_DELETED = Counter("notif_retention_deleted_total",
                            "Rows the retention pass deleted (NOTIF_RETENTION_DAYS), by table: notifications, "
                            "deliveries, digests, cancellations, amendments, attempts", ["table"])
RETENTION_PASS = Histogram("notif_retention_pass_seconds", "Time one retention pass took (the leading scheduler)",
                           buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300))
WEBHOOKS = Counter("notif_webhooks_total", "Webhook attempts by event type and outcome (sent: the receiver answered "
                   "2xx; retry: a transient failure, tried again later; failed: dead-lettered)", ["event", "outcome"])
WEBHOOK_LATENCY = Histogram("notif_webhook_latency_seconds",
                            "From the event to the receiver's 2xx (retries included), by event type", ["event"],
                            buckets=LATENCY_BUCKETS)
WEBHOOK_REQUEST = Histogram("notif_webhook_request_seconds", "One webhook attempt's HTTP round trip, by event type",
                            ["event"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
SSE_CONNECTIONS = Gauge("notif_sse_connections", "Open SSE streams on this web process", multiprocess_mode="livesum")
SSE_REPLAY_QUERIES = Counter("notif_sse_replay_queries_total",
                             "Database statements run to replay missed events to SSE streams (a batch of reconnects "
                             "shares them: two per batch on PostgreSQL)")
SSE_REPLAYED_STREAMS = Counter("notif_sse_replayed_streams_total",
                               "SSE streams that replayed missed events (Last-Event-ID, or after Redis came back)")
