"""Update, retract and expiry through ingest, against real PostgreSQL, Redis and SQS over HTTP.

What the user sees over SSE is in tests/web/test_lifecycle_events.py; here: what is stored,
what is withdrawn, reordering on SQS, idempotency, dead letters.
"""
import datetime as dt
import json

import pytest

from helpers import drain
from notif.deliver import deliver
from notif.ingest import ingest_batch
from notif.models import Amendment, Delivery, Notification, utcnow
from test_ingest import Enqueued, literal, put, receive


def ingest(runtime, sqs, queues, *bodies):
    for body in bodies:
        put(sqs, queues["normal"], body)
    return ingest_batch(runtime, receive(sqs, queues["normal"], expect=len(bodies)), Enqueued())


def visible(key):
    return list(Notification.select().where((Notification.key == key) & Notification.visible()).order_by(Notification.user_id))


def report(key, users, **extra):
    return {"id": key, "type": "REPORT_SUBMITTED", "recipients": users,
            "variables": {"submitterName": "Ana", "branchName": "North", "reportId": 42}, **extra}


def test_an_update_re_renders_for_every_recipient_and_can_mark_it_unread_again(runtime, sqs, queues):
    ingest(runtime, sqs, queues, report("r1", ["u1", "u2"]))
    Notification.update(read_at=utcnow()).execute()
    outcome = ingest(runtime, sqs, queues, {"update": "r1", "variables": {"submitterName": "Bea", "branchName": "South",
                                                                          "reportId": 43}, "data": {"v": 2},
                                            "unread": True})
    assert outcome.amended == 2
    rows = visible("r1")
    assert [r.message for r in rows] == ["Bea has submitted a new report for South"] * 2
    assert all(r.read_at is None and r.updated_at is not None and r.data == {"v": 2} for r in rows)
    assert rows[0].actions[0]["url"] == "/reports/43" and rows[0].channel_content["push"]["title"] == "Report from South"


def test_an_update_marking_it_unread_brings_an_archived_notification_back_to_the_inbox_still_seen(runtime, sqs, queues):
    """Archived implies read (notif.models): unread again, it cannot stay archived; it was seen, and still is."""
    ingest(runtime, sqs, queues, literal("u1", "arch"), literal("u2", "arch"))
    earlier = utcnow() - dt.timedelta(minutes=5)
    Notification.update(read_at=earlier, seen_at=earlier, archived_at=earlier).where(Notification.user_id == "u1").execute()
    Notification.update(read_at=earlier).where(Notification.user_id == "u2").execute()  # read before seen_at existed
    ingest(runtime, sqs, queues, {"update": "arch", "unread": True})
    for row in visible("arch"):
        shown = row.to_dict()
        assert (shown["read"], shown["archived"], shown["seen"]) == (False, False, True), row.user_id
        assert row.seen_at == earlier


def test_an_update_is_applied_once_however_often_sqs_delivers_it(runtime, sqs, queues):
    ingest(runtime, sqs, queues, literal("u1", "k1"))
    update = {"update": "k1", "id": "upd-1", "title": "Changed", "unread": True}
    ingest(runtime, sqs, queues, update)
    Notification.update(read_at=utcnow()).execute()  # the user reads it after the update
    outcome = ingest(runtime, sqs, queues, update)  # a redelivered copy
    assert outcome.amended == 0 and Notification.get().read_at is not None  # not marked unread a second time
    assert Amendment.select().count() == 1


def test_a_literal_title_and_message_replace_the_text(runtime, sqs, queues):
    ingest(runtime, sqs, queues, literal("u1", "k1"))
    ingest(runtime, sqs, queues, {"update": "k1", "title": "New title"})
    n = Notification.get()
    assert (n.title, n.message) == ("New title", "for u1")


def test_a_retract_hides_it_everywhere_and_withdraws_what_was_not_sent(runtime, sqs, queues):
    ingest(runtime, sqs, queues, literal("u1", "k1", channels=["in_app", "push"]),
           literal("u2", "k1", channels=["in_app", "push"]))
    sent = Delivery.get(Delivery.channel == "in_app", Delivery.notification == Notification.get(user_id="u1"))
    assert deliver(runtime, sent.id) == "sent"
    outcome = ingest(runtime, sqs, queues, {"retract": "k1"})
    assert outcome.amended == 2 and visible("k1") == []
    assert Notification.select().where(Notification.retracted_at.is_null(False)).count() == 2  # tombstones
    statuses = sorted((d.channel, d.status, d.last_error) for d in Delivery.select())
    assert statuses == [("in_app", "sent", None), ("in_app", "withdrawn", "retracted by its producer"),
                        ("push", "withdrawn", "retracted by its producer"),
                        ("push", "withdrawn", "retracted by its producer")]
    assert ingest(runtime, sqs, queues, {"retract": "k1"}).amended == 0  # idempotent


