"""Retention (NOTIF_RETENTION_DAYS) on real PostgreSQL: old rows go in batches, owed work never does."""
import datetime as dt
import logging

import pytest
from prometheus_client import REGISTRY

from notif.models import Amendment, Cancellation, Delivery, DeliveryAttempt, Digest, Notification, utcnow
from notif.monitoring.record import Recorder
from notif.scheduler.retention import prune

OLD = utcnow() - dt.timedelta(days=100)
counter = iter(range(10**6))


def stored(age=OLD, statuses=("sent",), **extra):
    n = Notification.create(user_id="u", key=f"r{next(counter)}", title="t", message="m", priority="normal",
                            correlation_id="c", created_at=age, **extra)
    for i, status in enumerate(statuses):
        Delivery.create(notification=n, channel=("in_app", "push", "email")[i], status=status)
    return n


def deleted_total(table):
    return REGISTRY.get_sample_value("notif_retention_deleted_total", {"table": table}) or 0


@pytest.mark.parametrize("owed", ["pending", "sending", "scheduled", "deferred"])
def test_a_notification_that_still_owes_a_delivery_is_never_deleted(pg, owed):
    keep = stored(statuses=("sent", owed))
    assert prune(None, days=90)["notifications"] == 0
    assert Notification.get_or_none(id=keep.id) is not None and Delivery.select().count() == 2


def test_old_notifications_go_in_batches_with_their_deliveries_and_recent_ones_stay(pg, caplog):
    old = [stored(statuses=("sent", "failed")) for _ in range(5)] + [stored(statuses=())]
    old += [stored(statuses=("skipped", "withdrawn"))]
    recent = stored(age=utcnow() - dt.timedelta(days=89))
    before = deleted_total("notifications")
    with caplog.at_level(logging.INFO, logger="notif.scheduler.retention"):
        counts = prune(Recorder(None), days=90, batch=2)
    assert (counts["notifications"], counts["deliveries"]) == (len(old), 12)
    assert [n.id for n in Notification.select()] == [recent.id]
    assert deleted_total("notifications") - before == len(old)
    assert [r for r in caplog.records if r.getMessage() == "retention pass"][0].notifications == len(old)


def test_the_attempt_log_goes_with_its_deliveries(pg):
    old, recent = stored(statuses=("sent", "failed")), stored(age=utcnow() - dt.timedelta(days=1))
    for n in (old, recent):
        for d in Delivery.select().where(Delivery.notification == n):
            for i in (1, 2):
                DeliveryAttempt.create(delivery=d, attempt=i, outcome="transient_error", error="HTTP 503")
    assert DeliveryAttempt.select().count() == 6
    assert prune(None, days=90)["notifications"] == 1
    assert [a.delivery_id for a in DeliveryAttempt.select()] == [Delivery.get(Delivery.notification == recent).id] * 2


def test_old_attempts_of_a_delivery_still_owed_go_and_the_delivery_stays(pg):
    stuck = Delivery.get(Delivery.notification == stored(statuses=("pending",)))  # its worker dies on it, every time
    DeliveryAttempt.create(delivery=stuck, attempt=1, outcome="abandoned", finished_at=OLD)
    DeliveryAttempt.create(delivery=stuck, attempt=2, outcome="abandoned")
    counts = prune(None, days=90)
    assert (counts["notifications"], counts["attempts"]) == (0, 1)
    assert [a.attempt for a in DeliveryAttempt.select()] == [2] and Delivery.get_by_id(stuck.id).status == "pending"


def test_a_pass_stops_after_its_batches_and_the_next_goes_on(pg):
    for _ in range(5):
        stored()
    assert prune(None, days=90, batch=2, max_batches=1)["notifications"] == 2
    assert prune(None, days=90, batch=2, max_batches=10)["notifications"] == 3


def test_zero_days_keeps_everything_but_still_forgets_old_cancels_and_amendments(pg):
    n = stored(age=utcnow() - dt.timedelta(days=3000))
    long_ago = utcnow() - dt.timedelta(days=8)
    Cancellation.create(key="c-old", created_at=long_ago)
    Cancellation.create(key="c-new")
    Amendment.create(id="a-old", target="x", kind="retract", created_at=long_ago)
    Amendment.create(id="a-new", target="x", kind="update", changes={"title": "t"})
    counts = prune(None, days=0)
    assert (counts["notifications"], counts["cancellations"], counts["amendments"]) == (0, 1, 1)
    assert Notification.get_or_none(id=n.id) is not None
    assert [c.key for c in Cancellation.select()] == ["c-new"] and [a.id for a in Amendment.select()] == ["a-new"]


def test_closed_digests_go_and_items_of_an_open_window_stay(pg):
    later = utcnow() + dt.timedelta(minutes=1)
    window = Digest.create(user_id="u", batch_key="b", open_key=Digest.bucket("u", "b"), priority="low",
                           channels=["in_app"], closes_at=later)
    held = stored(statuses=(), digest_id=window.id)
    closed = Digest.create(user_id="u", batch_key="c", priority="low", channels=["in_app"], closes_at=OLD,
                           closed_at=OLD, opened_at=OLD)
    counts = prune(None, days=90)
    assert counts["digests"] == 1 and Digest.get_or_none(id=closed.id) is None
    assert Notification.get_or_none(id=held.id) is not None and Digest.get_or_none(id=window.id) is not None
