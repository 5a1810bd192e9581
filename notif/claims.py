"""Claim and load in one statement: ``pending → sending`` for deliveries that can go out now,
returning each row and its notification.

The worker used to read a delivery (a SELECT with its notification), then claim it (an
UPDATE): two round trips before the channel was called. Here the claim's UPDATE returns what
the send needs, so a delivery that goes out costs one statement before its send. It claims only
what the usual checks would let through: the row still ``pending``, on a channel this process
has, its notification neither retracted nor expired. Whatever it does not claim (gone, handled
already, claimed by another worker, withdrawn, channel missing) the caller reads afresh and
settles the long way (:func:`notif.deliver.deliver`), so the rare cases keep one code path.

On PostgreSQL it is one ``UPDATE … FROM … RETURNING`` (the rows found by primary key first, in a
materialized CTE, as :func:`notif.delivery_states.claim_current` does, so the planner never scans
the notifications). SQLite (≥ 3.35) has RETURNING but lets it name only the updated table: the
claim returns the deliveries and one SELECT by primary key reads their notifications.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence

from .db import database, is_postgres
from .delivery_states import PENDING, SENDING
from .models import Delivery, Notification

_D = list(Delivery._meta.sorted_fields)  # the columns returned, in this order
_N = list(Notification._meta.sorted_fields)


def _ready(alias: str, n: str, p: str) -> str:
    """The conditions a claimable row meets (``alias``: the delivery, ``n``: its notification, ``p``: a placeholder)."""
    return (f"{alias}.status = {p} AND {n}.retracted_at IS NULL AND ({n}.expires_at IS NULL OR {n}.expires_at > {p})")


def _pg(ids: list[int], channels: list[str], now: dt.datetime) -> list[Delivery]:
    d_cols = ", ".join(f"d.{f.column_name}" for f in _D)
    n_cols = ", ".join(f"n.{f.column_name}" for f in _N)
    sql = (f"WITH c AS MATERIALIZED (SELECT id, notification_id FROM {Delivery._meta.table_name} "
           f"WHERE id = ANY(%s) AND status = %s AND channel = ANY(%s)) "
           f"UPDATE {Delivery._meta.table_name} AS d SET status = %s, updated_at = %s "
           f"FROM c JOIN {Notification._meta.table_name} AS n ON n.id = c.notification_id "
           f"WHERE d.id = c.id AND {_ready('d', 'n', '%s')} "
           f"RETURNING {d_cols}, {n_cols}")
    rows = database.execute_sql(sql, [ids, PENDING, channels, SENDING, now, PENDING, now]).fetchall()
    claimed = []
    for row in rows:
        delivery = _model(Delivery, _D, row[:len(_D)])
        delivery.notification = _model(Notification, _N, row[len(_D):])
        claimed.append(delivery)
    return claimed


def _sqlite(ids: list[int], channels: list[str], now: dt.datetime) -> list[Delivery]:
    table, notifications = Delivery._meta.table_name, Notification._meta.table_name
    marks = ", ".join("?" for _ in ids)
    names = ", ".join("?" for _ in channels)
    sql = (f"UPDATE {table} SET status = ?, updated_at = ? WHERE id IN ({marks}) AND channel IN ({names}) "
           f"AND EXISTS (SELECT 1 FROM {notifications} AS n WHERE n.id = {table}.notification_id "
           f"AND {_ready(table, 'n', '?')}) RETURNING {', '.join(f.column_name for f in _D)}")
    rows = database.execute_sql(sql, [SENDING, now, *ids, *channels, PENDING, now]).fetchall()
    claimed = [_model(Delivery, _D, row) for row in rows]
    if claimed:
        found = {n.id: n for n in Notification.select().where(
            Notification.id.in_([d.notification_id for d in claimed]))}
        for delivery in claimed:
            delivery.notification = found[delivery.notification_id]
    return claimed


def _model(model, fields, values):
    return model(**{f.name: f.python_value(v) for f, v in zip(fields, values, strict=True)})


def claim_loaded(delivery_ids: Sequence[int], channels: Collection[str], now: dt.datetime) -> list[Delivery]:
    """Claim the rows of ``delivery_ids`` that may be sent now on one of ``channels``, in one statement;
    returns them as claimed (status ``sending``, ``attempts`` not yet counted), each with its ``notification``."""
    ids = list(dict.fromkeys(delivery_ids))
    names = sorted(channels)
    if not ids or not names:
        return []
    return _pg(ids, names, now) if is_postgres() else _sqlite(ids, names, now)
