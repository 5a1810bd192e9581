"""The outbox: one delivery row per (new notification, channel), written in the
transaction that stores the notification, so the database alone says what is owed.

A user's opt-out, a channel turned off by a feature flag, or a channel not installed is
decided here and recorded on the row (``skipped``, with why: a sentence in ``last_error``, a
:mod:`notif.reasons` code in ``reason_code``, naming the opt-out); scheduled sends start as
``scheduled``; everything else is ``pending`` and is enqueued after the commit, as a
:class:`QueuedDelivery`, through an :data:`Enqueue` (the worker's
:meth:`notif.worker.tasks.Tasks.enqueue_deliveries`).
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from . import delivery_states as states
from . import reasons
from .db import database, is_postgres
from .locales import preferences_of
from .models import Delivery, Preference
from .runtime import Runtime

log = logging.getLogger(__name__)

IN_APP = "in_app"
FLAGGED_CHANNELS = ("push", "email")  # channels a feature flag can turn off
CHUNK = 200  # rows per INSERT statement (SQLite caps bound variables per statement)


class QueuedDelivery(NamedTuple):
    """A pending delivery to hand to a ``deliver`` actor: which row, on which priority's queue."""

    delivery_id: int
    priority: str
    channel: str = ""


#: hands pending deliveries to the workers (one Dramatiq message each, in one round trip)
Enqueue = Callable[[Sequence[QueuedDelivery]], None]
#: delivers committed deliveries of one batching channel together (:func:`notif.deliver.deliver_batch`);
#: returns the ids it left for the one-at-a-time path
DeliverNow = Callable[[Runtime, list[int]], list[int]]


@dataclass(frozen=True)
class OwedDelivery:
    """A new notification that owes deliveries: one row per channel is written for it."""

    notification_id: int
    user_id: str
    priority: str
    channels: Sequence[str]
    type: str | None
    critical: bool = False  # ignores the user's opt-outs
    send_at: dt.datetime | None = None  # parked as 'scheduled' until then


def chunks(rows: list, size: int = CHUNK) -> Iterable[list]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def delivery_rows(rt: Runtime, owed: Sequence[OwedDelivery], now: dt.datetime,
                  prefs: dict[str, dict] | None = None) -> list[QueuedDelivery]:
    """Insert the outbox rows of new notifications; returns the pending ones.

    A user's opt-out or a channel not installed is recorded on the row (``skipped``, with why). ``prefs``:
    the users' preferences when the caller has read them already (ingest, for their locales), else read here.
    """
    users = list({item.user_id for item in owed})
    if prefs is None:
        prefs = preferences_of(users) if users else {}
    available = rt.channels
    rows: list[tuple[dict, str]] = []
    for item in owed:
        for channel in item.channels:
            row = {"notification": item.notification_id, "channel": channel,
                   "status": states.SCHEDULED if item.send_at else states.PENDING, "next_attempt_at": item.send_at,
                   "last_error": None, "reason_code": None, "created_at": now, "updated_at": now}  # same keys in every row
            skipped = _skip_reason(rt, prefs.get(item.user_id), item, channel, available)
            if skipped:
                row.update(status=states.SKIPPED, next_attempt_at=None, reason_code=skipped[0], last_error=skipped[1])
            rows.append((row, item.priority))
    queued: list[QueuedDelivery] = []
    for chunk in chunks(rows):
        query = Delivery.insert_many([row for row, _ in chunk]).returning(Delivery.id, Delivery.status)
        for (delivery_id, status), (row, priority) in zip(query.tuples().execute(), chunk, strict=True):
            if status == states.PENDING:
                queued.append(QueuedDelivery(delivery_id, priority, row["channel"]))
    return queued


#: one statement for a chunk of one message's notifications: each (notification, channel) gets the channel's
#: status (``c``), or ``skipped`` with the user's reason where ``o`` has one (an opt-out)
_COPY_ROWS = """
INSERT INTO notif_delivery (notification_id, channel, status, attempts, last_error, reason_code, next_attempt_at,
                            created_at, updated_at)
SELECT n.id, c.channel, CASE WHEN o.id IS NULL THEN c.status ELSE %(skipped)s END, 0,
       CASE WHEN o.id IS NULL THEN c.last_error ELSE o.last_error END,
       CASE WHEN o.id IS NULL THEN c.code ELSE o.code END,
       CASE WHEN o.id IS NULL AND c.status <> %(skipped)s THEN %(send_at)s::timestamp END, %(now)s, %(now)s
FROM unnest(%(ids)s::bigint[]) WITH ORDINALITY AS n(id, i)
CROSS JOIN unnest(%(channels)s::text[], %(statuses)s::text[], %(errors)s::text[], %(codes)s::text[]) WITH ORDINALITY
    AS c(channel, status, last_error, code, j)
LEFT JOIN unnest(%(o_ids)s::bigint[], %(o_channels)s::text[], %(o_errors)s::text[], %(o_codes)s::text[])
    AS o(id, channel, last_error, code) ON o.id = n.id AND o.channel = c.channel
ORDER BY n.i, c.j
RETURNING id, channel, status
"""


