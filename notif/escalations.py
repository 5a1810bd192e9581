"""Escalation: a notification still unread some time after it became visible goes out on other channels too.

A message's ``"escalate": {"after": 600, "channels": ["email"]}`` (else its template's
``[escalate]``) is stored with each of its notifications as an
:class:`~notif.models.Escalation` row, in the transaction that stores them
(:func:`schedule`): ``pending``, due ``after`` seconds after the notification became visible —
when it was stored, or its ``send_at`` for a scheduled send. A digest item's row is ``held``:
the digest's grouped notification escalates instead, once its window closes (:func:`follow_digest`:
the shortest ``after`` of its items, every channel they name), due ``after`` seconds from then.

The leading scheduler's pass (:func:`escalate_due`) takes the due rows by the partial index on
pending ones and settles each once, by a conditional UPDATE from ``pending``:

- read by then (``read_at``, which archiving sets too): ``read``, nothing is sent;
- retracted or expired: ``withdrawn``, nothing is sent (a cancelled one is deleted, its row with it);
- else ``escalated``, and in the same transaction one delivery row per escalation channel is
  written by :func:`notif.outbox.delivery_rows`, the path ingest takes: preferences, feature
  flags, missing channels, rate limits (when delivered), retries, dead letters, the trace and the
  metrics all apply as to any delivery. They carry the notification's own channel renderings
  (``[email]``, ``[push]``), stored when it was, in its recipient's locale.

A second scheduler — or a leader deposed mid-pass — updates nothing the first one settled: its
UPDATE waits for the first one's transaction and then finds the row no longer ``pending``.
Channels the notification already went to directly are not escalated to (the delivery row's
unique key would refuse a second one anyway).
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

from peewee import fn

from .db import database
from .errors import InvalidMessage, TemplateError
from .messages import Escalate
from .models import Delivery, Escalation, Notification, isoformat, utcnow
from .outbox import Enqueue, OwedDelivery, QueuedDelivery, delivery_rows
from .runtime import Runtime

log = logging.getLogger(__name__)

HELD, PENDING, ESCALATED, READ, WITHDRAWN = "held", "pending", "escalated", "read", "withdrawn"
BATCH = 1000  # due escalations settled per pass (one transaction); a backlog takes several passes


@dataclass(frozen=True)
class EscalationSpec:
    """What a message (or its template) asked for: ``after`` seconds, then ``channels``."""

    after: int
    channels: tuple[str, ...]


@dataclass
class Settled:
    """What one pass did."""

    escalated: list[int] = field(default_factory=list)  # notification ids
    read: list[int] = field(default_factory=list)
    withdrawn: list[int] = field(default_factory=list)
    queued: list[QueuedDelivery] = field(default_factory=list)


def spec_for(given: Escalate | None, template, direct: Sequence[str], known: Collection[str]) -> EscalationSpec | None:
    """The escalation a message asks for (its own ``escalate``, else its template's ``[escalate]``), without
    the channels it goes to directly; None when there is nothing to escalate to. A channel this
    deployment does not load is a permanent error naming the field (the message's, or the template)."""
    if given is not None:
        after, channels = given.after, tuple(given.channels)
    elif template is not None and template.escalate:
        after, channels = template.escalate["after"], tuple(template.escalate["channels"])
    else:
        return None
    unknown = [c for c in channels if c not in known]
    if unknown:
        listed = ", ".join(sorted(c for c in known if c != "in_app")) or "none"
        if given is not None:
            index = list(channels).index(unknown[0])
            raise InvalidMessage(f"escalate.channels.{index}: unknown channel {unknown[0]!r}; channels this deployment "
                                 f"loads: {listed}", field=f"escalate.channels.{index}")
        raise TemplateError(f"template {template.type} [escalate] channels: unknown channel {unknown[0]!r}; channels "
                            f"this deployment loads: {listed}", field="type")
    left = tuple(c for c in channels if c not in direct)
    return EscalationSpec(after, left) if left else None


def schedule(items: Iterable[tuple[int, EscalationSpec, dt.datetime | None]], now: dt.datetime) -> int:
    """Inside the transaction storing the notifications: their escalation rows. ``items`` are
    (notification id, spec, visible at); visible at None is a digest item (held). Returns the rows written."""
    rows = [{"notification": nid, "after": spec.after, "channels": list(spec.channels),
             "state": PENDING if visible is not None else HELD,
             "due_at": visible + dt.timedelta(seconds=spec.after) if visible is not None else None,
             "created_at": now}
            for nid, spec, visible in items]
    for start in range(0, len(rows), 500):
        Escalation.insert_many(rows[start:start + 500]).on_conflict_ignore().execute()
    return len(rows)


def follow_digest(notification_id: int, item_ids: list[int], direct: Sequence[str], now: dt.datetime) -> None:
    """Inside the transaction closing a digest window: its grouped notification escalates if any item
    asked to, after the shortest ``after`` among them, on every channel they name (but its own)."""
    held = list(Escalation.select(Escalation.after, Escalation.channels)
                .where(Escalation.notification.in_(item_ids) & (Escalation.state == HELD)))
    if not held:
        return
    channels = [c for c in dict.fromkeys(c for row in held for c in row.channels) if c not in direct]
    if channels:
        schedule([(notification_id, EscalationSpec(min(row.after for row in held), tuple(channels)), now)], now)


def pending_of(notification_id):
    """The pending escalation of a notification, as a subquery (retention keeps a notification that has one)."""
    return Escalation.select(Escalation.notification).where(
        (Escalation.notification == notification_id) & (Escalation.state == PENDING))


def escalate_due(rt: Runtime, enqueue: Enqueue, limit: int = BATCH, now: dt.datetime | None = None) -> Settled:
    """The scheduler's pass: settle every escalation due by now (at most ``limit``), once each; enqueue what it owes."""
    now = now or utcnow()
    due = list(Escalation.select(Escalation.notification, Escalation.after, Escalation.channels, Escalation.due_at)
               .where((Escalation.state == PENDING) & (Escalation.due_at <= now))
               .order_by(Escalation.due_at).limit(limit))  # by the partial index: only what is pending
    done = Settled()
    if not due:
        return done
    # their notifications by primary key, in a query of its own: joined, the planner may hash the whole table
    found = {n.id: n for n in Notification.select(
        Notification.id, Notification.user_id, Notification.key, Notification.type, Notification.priority,
        Notification.correlation_id, Notification.read_at, Notification.retracted_at, Notification.expires_at)
        .where(Notification.id.in_([e.notification_id for e in due]))}
    due = [e for e in due if e.notification_id in found]  # (one deleted since goes with its escalation)
    for e in due:
        e.notification = found[e.notification_id]
    read = [e for e in due if e.notification.read_at is not None]
    lapsed = {e.notification_id: why for e in due if e.notification.read_at is None
              and (why := e.notification.lapsed(now)) is not None}
    owed = [e for e in due if e.notification.read_at is None and e.notification_id not in lapsed]
    with database.atomic():
        done.escalated = _claim([e.notification_id for e in owed], now)
        claimed = set(done.escalated)
        existing = cast("list[tuple[int, str]]", list(
            Delivery.select(Delivery.notification, Delivery.channel)
            .where(Delivery.notification.in_(done.escalated)).tuples())) if done.escalated else []
        direct = set(existing)
        done.queued = delivery_rows(rt, [
            OwedDelivery(e.notification_id, e.notification.user_id, e.notification.priority,
                         [c for c in e.channels if (e.notification_id, c) not in direct], e.notification.type,
                         rt.templates.is_critical(e.notification.type))
            for e in owed if e.notification_id in claimed], now)
        done.read = _settle([e.notification_id for e in read], READ, now,
                            read_at=Notification.select(Notification.read_at).where(
                                Notification.id == Escalation.notification))
        for nid, why in lapsed.items():
            done.withdrawn += _settle([nid], WITHDRAWN, now, note=why)
    _report(rt, due, done, now)
    if done.queued:
        try:
            enqueue(done.queued)
        except Exception:  # committed as pending: the outbox sweep enqueues them again
            log.exception("could not enqueue escalation deliveries; they stay pending in the outbox",
                          extra={"delivery_ids": [q.delivery_id for q in done.queued][:50]})
    return done


def _claim(ids: list[int], now: dt.datetime) -> list[int]:
    """pending → escalated for those still unread, not retracted, not expired; returns the ids this pass won."""
    if not ids:
        return []
    unread = Notification.select(Notification.id).where(
        (Notification.id == Escalation.notification) & Notification.read_at.is_null()
        & Notification.retracted_at.is_null() & (Notification.expires_at.is_null() | (Notification.expires_at > now)))
    query = (Escalation.update(state=ESCALATED, decided_at=now)
             .where(Escalation.notification.in_(ids) & (Escalation.state == PENDING) & fn.EXISTS(unread))
             .returning(Escalation.notification))
    return [nid for (nid,) in query.tuples().execute()]


def _settle(ids: list[int], state: str, now: dt.datetime, **values) -> list[int]:
    """pending → ``state`` (read, withdrawn); returns the ids this pass moved."""
    if not ids:
        return []
    query = (Escalation.update(state=state, decided_at=now, **values)
             .where(Escalation.notification.in_(ids) & (Escalation.state == PENDING))
             .returning(Escalation.notification))
    return [nid for (nid,) in query.tuples().execute()]


def _report(rt: Runtime, due: list[Escalation], done: Settled, now: dt.datetime) -> None:
    """One metric per outcome, one log line per escalation settled (with its correlation id)."""
    of = {e.notification_id: e for e in due}
    outcomes = ((ESCALATED, done.escalated, "escalated"), (READ, done.read, "escalation not needed: read in time"),
                (WITHDRAWN, done.withdrawn, "escalation withdrawn"))
    for outcome, ids, text in outcomes:
        if ids:
            rt.recorder.escalations(outcome, len(ids))
        for nid in ids:
            e = of[nid]
            n = e.notification
            extra = {"notification_id": nid, "user_id": n.user_id, "key": n.key, "correlation_id": n.correlation_id,
                     "priority": n.priority, "after_s": e.after, "due_at": isoformat(e.due_at),
                     "late_ms": round((now - e.due_at).total_seconds() * 1000, 1) if e.due_at else None}
            if outcome == ESCALATED:
                extra["channels"] = e.channels
            elif outcome == READ:
                extra["read_at"] = isoformat(n.read_at)
            log.info(text, extra=extra)


def describe(e: Escalation | None, read_at: dt.datetime | None) -> dict | None:
    """The trace's ``escalation`` of a recipient: its state, times and a sentence; None without one.
    ``read_at`` is the notification's (a pending one already read will settle as ``read``)."""
    if e is None:
        return None
    channels = ", ".join(e.channels)
    doc = {"state": e.state, "after": e.after, "channels": list(e.channels), "due_at": isoformat(e.due_at),
           "decided_at": isoformat(e.decided_at), "read_at": isoformat(e.read_at)}
    if e.state == HELD:
        text = f"escalates with its digest ({channels} after {e.after} s unread)"
    elif e.state == PENDING and read_at is not None:
        text = f"not escalated: read at {isoformat(read_at)} (due at {isoformat(e.due_at)})"
        doc["read_at"] = isoformat(read_at)
    elif e.state == PENDING:
        text = f"escalation due at {isoformat(e.due_at)} ({channels}) unless read by then"
    elif e.state == ESCALATED:
        text = f"escalated at {isoformat(e.decided_at)} ({channels})"
    elif e.state == READ:
        text = f"not escalated: read at {isoformat(e.read_at)}"
    else:
        text = f"not escalated: {e.note or 'withdrawn'}"
    return {**doc, "text": text}
