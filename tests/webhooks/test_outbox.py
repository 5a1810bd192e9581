"""The webhooks' outbox: each event a row per endpoint, written in the transaction of the change it reports
(the same PostgreSQL transaction id as that change), handed to the sender after the commit; nothing at all
when no URL is set. Real PostgreSQL, in-process (no Dramatiq)."""
import datetime as dt
import json
import logging
import re

import pytest
from dramatiq.brokers.stub import StubBroker

from helpers import auth, pg_query
from notif import delivery_states as states
from notif.db import database
from notif.digests import close
from notif.ingest import ingest_batch
from notif.models import Delivery, Digest, Notification, WebhookEvent, utcnow
from notif.runtime import Runtime
from notif.topics import change
from notif.webhooks.outbox import WebhookOutbox
from notif.worker.tasks import declare
from test_ingest import Enqueued, put, receive
from webhook_receiver import SECRET

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def events(type_=None):
    rows = WebhookEvent.select().order_by(WebhookEvent.id)
    return [r for r in rows if type_ is None or r.type == type_]


def bodies(type_=None, endpoint="https://hooks.example.com/notif"):
    return [json.loads(r.body) for r in events(type_) if r.endpoint == endpoint]


def xmins(pg, table, where="TRUE"):
    return {x for (x,) in pg_query(pg, f"SELECT xmin::text FROM {table} WHERE {where}")}


def statements(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "peewee"]


# -- notification.stored -------------------------------------------------------------------
def test_a_direct_message_is_reported_per_recipient_and_endpoint_in_its_transaction(hooked, sqs, queues, pg):
    rt = hooked.make()
    put(sqs, queues["normal"], {"id": "report-7", "recipients": ["ana", "bo"], "title": "Hi", "message": "there",
                                "type": "COMMENT_ADDED", "channels": ["in_app", "push"]})
    ingest_batch(rt, receive(sqs, queues["normal"], expect=1), Enqueued())
    rows = events()
    assert len(rows) == 4 and {r.type for r in rows} == {"notification.stored"}
    assert {(r.endpoint, json.loads(r.body)["data"]["user_id"]) for r in rows} == {
        (e, u) for e in ("https://hooks.example.com/notif", "https://audit.example.com/in") for u in ("ana", "bo")}
    assert len({r.webhook_id for r in rows}) == 4 and {r.status for r in rows} == {"pending"}
    assert xmins(pg, "notif_webhook_event") == xmins(pg, "notif_notification")  # one transaction
    ana = Notification.get(Notification.user_id == "ana")
    body = bodies()[0]
    assert TIMESTAMP.match(body.pop("timestamp"))
    assert body == {"type": "notification.stored", "data": {
        "notification_id": ana.id, "key": "report-7", "user_id": "ana", "type": "COMMENT_ADDED", "priority": "normal",
        "correlation_id": ana.correlation_id, "channels": ["in_app", "push"], "send_at": None}}
    assert rows[0].correlation_id == ana.correlation_id
    assert sorted(hooked.handed) == sorted(r.id for r in rows)  # handed to the sender once committed


def test_a_duplicate_message_reports_nothing_more(hooked, sqs, queues, pg):
    rt = hooked.make()
    for _ in range(2):
        put(sqs, queues["normal"], {"id": "once", "user_id": "ana", "title": "Hi", "message": "there"})
        ingest_batch(rt, receive(sqs, queues["normal"], expect=1), Enqueued())
    assert len(events("notification.stored")) == 2  # one per endpoint, from the first copy only


