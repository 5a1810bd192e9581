"""Recording what happened: one call per event, its Prometheus figure and its rolling counter.

The rolling counters behind ``notif stats`` are 10-second buckets in Redis
(:func:`notif.redis_keys.stats_counter`, kept two hours), summed by
:func:`notif.monitoring.snapshot.rates`. Prometheus counts per process; the buckets count
for the whole deployment. Recording is best effort: a statistic never fails the work.

    recorder = Recorder(RollingCounters(redis_client, settings))
    recorder.delivery("push", "sent")
    with recorder.batched() as batch:      # many events, one Redis round trip
        for ...: batch.delivery("in_app", "sent")
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter as Tally
from collections.abc import Iterator

from ..config import Settings
from ..redis_keys import stats_counter
from . import metrics

log = logging.getLogger(__name__)

COUNTERS = ("received", "stored", "duplicate", "dead_lettered", "ingest_retry", "sent", "delivery_failed",
            "delivery_retry", "deferred", "digested", "shadow", "sla_breach_high", "sla_breach_normal", "sla_breach_low")
KEEP_SECONDS = 2 * 3600
BUCKET_SECONDS = 10

#: a delivery outcome (the ``outcome`` label of notif_deliveries_total) → its rolling counter
DELIVERY_COUNTER = {"sent": "sent", "failed": "delivery_failed", "retry": "delivery_retry", "deferred": "deferred",
                    "shadow": "shadow", "skipped": None, "withdrawn": None}


class RollingCounters:
    """The write side of ``notif stats``'s rates: add to the current bucket."""

    def __init__(self, redis_client, settings: Settings) -> None:
        self.redis, self.settings = redis_client, settings

    def add(self, counts: dict[str, int]) -> None:
        bucket = int(time.time() // BUCKET_SECONDS)
        try:
            pipe = self.redis.pipeline(transaction=False)
            for name, n in counts.items():
                if n:
                    key = stats_counter(self.settings, name, bucket)
                    pipe.incrby(key, n)
                    pipe.expire(key, KEEP_SECONDS)
            pipe.execute()
        except Exception:  # statistics never fail the work
            log.debug("could not add to the rolling counters", exc_info=True)


class Recorder:
    """Every event notif counts, each recorded once: Prometheus and the rolling counters.

    ``counters`` may be None (a plugin test harness without Redis): Prometheus only.
    """

    def __init__(self, counters: RollingCounters | None) -> None:
        self.counters = counters
        self._pending: Tally[str] | None = None

    def _count(self, name: str | None, n: int = 1) -> None:
        if not name or not n or self.counters is None:
            return
        if self._pending is not None:
            self._pending[name] += n
        else:
            self.counters.add({name: n})

    @contextlib.contextmanager
    def batched(self) -> Iterator[Recorder]:
        """A recorder whose rolling counters go to Redis together when the block ends."""
        batch = Recorder(self.counters)
        batch._pending = Tally()
        try:
            yield batch
        finally:
            if self.counters is not None and batch._pending:
                self.counters.add(dict(batch._pending))

    # -- the poller --------------------------------------------------------------------
    def received(self, priority: str, n: int) -> None:
        """SQS messages handed to ingest."""
        metrics.RECEIVED.labels(priority).inc(n)
        self._count("received", n)

    # -- ingest ------------------------------------------------------------------------
    def ingested(self, priority: str, *, stored: int, duplicate: int, dead_letter_kinds: list[str], retry: int,
                 messages: int, seconds: float) -> None:
        """One ingest batch: messages stored, duplicated, dead-lettered (by kind), left to retry."""
        with self.batched() as batch:
            for outcome, n in (("stored", stored), ("duplicate", duplicate), ("dead_lettered", len(dead_letter_kinds)),
                               ("retry", retry)):
                if n:
                    metrics.PROCESSED.labels(priority, outcome).inc(n)
            for kind in dead_letter_kinds:
                metrics.ERRORS.labels("ingest", "permanent", kind).inc()
            if retry:
                metrics.ERRORS.labels("ingest", "transient", "database").inc(retry)
            for _ in range(messages):
                metrics.PROCESSING.labels(priority).observe(seconds)
            batch._count("stored", stored)
            batch._count("duplicate", duplicate)
            batch._count("dead_lettered", len(dead_letter_kinds))
            batch._count("ingest_retry", retry)

    # -- topics ------------------------------------------------------------------------
    def topic_message(self, outcome: str) -> None:
        """A topic message recorded: ``running`` (fanning out), ``unknown_topic`` or ``empty_topic``."""
        metrics.TOPIC_MESSAGES.labels(outcome).inc()

    def fanout_chunk(self, priority: str, stored: int, seconds: float) -> None:
        """One chunk of a fan-out committed, with the notifications it stored."""
        metrics.FANOUT_STORED.labels(priority).inc(stored)
        metrics.FANOUT_CHUNK_SECONDS.labels(priority).observe(seconds)
        self._count("stored", stored)

    # -- escalations -------------------------------------------------------------------
    def escalations(self, outcome: str, n: int = 1) -> None:
        """Escalations settled: ``escalated`` (sent on their channels), ``read`` (in time) or ``withdrawn``."""
        metrics.ESCALATIONS.labels(outcome).inc(n)

    # -- deliveries --------------------------------------------------------------------
    def delivery(self, channel: str, outcome: str, n: int = 1) -> None:
        """Deliveries of ``channel`` that ended a step as ``outcome`` (see DELIVERY_COUNTER)."""
        metrics.DELIVERIES.labels(channel, outcome).inc(n)
        self._count(DELIVERY_COUNTER[outcome], n)

    def latency(self, priority: str, channel: str, seconds: float, breached: bool) -> None:
        """End to end, SQS send (or a scheduled send's time) to the channel's success."""
        metrics.DELIVERY_LATENCY.labels(priority, channel).observe(max(0.0, seconds))
        if breached:
            metrics.SLA_BREACHES.labels(priority).inc()
            self._count(f"sla_breach_{priority}")

    def error(self, stage: str, kind: str, error: str, n: int = 1) -> None:
        """An error at ``stage`` (poll, ingest, deliver), ``kind`` transient or permanent."""
        metrics.ERRORS.labels(stage, kind, error).inc(n)

    # -- webhooks ----------------------------------------------------------------------
    def webhook(self, event: str, outcome: str, request_seconds: float | None = None,
                latency_seconds: float | None = None) -> None:
        """One attempt at a webhook event: ``sent``, ``retry`` or ``failed``; its HTTP round trip when one was
        made, and for a sent one the time since the event happened."""
        metrics.WEBHOOKS.labels(event, outcome).inc()
        if request_seconds is not None:
            metrics.WEBHOOK_REQUEST.labels(event).observe(request_seconds)
        if latency_seconds is not None:
            metrics.WEBHOOK_LATENCY.labels(event).observe(max(0.0, latency_seconds))

    # -- retention ---------------------------------------------------------------------
    def pruned(self, counts: dict[str, int], seconds: float) -> None:
        """One retention pass: rows deleted by table (notifications, deliveries, digests, …)."""
        for table, n in counts.items():
            if n:
                metrics.RETENTION_DELETED.labels(table).inc(n)
        metrics.RETENTION_PASS.observe(seconds)

    # -- digests -----------------------------------------------------------------------
    def digest_closed(self, outcome: str, items: int) -> None:
        """A digest window closed: ``sent`` (grouped), ``single`` or ``empty``; its items."""
        metrics.DIGESTS.labels(outcome).inc()
        if items:
            metrics.DIGEST_ITEMS.inc(items)
            self._count("digested", items)
