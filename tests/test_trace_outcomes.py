"""The trace of a message, continued from tests/test_trace.py: withdrawn (cancelled, retracted,
expired), failed and shadow deliveries, a topic-sized message a page at a time, and `notif trace`.
"""
import datetime as dt
import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest

from helpers import pg_query, wait_until
from notif.cancels import cancel_scheduled
from notif.db import database, init_database
from notif.ingest import ingest_batch
from notif.migrations import migrate
from notif.models import Delivery, Notification, Preference, utcnow
from notif.runtime import Runtime
from notif.topics import change
from notif.trace import summary_query, trace
from test_fanout_bulk import fanout_actor
from test_ingest import Enqueued, put, receive
from trace_support import (  # noqa: F401 (client, push_service and rt are fixtures)
    SERVICE,
    channels,
    client,
    deliver_all,
    iso,
    push_service,
    rt,
    send,
    subscribe,
    traced,
)


# -- withdrawn: cancelled, retracted, expired --------------------------------------------
def test_a_cancelled_message_is_known_by_its_cancel(client, rt, sqs, queues):
    at = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()
    send(rt, sqs, queues, {"id": "meeting", "recipients": ["cy", "di"], "title": "t", "message": "m", "send_at": at})
    send(rt, sqs, queues, {"cancel": "meeting"})
    assert Notification.select().count() == 0  # a cancel deletes what it withdraws
    doc = traced(client, "meeting")
    assert doc["message"]["cancelled_at"] is not None and doc["recipients"] == []
    assert doc["summary"] == {"recipients": 0, "held_in_digest": 0, "channels": {}}
    (cy,) = traced(client, "meeting", user="cy")["recipients"]
    assert (cy["notification_id"], cy["reason"]) == (None, {
        "code": "cancelled", "at": doc["message"]["cancelled_at"],
        "text": f"the message was cancelled at {doc['message']['cancelled_at']} before it went out"})
    cancel_scheduled("never-sent")  # a cancel that overtook its send is known too
    assert traced(client, "never-sent", user="cy")["recipients"][0]["reason"]["code"] == "cancelled"


def test_a_retracted_message_says_when_and_what_it_withdrew(client, rt, sqs, queues, push_service):
    subscribe(push_service[0], "eve")
    send(rt, sqs, queues, {"id": "oops", "user_id": "eve", "title": "t", "message": "m", "channels": ["in_app", "push"]})
    send(rt, sqs, queues, {"retract": "oops"})  # before the worker took the push
    doc = traced(client, "oops")
    at = doc["message"]["retracted_at"]
    assert at is not None and at == iso(Notification.get().retracted_at)
    got = channels(doc, "eve")
    assert got["in_app"]["state"] == "sent"  # made with its ingest batch: it was in the inbox until the retract
    assert (got["push"]["state"], got["push"]["reason"]) == ("withdrawn", {"code": "retracted", "at": at,
                                                                           "text": "retracted by its producer"})
    assert doc["recipients"][0]["reason"] == {"code": "retracted", "at": at, "text": f"retracted by its producer at {at}"}

    send(rt, sqs, queues, {"retract": "early"})  # a retract that overtook its send: the send is dropped on arrival
    send(rt, sqs, queues, {"id": "early", "user_id": "eve", "title": "t", "message": "m"})
    (eve,) = traced(client, "early", user="eve")["recipients"]
    assert eve["notification_id"] is None and eve["reason"]["code"] == "retracted"


def test_an_expired_notification_is_never_sent_and_says_when_it_expired(client, rt, sqs, queues, push_service):
    subscribe(push_service[0], "fay")
    enqueued = send(rt, sqs, queues, {"id": "flash", "user_id": "fay", "title": "t", "message": "m", "ttl": 1,
                                      "channels": ["push"]})
    expires = Notification.get().expires_at
    wait_until(lambda: utcnow() > expires, 5, 0.05, "the notification to expire")
    pending = channels(traced(client, "flash"), "fay")["push"]
    assert (pending["state"], pending["reason"]["code"]) == ("pending", "expired")  # not looked at yet: will not go
    assert pending["reason"]["text"].endswith("; it will not be sent")
    deliver_all(rt, enqueued)
    doc = traced(client, "flash")
    assert doc["recipients"][0]["reason"] == {"code": "expired", "at": iso(expires), "text": f"expired at {iso(expires)}"}
    push = channels(doc, "fay")["push"]
    assert (push["state"], push["reason"]) == ("withdrawn", {"code": "expired", "at": iso(expires),
                                                             "text": f"expired at {iso(expires)}"})
    assert push_service[0].requests == 0


