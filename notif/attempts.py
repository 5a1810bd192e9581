"""The attempt log: each try at sending a delivery, when it ran and what came of it.

Written where attempts are counted: :func:`notif.deliver.deliver` (one row per try that
claimed the delivery, once its outcome is known; :mod:`notif.deliver_many` writes a batch's
sent ones in one INSERT) and the outbox sweeper (a try whose worker
died mid-send, found when its lease expired). The bulk paths that deliver many rows in one
UPDATE (``deliver_batch`` for an ingest batch's in-app rows, ``deliver_copies`` for a fan-out
chunk's) write none: their rows are fresh (no try before), so each has exactly one, which
succeeded at its ``sent_at`` — the trace shows it from there (:func:`derived`), and a topic
message to a million costs no second million rows. A row is one INSERT after the state
change; a lost row (the database gone between the two) loses a line of history, never a
delivery.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import NamedTuple

import peewee

from . import delivery_states as states
from .models import Delivery, DeliveryAttempt, isoformat, utcnow

log = logging.getLogger(__name__)

SENT = "sent"
TRANSIENT = "transient_error"  # retried later (or, the last allowed, the delivery gave up: failed)
PERMANENT = "permanent_error"  # never retried: the delivery failed
SKIPPED = "skipped"  # the channel had nothing to send to
SHADOW = "shadow"  # shadow mode: recorded, not sent
RATE_LIMITED = "rate_limited"  # deferred to its reserved slot; not counted against the retry policy
ABANDONED = "abandoned"  # its worker stopped mid-send; the sweeper put it back
OUTCOMES = (SENT, TRANSIENT, PERMANENT, SKIPPED, SHADOW, RATE_LIMITED, ABANDONED)

MAX_ERROR = 1000  # characters of an error kept per attempt
MAX_SHOWN = 50  # attempts the trace shows per delivery (the latest)


def record(delivery_id: int, attempt: int, outcome: str, started_at: dt.datetime | None,
           error: str | None = None, finished_at: dt.datetime | None = None) -> None:
    """Log one attempt (best effort: a failure is logged, never raised)."""
    try:
        DeliveryAttempt.insert(delivery=delivery_id, attempt=attempt, started_at=started_at,
                               finished_at=finished_at or utcnow(), outcome=outcome,
                               error=None if error is None else error[:MAX_ERROR]).execute()
    except peewee.DatabaseError:
        log.warning("could not log a delivery attempt", extra={"delivery_id": delivery_id, "attempt": attempt,
                                                                "outcome": outcome}, exc_info=True)


class Attempt(NamedTuple):
    """One try to log (:func:`record_many`)."""

    delivery_id: int
    attempt: int
    outcome: str
    started_at: dt.datetime | None
    error: str | None
    finished_at: dt.datetime


def record_many(tries: Sequence[Attempt]) -> None:
    """Log several attempts in one multi-row INSERT (``deliver_many``'s sent ones); best effort, as :func:`record`."""
    if not tries:
        return
    try:
        DeliveryAttempt.insert_many([
            {"delivery": t.delivery_id, "attempt": t.attempt, "started_at": t.started_at, "finished_at": t.finished_at,
             "outcome": t.outcome, "error": None if t.error is None else t.error[:MAX_ERROR]} for t in tries]).execute()
    except peewee.DatabaseError:
        log.warning("could not log delivery attempts", extra={"delivery_ids": [t.delivery_id for t in tries][:50]},
                    exc_info=True)


def of(delivery_ids: list[int]) -> dict[int, list[dict]]:
    """The logged attempts of these deliveries, oldest first (the latest :data:`MAX_SHOWN` each)."""
    found: dict[int, list[dict]] = {}
    if not delivery_ids:
        return found
    query = (DeliveryAttempt.select().where(DeliveryAttempt.delivery.in_(delivery_ids))
             .order_by(DeliveryAttempt.delivery, DeliveryAttempt.id))
    for row in query:
        found.setdefault(row.delivery_id, []).append({
            "attempt": row.attempt, "started_at": isoformat(row.started_at), "finished_at": isoformat(row.finished_at),
            "outcome": row.outcome, "error": row.error, "logged": True})
    return {delivery_id: rows[-MAX_SHOWN:] for delivery_id, rows in found.items()}


def derived(delivery: Delivery, logged: list[dict]) -> list[dict]:
    """``logged`` with the try a bulk path made and did not log: a sent delivery whose log has no
    ``sent`` row was sent in bulk, by its last counted attempt, at ``sent_at``."""
    if delivery.status != states.SENT or delivery.sent_at is None or any(a["outcome"] == SENT for a in logged):
        return logged
    return [*logged, {"attempt": max(delivery.attempts, 1), "started_at": None,
                      "finished_at": isoformat(delivery.sent_at), "outcome": SENT, "error": None, "logged": False}]