def copy_rows(rt: Runtime, notifications: Sequence[tuple[int, str]], template: OwedDelivery,
              now: dt.datetime, prefs: dict[str, dict] | None = None) -> list[QueuedDelivery]:
    """The outbox rows of many notifications of one message (a fan-out chunk): ``notifications``
    are (id, user id), ``template`` says the rest (its id and user unused). The same rows as
    :func:`delivery_rows` — opt-outs, feature flags, missing channels, ``send_at`` — written on
    PostgreSQL by one ``INSERT … SELECT FROM unnest(…)``; elsewhere by :func:`delivery_rows`. ``prefs``: the
    members' preferences when the caller has read them (the fan-out, for their locales)."""
    if not is_postgres():
        return delivery_rows(rt, [OwedDelivery(nid, user, template.priority, template.channels, template.type,
                                               template.critical, template.send_at) for nid, user in notifications],
                             now, prefs)
    if not notifications:
        return []
    available = rt.channels
    channels = list(template.channels)
    default = [_skip_reason(rt, None, template, channel, available) for channel in channels]  # a user with no opt-outs
    if template.critical:
        prefs = {}
    elif prefs is None:
        prefs = preferences_of(user for _, user in notifications)
    o_ids: list[int] = []
    o_channels: list[str] = []
    o_errors: list[str | None] = []
    o_codes: list[str | None] = []
    for nid, user in notifications:
        if user in prefs:
            for channel, reason in zip(channels, default, strict=True):
                own = _skip_reason(rt, prefs[user], template, channel, available)
                if own != reason:  # (an opt-out: a reason the default lacks, or one that comes first)
                    o_ids.append(nid)
                    o_channels.append(channel)
                    o_codes.append(own[0] if own else None)
                    o_errors.append(own[1] if own else None)
    first = states.SCHEDULED if template.send_at else states.PENDING
    cursor = database.execute_sql(_COPY_ROWS, {
        "ids": [nid for nid, _ in notifications], "channels": channels,
        "statuses": [states.SKIPPED if reason else first for reason in default],
        "errors": [reason[1] if reason else None for reason in default],
        "codes": [reason[0] if reason else None for reason in default],
        "o_ids": o_ids, "o_channels": o_channels, "o_errors": o_errors, "o_codes": o_codes, "skipped": states.SKIPPED,
        "send_at": template.send_at, "now": now})
    return [QueuedDelivery(delivery_id, template.priority, channel)
            for delivery_id, channel, status in cursor.fetchall() if status == states.PENDING]


def hand_off(rt: Runtime, queued: Sequence[QueuedDelivery], enqueue: Enqueue,
             deliver_now: DeliverNow | None = None) -> list[QueuedDelivery]:
    """After the commit: deliver the in-app ones together right here (with ``deliver_now``),
    enqueue the rest; returns what was left to enqueue. A failure leaves rows ``pending``,
    which the outbox sweep enqueues again."""
    left = list(queued)
    in_app = {q.delivery_id for q in queued if q.channel == IN_APP}
    if deliver_now is not None and in_app:
        try:
            undelivered = set(deliver_now(rt, sorted(in_app)))
        except Exception:
            log.exception("in-app deliveries of the batch failed; they go the usual way")
            undelivered = in_app
        left = [q for q in queued if q.delivery_id not in in_app or q.delivery_id in undelivered]
    if left:
        try:
            enqueue(left)
        except Exception:
            # The rows are committed as 'pending': the outbox sweeper enqueues them again.
            log.exception("could not enqueue deliveries; they stay pending in the outbox",
                          extra={"delivery_ids": [q.delivery_id for q in left][:50]})
    return left


def _skip_reason(rt: Runtime, prefs: dict | None, item: OwedDelivery, channel: str,
                 available) -> tuple[str, str] | None:
    """Why this row is skipped from the start, as (code, sentence), or None."""
    kind = None if item.critical else Preference.opted_out(prefs, item.type, channel)
    if kind is not None:
        return reasons.opted_out(kind, item.type, channel)
    if channel in FLAGGED_CHANNELS and not rt.settings.feature(channel):
        return reasons.CHANNEL_OFF, f"feature {channel} is off (NOTIF_FEATURES)"
    if channel not in available:
        return reasons.CHANNEL_UNAVAILABLE, f"channel {channel!r} is not installed or is disabled (NOTIF_DISABLE_PLUGINS)"
    return None