# -- failed, shadow ----------------------------------------------------------------------
def test_a_failed_delivery_gives_its_last_error_and_every_attempt_with_its_time(client, rt, sqs, queues, smtp):
    enqueued = send(rt, sqs, queues, {"id": "invoice", "title": "t", "message": "m", "channels": ["email"],
                                      "recipients": [{"user_id": "gus", "email": "busy@example.com"},
                                                     {"user_id": "hal", "email": "nobody@example.com"}]})
    for _ in range(8):  # the email channel's policy: 8 attempts, then it gives up
        deliver_all(rt, enqueued)
    doc = traced(client, "invoice")
    gus, hal = channels(doc, "gus")["email"], channels(doc, "hal")["email"]
    row = Delivery.get_by_id(gus["id"])
    assert (gus["state"], gus["attempts"]) == ("failed", 8)
    assert gus["last_error"] == row.last_error and row.last_error.startswith("gave up after 8 attempts; last error: SMTP 451")
    assert gus["reason"] == {"code": "failed", "error": row.last_error, "dead_letter": f"delivery:{row.id}",
                             "text": f"{row.last_error} (a dead letter: notif dlq replay delivery:{row.id} sends it again)"}
    log = gus["attempt_log"]
    assert [(a["attempt"], a["outcome"]) for a in log] == [(i, "transient_error") for i in range(1, 9)]
    assert all(a["error"].startswith("SMTP 451") and a["started_at"] <= a["finished_at"] for a in log)
    assert [a["started_at"] for a in log] == sorted(a["started_at"] for a in log)
    assert (hal["state"], hal["attempts"], [a["outcome"] for a in hal["attempt_log"]]) == ("failed", 1, ["permanent_error"])
    assert hal["reason"]["error"].startswith("SMTP 550")
    assert doc["summary"]["channels"] == {"email": {"failed": 2}}


def test_a_retry_says_when_the_next_attempt_is_due(client, rt, sqs, queues, smtp):
    deliver_all(rt, send(rt, sqs, queues, {"id": "once", "title": "t", "message": "m",
                                           "recipients": [{"user_id": "ivy", "email": "busy@example.com"}],
                                           "channels": ["email"]}))
    email = channels(traced(client, "once"), "ivy")["email"]
    assert email["state"] == "pending" and email["reason"]["code"] == "retrying"
    assert email["reason"]["until"] == email["next_attempt_at"] is not None and email["reason"]["error"].startswith("SMTP 451")


def test_shadow_mode_says_it_was_recorded_not_sent(client, rt, sqs, queues, push_service):
    rt.settings = replace(rt.settings, shadow=True)
    subscribe(push_service[0], "jo")
    deliver_all(rt, send(rt, sqs, queues, {"id": "shadowed", "user_id": "jo", "title": "t", "message": "m",
                                           "channels": ["in_app", "push"]}))
    got = channels(traced(client, "shadowed"), "jo")
    for channel in ("in_app", "push"):
        d = got[channel]
        assert d["state"] == "shadow" and d["reason"]["code"] == "shadow" and d["reason"]["at"] == d["sent_at"]
        assert [a["outcome"] for a in d["attempt_log"]] == ["shadow"]
    assert push_service[0].requests == 0


