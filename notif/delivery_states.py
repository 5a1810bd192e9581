"""Delivery states, and every move between them, in one place.

A delivery row starts as one of :data:`INITIAL` (written by :mod:`notif.outbox`) and moves
only along :data:`TRANSITIONS`. Each move is one conditional UPDATE (``… WHERE status =
<from>``), so two processes racing for the same row cannot both move it: the loser's
update matches nothing and it learns so from the result. Whoever moves a row says why (the
keys of :data:`TRANSITIONS` are the only moves there are)::

    pending ──claim──▶ sending ──▶ sent | failed | skipped | shadow
       ▲                  │ ╲
       │   retry/reclaim  │  ╲ over a rate limit
       └──────────────────┘   ▼
    scheduled ──due──▶ pending ◀──due── deferred
    failed ──replay──▶ pending;  failed ──purge──▶ discarded
    pending | scheduled | deferred ──▶ withdrawn  (its notification was retracted or expired)

A move into ``sent`` or ``failed`` is what the host app's webhooks hear of (``delivery.sent``,
``delivery.failed``: :data:`REPORTED`): when the process's webhook outbox wants it, the move and
its events are one transaction, and the events go to the sender after the commit.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence

import peewee

from .db import database, is_postgres
from .models import Delivery, Notification, utcnow
from .webhooks import outbox as webhook_outbox
from .webhooks.events import DELIVERY_FAILED, DELIVERY_SENT

PENDING = "pending"  # owed: a Dramatiq message is (or will be, by the sweeper) on its way
SENDING = "sending"  # claimed by one worker, which is calling the channel
SENT = "sent"
FAILED = "failed"  # a dead letter: permanent error, or retries exhausted; `last_error` says why
SKIPPED = "skipped"  # not to be sent: an opt-out, a channel off or missing; `last_error` says which
DISCARDED = "discarded"  # a failed delivery purged from the dead letters
SHADOW = "shadow"  # shadow mode: would have been sent (see `notif shadow report`)
SCHEDULED = "scheduled"  # waits for its notification's send_at (`next_attempt_at`)
DEFERRED = "deferred"  # over a per-user rate limit: waits for the slot it reserved (`next_attempt_at`)
WITHDRAWN = "withdrawn"  # never sent: its notification was retracted or expired first; `last_error` says which

#: the moves into these states are reported to the host app's webhooks (notif.webhooks), in the move's transaction
REPORTED = {SENT: DELIVERY_SENT, FAILED: DELIVERY_FAILED}

INITIAL = frozenset({PENDING, SCHEDULED, SKIPPED})
FINAL = frozenset({SENT, SKIPPED, DISCARDED, SHADOW, WITHDRAWN})
OWED = frozenset({PENDING, SENDING, SCHEDULED, DEFERRED})  # still to go out: retention never deletes these
PARKED = frozenset({SCHEDULED, DEFERRED})  # the scheduler releases these when due

TRANSITIONS: dict[tuple[str, str], str] = {
    (PENDING, SENDING): "claimed by a worker",
    (PENDING, SKIPPED): "its channel is not installed or is disabled",
    (SENDING, SENT): "the channel took it",
    (SENDING, FAILED): "a permanent error, or the channel's retries ran out",
    (SENDING, PENDING): "a transient error (retried later), a failed batch, or its worker died (reclaimed)",
    (SENDING, SKIPPED): "the channel skipped it (nothing to send to)",
    (SENDING, SHADOW): "shadow mode: recorded, not sent",
    (SENDING, DEFERRED): "over the user's rate limit for the channel",
    (SCHEDULED, PENDING): "its send_at came",
    (DEFERRED, PENDING): "its reserved slot came",
    (FAILED, PENDING): "replayed from the dead letters",
    (FAILED, DISCARDED): "purged from the dead letters",
    (PENDING, WITHDRAWN): "its notification was retracted or expired before it went out",
    (SCHEDULED, WITHDRAWN): "its notification was retracted or expired before its send_at",
    (DEFERRED, WITHDRAWN): "its notification was retracted or expired while rate limited",
}


class IllegalTransition(ValueError):
    """A move that :data:`TRANSITIONS` does not allow: a bug, never a race."""


def _check(frm: str, to: str) -> None:
    if (frm, to) not in TRANSITIONS:
        raise IllegalTransition(f"a delivery cannot go from {frm!r} to {to!r}")


def _reported(to: str, run: Callable[[], list[int]]) -> list[int]:
    """Run a move (``run`` returns the ids it moved); a move into a :data:`REPORTED` state that the process's
    webhooks want writes its events in the same transaction and hands them to the sender after the commit
    (inside a caller's transaction, the sweep sends them once that commits). Otherwise just the move."""
    outbox = webhook_outbox.installed()
    kind = REPORTED.get(to)
    if kind is None or not outbox.reports_moves(kind):
        return run()
    outer = database.in_transaction()
    with database.atomic():
        moved = run()
        events = outbox.deliveries(kind, moved)
    if not outer:
        outbox.hand_off(events)
    return moved


def move(delivery_id: int, frm: str, to: str, **values) -> bool:
    """Move one row from ``frm`` to ``to`` (setting ``values`` too); False if it was not in ``frm``."""
    _check(frm, to)
    values.setdefault("updated_at", utcnow())
    query = Delivery.update(status=to, **values).where((Delivery.id == delivery_id) & (Delivery.status == frm))
    return bool(_reported(to, lambda: [delivery_id] if query.execute() == 1 else []))


def move_many(delivery_ids: Iterable[int], frm: str, to: str, **values) -> list[int]:
    """Move every row of ``delivery_ids`` that is in ``frm``; returns the ids moved."""
    _check(frm, to)
    ids = list(delivery_ids)
    if not ids:
        return []
    values.setdefault("updated_at", utcnow())
    query = (Delivery.update(status=to, **values)
             .where(_among(ids) & (Delivery.status == frm)).returning(Delivery.id))
    return _reported(to, lambda: [delivery_id for (delivery_id,) in query.tuples().execute()])


def _among(ids: list[int]):
    """``id IN (…)``; on PostgreSQL ``id = ANY(array)``: one parameter, however many ids."""
    if is_postgres():
        return Delivery.id == peewee.fn.ANY(peewee.Value(ids, unpack=False))
    return Delivery.id.in_(ids)


def claim(delivery_id: int) -> bool:
    """pending → sending: this worker, and no other, sends it now."""
    return move(delivery_id, PENDING, SENDING)


def claim_current(delivery_ids: Sequence[int], updated_at: dt.datetime | None,
                  now: dt.datetime) -> list[tuple[int, int, str, int]]:
    """pending → sending for the rows whose notification is still the version a caller holds
    (its ``updated_at``), unread, not retracted and not expired, in one UPDATE; returns
    (delivery id, notification id, user id, attempts) of those this worker claimed."""
    _check(PENDING, SENDING)
    if not delivery_ids:
        return []
    # The rows are found by primary key first (a materialized CTE), then their notifications by
    # primary key: a plain UPDATE … FROM let the planner, without statistics on fresh tables, scan
    # every notification stored so far once per chunk (each chunk slower than the last).
    version = "n.updated_at IS NULL" if updated_at is None else "n.updated_at = %s"
    sql = (f"WITH c AS MATERIALIZED (SELECT id, notification_id FROM {Delivery._meta.table_name} "
           f"WHERE id = ANY(%s) AND status = %s) "
           f"UPDATE {Delivery._meta.table_name} AS d SET status = %s, updated_at = %s "
           f"FROM c JOIN {Notification._meta.table_name} AS n ON n.id = c.notification_id "
           f"WHERE d.id = c.id AND d.status = %s AND {version} AND n.read_at IS NULL AND n.retracted_at IS NULL "
           f"AND (n.expires_at IS NULL OR n.expires_at > %s) "
           f"RETURNING d.id, n.id, n.user_id, d.attempts")
    params: list = [list(delivery_ids), PENDING, SENDING, now, PENDING]
    if updated_at is not None:
        params.append(updated_at)
    params.append(now)
    return [tuple(row) for row in database.execute_sql(sql, params).fetchall()]


def claim_many(delivery_ids: Iterable[int]) -> set[int]:
    """pending → sending for several rows at once; returns those this worker claimed."""
    return set(move_many(delivery_ids, PENDING, SENDING))
