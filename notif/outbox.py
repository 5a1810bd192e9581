"""The outbox: one delivery row per (new notification, channel), written in the
transaction that stores the notification, so the database alone says what is owed.

A user's opt-out, a channel turned off by a feature flag, or a channel not installed is
decided here and recorded on the row (``skipped``, with why); scheduled sends start as
``scheduled``; everything else is ``pending`` and is enqueued after the commit.
"""
from __future__ import annotations

from typing import Iterable

from .models import Delivery, Preference
from .runtime import Runtime

IN_APP = "in_app"
FLAGGED_CHANNELS = ("push", "email")  # channels a feature flag can turn off
CHUNK = 200  # rows per INSERT statement (SQLite caps bound variables per statement)


def chunks(rows: list, size: int = CHUNK) -> Iterable[list]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def delivery_rows(rt: Runtime, owed: list[tuple], now, in_app: set[int] | None = None) -> list[tuple[int, str]]:
    """Insert the outbox rows of new notifications; returns the pending ones as (id, priority),
    and adds the ids of pending in-app ones to ``in_app`` when given.

    ``owed``: (notification id, user id, priority, channels, type, critical, send_at). A
    user's opt-out or a channel not installed is recorded on the row (``skipped``, with why).
    """
    users = list({item[1] for item in owed})
    prefs = {p.user_id: p.settings for p in Preference.select().where(Preference.user_id.in_(users))} if users else {}
    available = rt.channels
    deliveries = []
    for notification_id, user_id, priority, channels, type_, critical, send_at in owed:
        for channel in channels:
            row = {"notification": notification_id, "channel": channel,
                   "status": Delivery.SCHEDULED if send_at else Delivery.PENDING, "next_attempt_at": send_at,
                   "last_error": None, "created_at": now, "updated_at": now}  # same keys in every row
            if not critical and not Preference.allows(prefs.get(user_id), type_, channel):
                row.update(status=Delivery.SKIPPED, next_attempt_at=None, last_error="preference: the user opted out")
            elif channel in FLAGGED_CHANNELS and not rt.settings.feature(channel):
                row.update(status=Delivery.SKIPPED, next_attempt_at=None,
                           last_error=f"feature {channel} is off (NOTIF_FEATURES)")
            elif channel not in available:
                row.update(status=Delivery.SKIPPED, next_attempt_at=None,
                           last_error=f"channel {channel!r} is not installed or is disabled (NOTIF_DISABLE_PLUGINS)")
            deliveries.append((row, priority))
    pending: list[tuple[int, str]] = []
    for chunk in chunks(deliveries):
        query = Delivery.insert_many([row for row, _ in chunk]).returning(Delivery.id, Delivery.status)
        for (delivery_id, status), (row, priority) in zip(query.tuples().execute(), chunk):
            if status == Delivery.PENDING:
                pending.append((delivery_id, priority))
                if in_app is not None and row["channel"] == IN_APP:
                    in_app.add(delivery_id)
    return pending