# -- a topic-sized message: pages, ?user= -----------------------------------------------
def test_a_topic_messages_recipients_come_a_page_at_a_time_with_the_summary_once(client, rt, sqs, queues):
    members = [f"m{i:02d}" for i in range(25)]
    change("club", members, [])
    rt.settings = replace(rt.settings, fanout_chunk=10)
    put(sqs, queues["low"], {"id": "club-news", "topic": "club", "title": "Hi", "message": "all",
                             "channels": ["in_app", "push"]})
    started = []
    ingest_batch(rt, receive(sqs, queues["low"], "low", expect=1), Enqueued(), start_fanouts=started.extend)
    run = fanout_actor(rt)
    run(started[0][0])  # one chunk of ten
    doc = traced(client, "club-news", limit=100)
    assert doc["message"]["topic"]["outcome"] == "running"
    assert (doc["message"]["topic"]["stored"], doc["message"]["topic"]["remaining"]) == (10, 15)
    (m20,) = traced(client, "club-news", user="m20")["recipients"]
    assert (m20["notification_id"], m20["reason"]["code"]) == (None, "fanning_out")
    change("club", ["late"], [])
    for _ in range(2):
        run(started[0][0])

    pages, cursor = [], None
    while True:
        doc = traced(client, "club-news", limit=10, **({"cursor": cursor} if cursor else {}))
        pages.append(doc)
        cursor = doc["next_cursor"]
        if cursor is None:
            break
    assert [len(p["recipients"]) for p in pages] == [10, 10, 5]
    assert [r["user_id"] for p in pages for r in p["recipients"]] == members  # subscription order, each once
    assert pages[0]["summary"] == {"recipients": 25, "held_in_digest": 0,
                                   "channels": {"in_app": {"sent": 25}, "push": {"pending": 25}}}
    assert [p["summary"] for p in pages[1:]] == [None, None]  # counted once, on the first page
    topic = pages[0]["message"]["topic"]
    assert (topic["name"], topic["outcome"], topic["stored"], topic["remaining"]) == ("club", "done", 25, 0)
    assert topic["finished_at"] is not None

    (m07,) = traced(client, "club-news", user="m07")["recipients"]
    assert m07["notification_id"] == Notification.get(Notification.user_id == "m07").id
    assert {d["channel"]: d["state"] for d in m07["deliveries"]} == {"in_app": "sent", "push": "pending"}
    (late,) = traced(client, "club-news", user="late")["recipients"]
    assert late["reason"] == {"code": "not_a_recipient", "text": "subscribed to topic club after the message was ingested"}
    (stranger,) = traced(client, "club-news", user="stranger")["recipients"]
    assert stranger["reason"]["code"] == "not_a_recipient"


def test_the_summary_reads_only_the_messages_rows(client, rt, pg):
    """The GROUP BY behind `summary` goes by the key index to the message's notifications and by the
    notification's index to their deliveries: no scan of either table."""
    pg_query(pg, "INSERT INTO notif_notification (user_id, key, title, message, priority, correlation_id, created_at) "
                 "SELECT 'u' || i, 'bulk-' || (i / 100), 't', 'm', 'low', 'c', now() FROM generate_series(1, 20000) i")
    pg_query(pg, "INSERT INTO notif_delivery (notification_id, channel, status, attempts, created_at, updated_at) "
                 "SELECT id, c, 'sent', 1, now(), now() FROM notif_notification, unnest(ARRAY['in_app', 'push']) c")
    pg_query(pg, "ANALYZE notif_notification")
    pg_query(pg, "ANALYZE notif_delivery")
    sql, params = summary_query("bulk-7").sql()
    plan = "\n".join(row[0] for row in pg_query(pg, "EXPLAIN " + sql, params))
    assert "Seq Scan" not in plan and "Index Cond: ((key)::text" in plan, plan  # (the key index, 0011)
    assert all("Index" in line for line in plan.splitlines() if " on notif_delivery" in line), plan
    assert traced(client, "bulk-7")["summary"] == {"recipients": 100, "held_in_digest": 0,
                                                   "channels": {"in_app": {"sent": 100}, "push": {"sent": 100}}}


