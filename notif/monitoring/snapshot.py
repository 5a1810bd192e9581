"""The read side of monitoring: how things stand, for `notif stats`, /readyz and /metrics.

Rates come from the rolling counters that :mod:`notif.monitoring.record` writes; depths
from SQS and Redis; dead letters from the DLQ and the deliveries and webhook events tables; what is held on
purpose from the database; processes from their heartbeats. Nothing here writes.
"""
from __future__ import annotations

import time

from .. import delivery_states as states
from ..config import PRIORITIES, Settings
from ..db import database
from ..models import Delivery, Digest, Notification, WebhookEvent
from ..redis_keys import deliver_queue, dramatiq_messages_key, ingest_queue, stats_counter, webhook_queue
from ..sqs import client_for
from ..webhooks import states as webhook_states
from .heartbeat import live_processes
from .record import BUCKET_SECONDS, COUNTERS

WINDOWS = (1, 5, 15)  # minutes


def rates_of(redis_client, settings: Settings) -> dict:
    """Totals per counter over the last 1, 5 and 15 minutes (to within a 10-second bucket)."""
    now = int(time.time() // BUCKET_SECONDS)
    per_minute = 60 // BUCKET_SECONDS
    span = max(WINDOWS) * per_minute
    keys = [stats_counter(settings, name, now - b) for name in COUNTERS for b in range(span)]
    values = [int(v or 0) for v in redis_client.mget(keys)]
    out: dict[str, dict[str, int | float]] = {}
    for w in WINDOWS:
        window: dict[str, int | float] = {}
        for i, name in enumerate(COUNTERS):
            start = i * span
            window[name] = sum(values[start:start + w * per_minute])
        done = window["sent"] + window["delivery_failed"]
        window["error_rate"] = round(window["delivery_failed"] / done, 4) if done else 0.0
        out[f"{w}m"] = window
    return out


def _sqs_depths(settings: Settings) -> dict:
    client = client_for(settings)
    out: dict[str, dict[str, int] | None] = {}
    for name, attribute in (*[(p, f"queue_{p}") for p in PRIORITIES], ("dead_letter", "queue_dead_letter")):
        url = getattr(settings, attribute)
        if not url:
            out[name] = None
            continue
        try:
            attrs = client.get_queue_attributes(QueueUrl=url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
            out[name] = {"visible": int(attrs["ApproximateNumberOfMessages"]),
                         "in_flight": int(attrs["ApproximateNumberOfMessagesNotVisible"])}
        except Exception:
            out[name] = None
    return out


def _dramatiq_depths(redis_client, settings: Settings) -> dict:
    queues = [ingest_queue(p) for p in PRIORITIES] + [deliver_queue(p) for p in PRIORITIES] + [webhook_queue()]
    pipe = redis_client.pipeline(transaction=False)
    for q in queues:
        pipe.hlen(dramatiq_messages_key(settings, q))
    return dict(zip(queues, pipe.execute(), strict=True))


def _failed_deliveries() -> int | None:
    try:
        with database.connection_context():
            return Delivery.select().where(Delivery.status == states.FAILED).count()
    except Exception:
        return None


def _failed_webhooks() -> int | None:
    try:
        with database.connection_context():
            return WebhookEvent.select().where(WebhookEvent.status == webhook_states.FAILED).count()
    except Exception:
        return None


def _held() -> dict | None:
    """What waits on purpose: scheduled sends, rate-limit deferrals, open digest windows."""
    try:
        with database.connection_context():
            open_windows = Digest.open_key.is_null(False)
            return {"scheduled": Delivery.select().where(Delivery.status == states.SCHEDULED).count(),
                    "deferred": Delivery.select().where(Delivery.status == states.DEFERRED).count(),
                    "digest_windows": Digest.select().where(open_windows).count(),
                    "digest_items": Notification.select().join(Digest, on=(Notification.digest_id == Digest.id))
                    .where(open_windows).count()}
    except Exception:
        return None


def snapshot(settings: Settings, redis_client, rates: bool = True) -> dict:
    """Everything `notif stats` shows (``rates=False``: what /metrics needs, without the rates)."""
    sqs = _sqs_depths(settings)
    dlq = sqs.get("dead_letter")
    snap = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sqs": sqs,
        "dramatiq": _dramatiq_depths(redis_client, settings),
        "dead_letters": {"input": None if dlq is None else dlq["visible"] + dlq["in_flight"],
                         "delivery": _failed_deliveries(), "webhook": _failed_webhooks()},
        "held": _held(),
        "features": settings.feature_states(),
        "shadow": settings.shadow,
        "processes": live_processes(redis_client, settings),
    }
    if rates:
        snap["rates"] = rates_of(redis_client, settings)
    return snap
