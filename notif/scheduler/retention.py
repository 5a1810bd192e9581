"""Retention: the database stays bounded (``NOTIF_RETENTION_DAYS``, default 90; ``0`` keeps everything).

Once a minute the leading scheduler deletes notifications created more than that many days
ago, with their deliveries (and their deliveries' attempt log, by its foreign key's ON DELETE
CASCADE), in small batches (one short transaction each, oldest first, by
the ``created_at`` index), so no pass holds locks or bloats a transaction for long. A
notification that still owes a delivery (``pending``, ``sending``, ``scheduled``,
``deferred``: :data:`notif.delivery_states.OWED`), is an item of a digest window still
open, or has an escalation still pending is never deleted, however old; the check is
repeated in the DELETE itself, so a delivery replayed from the dead letters meanwhile keeps its notification. Attempts logged
that long ago go too, a batch a pass by id (oldest first), even of a delivery still owed:
one that never settles (its worker dies on it every time) cannot grow the log forever. Closed digest
windows past the same age go too, and webhook events sent or purged that long ago (a pending
one or a dead letter stays until it is handled); remembered cancels and updates/retracts are forgotten
after their ``KEEP_DAYS`` whatever the setting. Each pass is one metric observation and one
log line (docs/runbook.md › Retention, with the PostgreSQL maintenance it implies).
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from typing import cast

from peewee import fn

from .. import delivery_states as states
from .. import escalations
from ..db import database
from ..models import Amendment, Cancellation, Delivery, DeliveryAttempt, Digest, Notification, WebhookEvent, utcnow
from ..monitoring.record import Recorder
from ..webhooks import states as webhook_states

log = logging.getLogger(__name__)

INTERVAL = 60.0  # seconds between passes
BATCH = 1000  # notifications per transaction
MAX_BATCHES = 100  # per pass: a backlog is worked off over several passes, never in one long one


def _deletable(cutoff: dt.datetime):
    """Notifications older than ``cutoff`` that owe nothing."""
    owed = Delivery.select(Delivery.id).where((Delivery.notification == Notification.id)
                                              & Delivery.status.in_(list(states.OWED)))
    open_window = Digest.select(Digest.id).where((Digest.id == Notification.digest_id) & Digest.closed_at.is_null())
    return ((Notification.created_at < cutoff) & ~fn.EXISTS(owed) & ~fn.EXISTS(open_window)
            & ~fn.EXISTS(escalations.pending_of(Notification.id)))


def prune(recorder: Recorder | None, days: int, batch: int = BATCH, max_batches: int = MAX_BATCHES,
          now: dt.datetime | None = None) -> dict[str, int]:
    """One retention pass; returns the rows deleted by table."""
    started = time.monotonic()
    now = now or utcnow()
    counts = dict.fromkeys(("notifications", "deliveries", "digests", "cancellations", "amendments", "attempts",
                            "webhook_events"), 0)
    if days > 0:
        cutoff = now - dt.timedelta(days=days)
        for _ in range(max_batches):
            with database.atomic():
                # (peewee's stubs type a .tuples() query's rows as model instances: the cast says what they are)
                ids = [i for (i,) in cast("list[tuple[int]]", list(
                    Notification.select(Notification.id).where(_deletable(cutoff))
                    .order_by(Notification.created_at).limit(batch).tuples()))]
                if not ids:
                    break
                counts["deliveries"] += Delivery.delete().where(
                    Delivery.notification.in_(ids) & Delivery.status.not_in(list(states.OWED))).execute()
                counts["notifications"] += Notification.delete().where(
                    Notification.id.in_(ids) & _deletable(cutoff)).execute()
            if len(ids) < batch:
                break
        old_windows = Digest.select(Digest.id).where(Digest.closed_at.is_null(False) & (Digest.closed_at < cutoff))
        counts["digests"] = Digest.delete().where(Digest.id.in_(old_windows.limit(batch * 10))).execute()
        oldest = DeliveryAttempt.select(DeliveryAttempt.id).order_by(DeliveryAttempt.id).limit(batch)
        counts["attempts"] = DeliveryAttempt.delete().where(
            DeliveryAttempt.id.in_(oldest) & (DeliveryAttempt.finished_at < cutoff)).execute()
        # webhook events sent or purged that long ago (pending ones and dead letters stay until handled)
        old_events = WebhookEvent.select(WebhookEvent.id).where(
            WebhookEvent.status.in_([webhook_states.SENT, webhook_states.DISCARDED]) & (WebhookEvent.updated_at < cutoff))
        counts["webhook_events"] = WebhookEvent.delete().where(
            WebhookEvent.id.in_(old_events.limit(batch * 10))).execute()
    counts["cancellations"] = Cancellation.delete().where(
        Cancellation.created_at < now - dt.timedelta(days=Cancellation.KEEP_DAYS)).execute()
    counts["amendments"] = Amendment.delete().where(
        Amendment.created_at < now - dt.timedelta(days=Amendment.KEEP_DAYS)).execute()
    seconds = time.monotonic() - started
    if recorder is not None:
        recorder.pruned(counts, seconds)
    log.info("retention pass", extra={**counts, "retention_days": days, "duration_ms": round(seconds * 1000, 1)})
    return counts