def test_the_filter_writes_only_the_types_asked_for(hooked, sqs, queues, pg):
    rt = hooked.make(NOTIF_WEBHOOK_EVENTS="delivery.failed")
    put(sqs, queues["normal"], {"id": "k", "user_id": "ana", "title": "Hi", "message": "there"})
    ingest_batch(rt, receive(sqs, queues["normal"], expect=1), Enqueued())
    delivery = Delivery.get()
    states.claim(delivery.id)
    states.move(delivery.id, states.SENDING, states.SENT)
    assert events() == []
    other = Delivery.create(notification=delivery.notification, channel="email", status="sending")
    states.move(other.id, states.SENDING, states.FAILED, last_error="SMTP 550: no such user")
    assert [(r.type, json.loads(r.body)["data"]["error"]) for r in events()] == [
        ("delivery.failed", "SMTP 550: no such user")] * 2


def test_no_url_no_rows_and_no_statement_about_them(hooked, env, sqs, queues, pg, caplog):
    """The zero-cost path: the same work writes events with a URL, and without one issues not one statement
    more than it would without webhooks (a move is its one UPDATE)."""
    def work(rt):
        put(sqs, queues["normal"], {"user_id": "ana", "title": "Hi", "message": "there", "channels": ["in_app"]})
        ingest_batch(rt, receive(sqs, queues["normal"], expect=1), Enqueued())
        delivery = Delivery.select().order_by(Delivery.id.desc()).get()
        states.claim(delivery.id)
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="peewee"):
            states.move(delivery.id, states.SENDING, states.SENT, sent_at=utcnow())
        return statements(caplog)

    rt = Runtime.start(hooked.settings(NOTIF_WEBHOOK_URL="", NOTIF_WEBHOOK_SECRET=""))
    hooked.runtimes.append(rt)
    assert not rt.webhooks.wants("delivery.sent")
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="peewee"):
        quiet = work(rt)
        everything = statements(caplog)
    assert len(quiet) == 1 and quiet[0].startswith("('UPDATE")
    assert WebhookEvent.select().count() == 0
    assert not [s for s in everything if "webhook" in s]

    loud = work(hooked.make())
    assert any("INSERT INTO notif_webhook_event" in s for s in loud) and len(loud) > 1
    assert [r.type for r in events()] == ["notification.stored", "notification.stored", "delivery.sent",
                                          "delivery.sent"]


# -- delivery.sent / delivery.failed, with the state move -----------------------------------
def deliveries(*channels, user="ana", key="k1"):
    n = Notification.create(user_id=user, key=key, type="COMMENT_ADDED", title="t", message="m", priority="high",
                            correlation_id="corr-1")
    return [Delivery.create(notification=n, channel=c, status="sending", attempts=2) for c in channels]


def test_a_move_to_sent_or_failed_writes_its_event_in_the_same_transaction(hooked, pg):
    hooked.make()
    push, email = deliveries("push", "email")
    assert states.move(push.id, states.SENDING, states.SENT, attempts=3, sent_at=utcnow())
    assert states.move(email.id, states.SENDING, states.FAILED, attempts=3, last_error="SMTP 550: mailbox unknown")
    sent, failed = bodies("delivery.sent"), bodies("delivery.failed")
    assert [b["data"] for b in sent] == [{
        "delivery_id": push.id, "channel": "push", "attempts": 3, "notification_id": push.notification_id,
        "key": "k1", "user_id": "ana", "type": "COMMENT_ADDED", "priority": "high", "correlation_id": "corr-1"}]
    assert failed[0]["data"]["error"] == "SMTP 550: mailbox unknown" and failed[0]["data"]["channel"] == "email"
    for delivery, type_ in ((push, "delivery.sent"), (email, "delivery.failed")):  # each in its move's transaction
        assert xmins(pg, "notif_delivery", f"id = {delivery.id}") == xmins(pg, "notif_webhook_event",
                                                                           f"type = '{type_}'")
    assert sorted(hooked.handed) == [r.id for r in events()]
    assert not states.move(push.id, states.SENDING, states.SENT)  # a move that moves nothing reports nothing
    assert len(events()) == 4