# -- notif trace -------------------------------------------------------------------------
@pytest.mark.processes  # runs `notif trace` as a process
def test_notif_trace_prints_a_table_and_with_json_the_apis_document(client, rt, env, sqs, queues, smtp):
    Preference.create(user_id="kim", settings={"channels": {"email": False}})
    deliver_all(rt, send(rt, sqs, queues, {"id": "weekly", "title": "Weekly report", "message": "m", "type": "WEEKLY",
                                           "channels": ["in_app", "email"],
                                           "recipients": [{"user_id": "kim", "email": "kim@example.com"},
                                                          {"user_id": "lee", "email": "nobody@example.com"}]}))

    def notif(*args):
        return subprocess.run([sys.executable, "-m", "notif.cli", "trace", *args], env={**os.environ, **env},
                              capture_output=True, text=True, timeout=60)

    as_json = notif("weekly", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == traced(client, "weekly")  # the same document
    table = notif("weekly")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == "message    weekly" and lines[1].startswith("type       WEEKLY   priority normal   correlation ")
    assert "summary    2 recipients" in lines and any(line.split() == ["email", "failed", "1,", "skipped", "1"]
                                                        for line in lines)
    rows = {tuple(line.split()[:3]): line for line in lines if line.startswith(("kim ", "lee "))}
    assert rows[("kim", "email", "skipped")].endswith(
        "opted_out: preference: the user opted out of the email channel (channels.email)")
    assert rows[("lee", "email", "failed")].split()[3] == "1" and "failed: SMTP 550" in rows[("lee", "email", "failed")]
    attempt = lines[lines.index(rows[("lee", "email", "failed")]) + 1]
    assert attempt.split()[:2] == ["attempt", "1"] and attempt.endswith("permanent_error")  # (the error: just above)
    assert ("kim", "in_app", "sent") in rows and lines[-1] == "2 recipients shown"

    first = notif("weekly", "--limit", "1")
    assert first.stdout.splitlines()[-1].startswith("1 recipient shown; more with --cursor ")
    cursor = first.stdout.split("--cursor ")[-1].strip()
    rest = notif("weekly", "--limit", "1", "--cursor", cursor).stdout
    assert "lee " in rest and "kim " not in rest and "summary" not in rest
    only = notif("weekly", "--user", "kim").stdout
    assert "kim " in only and "lee " not in only
    missing = notif("no-such-key")
    assert missing.returncode == 1 and "'no-such-key'" in missing.stderr and missing.stdout == ""


def test_a_trace_on_sqlite(settings, sqs, queues, tmp_path):
    """`notif dev`'s database: the same document from SQLite."""
    url = f"sqlite:///{tmp_path / 'notif.db'}"
    init_database(url)
    try:
        migrate()
        rt = Runtime.start(replace(settings, database_url=url))
        with database.connection_context():
            Preference.create(user_id="b", settings={"channels": {"push": False}})
            deliver_all(rt, send(rt, sqs, queues, {"id": "k", "recipients": ["a", "b"], "title": "t", "message": "m",
                                                   "channels": ["in_app", "push"]}))
            first = trace("k", limit=1)
            assert first is not None and [r["user_id"] for r in first["recipients"]] == ["a"]
            assert first["summary"] == {"recipients": 2, "held_in_digest": 0,
                                        "channels": {"in_app": {"sent": 2}, "push": {"failed": 1, "skipped": 1}}}
            push = first["recipients"][0]["deliveries"][1]  # (no VAPID keys here: a permanent error)
            assert push["reason"]["code"] == "failed" and "VAPID_PRIVATE_KEY" in push["reason"]["error"]
            rest = trace("k", limit=1, cursor=first["next_cursor"])
            assert rest is not None and rest["next_cursor"] is None and rest["summary"] is None
            (b,) = rest["recipients"]
            got = {d["channel"]: d for d in b["deliveries"]}
            assert got["push"]["reason"]["code"] == "opted_out" and got["push"]["reason"]["preference"] == "channel"
            assert got["in_app"]["attempt_log"][0]["outcome"] == "sent"
            assert trace("nothing") is None
        rt.redis.close()
    finally:
        database.close()