def test_a_retract_that_overtakes_its_send_on_sqs_drops_it(runtime, sqs, queues):
    ingest(runtime, sqs, queues, {"retract": "late"})
    outcome = ingest(runtime, sqs, queues, literal("u1", "late"), literal("u2", "other"))
    assert (outcome.stored, outcome.dropped) == (1, 1)
    assert [n.key for n in Notification.select()] == ["other"]


def test_an_update_that_overtakes_its_send_is_applied_when_the_send_arrives(runtime, sqs, queues):
    ingest(runtime, sqs, queues, {"update": "r2", "variables": {"submitterName": "Bea", "branchName": "South",
                                                                "reportId": 7}})
    ingest(runtime, sqs, queues, {"update": "r2", "title": "Latest title"})
    ingest(runtime, sqs, queues, report("r2", ["u1"]))
    n = Notification.get()
    assert (n.title, n.message) == ("Latest title", "Bea has submitted a new report for South")
    assert n.updated_at is not None and n.read_at is None


@pytest.mark.parametrize("body, field", [
    ({"update": "k1"}, None),
    ({"update": "k1", "title": "x", "recipients": ["u1"]}, "recipients"),
    ({"retract": ""}, "retract"),
    ({"id": "k", "user_id": "u", "title": "t", "message": "m", "ttl": 60, "expires_at": "2030-01-01T00:00:00Z"}, None),
    ({"id": "k", "user_id": "u", "title": "t", "message": "m", "expires_at": "2030-01-01T00:00:00"}, "expires_at"),
])
def test_bad_updates_retracts_and_expiries_are_dead_lettered_naming_the_field(runtime, sqs, queues, body, field):
    outcome = ingest(runtime, sqs, queues, body)
    assert len(outcome.dead_lettered) == 1 and outcome.dead_lettered[0].field == field
    assert drain(sqs, queues["dlq"])


def test_an_update_whose_variables_do_not_render_is_dead_lettered(runtime, sqs, queues):
    ingest(runtime, sqs, queues, report("r3", ["u1"]))
    outcome = ingest(runtime, sqs, queues, {"update": "r3", "variables": {"branchName": "only"}})
    assert len(outcome.dead_lettered) == 1 and "submitterName" in outcome.dead_lettered[0].reason
    assert Notification.get().message == "Ana has submitted a new report for North"


def test_an_expired_notification_leaves_the_inbox_and_is_never_sent(runtime, sqs, queues):
    ingest(runtime, sqs, queues, literal("u1", "soon", ttl=60, channels=["in_app", "push"]),
           literal("u1", "later", expires_at="2999-01-01T00:00:00+02:00"))
    soon, later = Notification.get(key="soon"), Notification.get(key="later")
    assert abs((soon.expires_at - utcnow()).total_seconds() - 60) < 5
    assert later.expires_at == dt.datetime(2998, 12, 31, 22, 0)  # kept in UTC
    assert {n.key for n in visible("soon") + visible("later")} == {"soon", "later"}
    Notification.update(expires_at=utcnow() - dt.timedelta(seconds=1)).where(Notification.key == "soon").execute()
    assert visible("soon") == [] and len(visible("later")) == 1
    push = Delivery.get(Delivery.channel == "push")
    assert deliver(runtime, push.id) == "withdrawn"
    push = Delivery.get_by_id(push.id)
    assert push.status == "withdrawn" and push.last_error.startswith("expired at ")


def test_push_carries_the_time_left_when_it_is_less_than_the_prioritys_ttl():
    from notif_plugins.push import TTL, ttl_for
    now = utcnow()
    n = Notification(priority="normal", expires_at=now + dt.timedelta(seconds=90))
    assert ttl_for(n, now) == 90
    assert ttl_for(Notification(priority="high", expires_at=now + dt.timedelta(days=3)), now) == TTL["high"]
    assert ttl_for(Notification(priority="low"), now) == TTL["low"]


def test_update_and_retract_work_on_sqlite(tmp_path, redis_prefix, sqs, queues, env):
    from notif.config import load_settings
    from notif.db import database
    from notif.migrations import migrate
    from notif.runtime import Runtime
    rt = Runtime.start(load_settings({**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'n.db'}"}, use_state=False))
    migrate()
    try:
        ingest(rt, sqs, queues, {"retract": "early"})
        ingest(rt, sqs, queues, literal("u1", "k1"), literal("u1", "k2", ttl=3600), literal("u1", "early"))
        ingest(rt, sqs, queues, {"update": "k1", "title": "New"}, {"retract": "k2"})
        assert [(n.key, n.title) for n in Notification.select().where(Notification.visible())] == [("k1", "New")]
        assert json.loads(json.dumps(Notification.get(key="k1").to_dict()))["updated_at"]
    finally:
        database.close()
        rt.redis.close()