def test_an_event_that_cannot_be_written_undoes_its_move(hooked, pg, monkeypatch):
    rt = hooked.make()
    (push,) = deliveries("push")

    def broken(events):
        raise RuntimeError("disk full")

    monkeypatch.setattr(rt.webhooks, "write", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        states.move(push.id, states.SENDING, states.SENT)
    assert Delivery.get_by_id(push.id).status == "sending" and hooked.handed == []


def test_a_move_inside_a_callers_transaction_is_left_to_the_sweep(hooked, pg):
    hooked.make()
    (push,) = deliveries("push")
    with database.atomic():
        states.move(push.id, states.SENDING, states.SENT)
    assert len(events("delivery.sent")) == 2 and hooked.handed == []  # not handed before the caller's commit


def test_a_bulk_move_is_one_query_and_one_insert(hooked, pg, caplog):
    hooked.make()
    ids = [d.id for i in range(30) for d in deliveries("in_app", user=f"u{i}", key=f"k{i}")]
    with caplog.at_level(logging.DEBUG, logger="peewee"):
        moved = states.move_many(ids, states.SENDING, states.SENT, attempts=Delivery.attempts + 1)
    assert sorted(moved) == sorted(ids)
    assert len([s for s in statements(caplog) if "INSERT" in s]) == 1
    assert len(statements(caplog)) == 3  # the UPDATE, one SELECT, one INSERT
    assert len(events("delivery.sent")) == 60 and {b["data"]["attempts"] for b in bodies()} == {3}


# -- a topic message ------------------------------------------------------------------------
def run_fanout(rt, sqs, queues, members, key="news"):
    change("club", members, [])
    put(sqs, queues["low"], {"id": key, "topic": "club", "title": "Hi", "message": "all", "type": "SYSTEM_ANNOUNCEMENT"})
    started = []
    ingest_batch(rt, receive(sqs, queues["low"], "low", expect=1), Enqueued(), start_fanouts=started.extend)
    step = declare(StubBroker(), lambda: rt).fanout["low"].fn  # the worker's actor, here (its next chunks: a stub)
    for _ in range(len(members) // rt.settings.fanout_chunk + 1):
        step(started[0][0])
    assert Delivery.select().where(Delivery.status == "sent").count() == len(members)


def test_a_topic_message_is_reported_once_with_its_recipient_count(hooked, sqs, queues, pg, caplog):
    rt = hooked.make(NOTIF_FANOUT_CHUNK="2")
    with caplog.at_level(logging.DEBUG, logger="peewee"):
        run_fanout(rt, sqs, queues, [f"m{i}" for i in range(5)])
    assert [r.type for r in events()] == ["notification.stored"] * 2  # no per-recipient row, no delivery.sent
    assert not [s for s in statements(caplog) if "notif_fanout\" AS" in s and "notif_delivery" in s]  # not even asked
    (body,) = bodies()
    assert body["data"] == {"key": "news", "topic": "club", "type": "SYSTEM_ANNOUNCEMENT", "priority": "low",
                            "correlation_id": body["data"]["correlation_id"], "channels": ["in_app"],
                            "recipients": 5, "send_at": None}
    assert sorted(hooked.handed) == [r.id for r in events()]


def test_per_recipient_when_asked_one_insert_per_chunk(hooked, sqs, queues, pg, caplog):
    rt = hooked.make(NOTIF_FANOUT_CHUNK="2", NOTIF_WEBHOOK_TOPIC_RECIPIENTS="on")
    with caplog.at_level(logging.DEBUG, logger="peewee"):
        run_fanout(rt, sqs, queues, [f"m{i}" for i in range(5)])
    stored, sent = bodies("notification.stored"), bodies("delivery.sent")
    assert sorted(b["data"]["user_id"] for b in stored) == [f"m{i}" for i in range(5)]
    assert {b["data"]["topic"] for b in stored} == {"club"}
    assert sorted(b["data"]["user_id"] for b in sent) == [f"m{i}" for i in range(5)]
    inserts = [s for s in statements(caplog) if "INSERT INTO notif_webhook_event" in s]
    assert len(inserts) == 3 * 2  # three chunks: one for their stored events, one for their copies' sent events


# -- digests --------------------------------------------------------------------------------
def test_a_digest_is_reported_when_its_window_closes_not_its_items(hooked, pg):
    rt = hooked.make()
    past = utcnow() - dt.timedelta(seconds=1)
    window = Digest.create(user_id="ana", batch_key="reports", open_key=Digest.bucket("ana", "reports"),
                           priority="normal", channels=["in_app"], closes_at=past, type="REPORT_SUBMITTED")
    for i in range(3):
        Notification.create(user_id="ana", key=f"r{i}", title=f"Report {i}", message="m", priority="normal",
                            correlation_id=f"c{i}", digest_id=window.id, type="REPORT_SUBMITTED")
    close(rt, window.id)
    (body,) = bodies()
    grouped = Notification.get(Notification.key == f"digest-{window.id}")
    assert body["data"]["notification_id"] == grouped.id
    assert body["data"]["digest"] == {"batch_key": "reports", "count": 3}
    assert sorted(hooked.handed) == [r.id for r in events()]


# -- the inbox: read, seen, archived ----------------------------------------------------------
@pytest.fixture
def inbox(app_client, hooked):
    client = app_client(NOTIF_WEBHOOK_URL="https://hooks.example.com/notif", NOTIF_WEBHOOK_SECRET=SECRET)
    client.app.state.webhooks = WebhookOutbox(client.app.state.settings, enqueue=hooked.handed.extend)
    return client


def add(user, key):
    return Notification.create(user_id=user, key=key, type="COMMENT_ADDED", title="t", message="m",
                               priority="normal", correlation_id=f"c-{key}").id


def test_inbox_changes_are_reported_in_their_transaction(inbox, hooked, pg):
    a, b, c = add("ana", "a"), add("ana", "b"), add("ana", "c")
    add("bo", "other")
    api = "/api/notifications"
    assert inbox.post(f"{api}/seen", json={"ids": [a, b]}, headers=auth("ana")).json()["marked"] == 2
    assert inbox.post(f"{api}/{a}/read", headers=auth("ana")).status_code == 200
    assert inbox.post(f"{api}/read-all", headers=auth("ana")).json()["marked"] == 2
    assert inbox.post(f"{api}/{c}/archive", headers=auth("ana")).status_code == 200
    assert inbox.delete(f"{api}/{c}/archive", headers=auth("ana")).status_code == 200
    inbox.post(f"{api}/{b}/archive", headers=auth("ana"))
    inbox.post(f"{api}/{b}/unread", headers=auth("ana"))  # out of the archive too
    inbox.post(f"{api}/{a}/unread", headers=auth("ana"))  # not archived: nothing to report
    inbox.post(f"{api}/{a}/read", headers=auth("ana"))
    got = [(r.type, json.loads(r.body)["data"]) for r in events()]
    summary = [(t, d["notification_id"], d.get("archived")) for t, d in got]
    assert summary == [("notification.seen", a, None), ("notification.seen", b, None), ("notification.read", a, None),
                       ("notification.read", b, None), ("notification.read", c, None),
                       ("notification.archived", c, True), ("notification.archived", c, False),
                       ("notification.archived", b, True), ("notification.archived", b, False),
                       ("notification.read", a, None)]
    read = got[2][1]
    assert read == {"notification_id": a, "key": "a", "user_id": "ana", "type": "COMMENT_ADDED",
                    "correlation_id": "c-a", "read_at": read["read_at"]} and TIMESTAMP.match(read["read_at"])
    assert got[6][1]["archived_at"] is None and TIMESTAMP.match(got[5][1]["archived_at"])
    assert sorted(hooked.handed) == [r.id for r in events()]
    # the last read and its event: one transaction
    assert xmins(pg, "notif_notification", f"id = {a}") == xmins(pg, "notif_webhook_event", f"id = {events()[-1].id}")
