"""A fan-out chunk's bulk paths on PostgreSQL: its outbox rows in one statement, its in-app
deliveries without a model per row. Each gives what the row-by-row paths give."""
import datetime as dt
from dataclasses import replace

import peewee
import pytest

from notif import outbox
from notif.config import FEATURES
from notif.models import Delivery, Notification, Preference, utcnow
from notif.outbox import OwedDelivery, copy_rows, delivery_rows

CHANNELS = ["in_app", "push", "email", "carrier-pigeon"]  # email turned off below, the pigeon not installed


def notifications(users, key):
    now = utcnow()
    rows = [{"user_id": u, "key": key, "title": "t", "message": "m", "priority": "low", "correlation_id": "c",
             "created_at": now} for u in users]
    return [(nid, user) for nid, user in Notification.insert_many(rows).returning(
        Notification.id, Notification.user_id).tuples().execute()]


def outbox_of(ids):
    """The rows written for these notifications, by user and channel (ids aside)."""
    users = dict(Notification.select(Notification.id, Notification.user_id).where(Notification.id.in_(ids)).tuples())
    return sorted((users[d.notification_id], d.channel, d.status, d.last_error, d.next_attempt_at, d.attempts)
                  for d in Delivery.select().where(Delivery.notification.in_(ids)))


@pytest.mark.parametrize("critical, send_at", [(False, None), (True, None), (False, dt.datetime(2030, 1, 1, 9))])
def test_a_chunks_outbox_rows_are_those_row_by_row_gives(runtime, pg, critical, send_at):
    runtime.settings = replace(runtime.settings, features=frozenset(FEATURES) - {"email"})
    Preference.insert_many([
        {"user_id": "no-push", "settings": {"channels": {"push": False}}},
        {"user_id": "no-news", "settings": {"types": {"NEWS": False}}},
        {"user_id": "no-email", "settings": {"channels": {"email": False}}},  # off anyway: the flag's reason wins
        {"user_id": "other-type", "settings": {"types": {"OTHER": False}}},
    ]).execute()
    users = ["plain", "no-push", "no-news", "no-email", "other-type"]
    now = utcnow()
    template = OwedDelivery(0, "", "low", CHANNELS, "NEWS", critical, send_at)
    one = notifications(users, "row-by-row")
    expected = delivery_rows(runtime, [replace(template, notification_id=n, user_id=u) for n, u in one], now)
    bulk = notifications(users, "bulk")
    with pytest.MonkeyPatch.context() as mp:  # the bulk path writes no row through peewee
        mp.setattr(Delivery, "insert_many", lambda *a, **k: pytest.fail("a delivery row written one by one"))
        queued = copy_rows(runtime, bulk, template, now)
    assert outbox_of([n for n, _ in bulk]) == outbox_of([n for n, _ in one])
    assert sorted((q.priority, q.channel) for q in queued) == sorted((q.priority, q.channel) for q in expected)
    pending = {d.id for d in Delivery.select().where(Delivery.notification.in_([n for n, _ in bulk])
                                                     & (Delivery.status == "pending"))}
    assert {q.delivery_id for q in queued} == pending
    statuses = {(u, c): s for u, c, s, *_ in outbox_of([n for n, _ in bulk])}
    if send_at:
        assert statuses[("plain", "in_app")] == "scheduled" and queued == []
    else:
        assert statuses[("plain", "in_app")] == statuses[("plain", "push")] == "pending"
    assert statuses[("no-push", "push")] == ("skipped" if not critical else "scheduled" if send_at else "pending")
    assert statuses[("plain", "email")] == statuses[("plain", "carrier-pigeon")] == "skipped"


def test_no_notifications_no_rows(runtime, pg):
    assert copy_rows(runtime, [], OwedDelivery(0, "", "low", CHANNELS, None), utcnow()) == []
    assert outbox.is_postgres() and Delivery.select().count() == 0


def test_a_chunk_is_all_or_nothing(runtime, pg):
    bulk = notifications(["a", "b"], "k")
    with pytest.raises(peewee.DatabaseError):  # a notification that is not there: the statement fails whole
        copy_rows(runtime, [*bulk, (10**12, "ghost")], OwedDelivery(0, "", "low", ["in_app"], None), utcnow())
