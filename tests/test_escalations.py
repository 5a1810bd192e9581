"""Escalation: unread after `after` seconds, a notification goes out on other channels too — once.

In process, against real PostgreSQL, Redis and SQS over HTTP (moto), an SMTP server on loopback:
messages go through ingest, the scheduler's pass (:func:`notif.escalations.escalate_due`) runs at
a chosen time, and deliveries go through the worker's `deliver`. The real processes (a scheduler
killed mid-wait, the email reaching an SMTP server) are in tests/e2e/test_escalations_e2e.py.
"""
import datetime as dt
import threading
from dataclasses import replace

import pytest

from helpers import pg_query
from notif import escalations
from notif.amendments import amend
from notif.db import database
from notif.deliver import deliver
from notif.escalations import escalate_due
from notif.fanout import step
from notif.ingest import ingest_batch
from notif.models import Delivery, Escalation, Notification, Preference, utcnow
from notif.monitoring import metrics
from notif.scheduler.retention import prune
from notif.templates import TemplateStore
from notif.topics import change
from notif.trace import trace
from test_digests import close_when_due
from test_ingest import Enqueued, put, receive
from test_migrations import fresh_db  # noqa: F401 (a fixture)


def message(key="m1", user="ana", after=600, to=("email",), **extra):
    body = {"id": key, "recipients": [{"user_id": user, "email": f"{user}@example.com"}], "type": "REPORT_SUBMITTED",
            "variables": {"submitterName": "Bo", "branchName": "North", "reportId": 42}, "channels": ["in_app"], **extra}
    if after is not None:
        body["escalate"] = {"after": after, "channels": list(to)}
    return body


def ingest(rt, sqs, queues, *bodies):
    for body in bodies:
        put(sqs, queues["normal"], body)
    return ingest_batch(rt, receive(sqs, queues["normal"], expect=len(bodies)), Enqueued())


def later(seconds: float) -> dt.datetime:
    return utcnow() + dt.timedelta(seconds=seconds)


def escalated_channels(key="m1") -> dict[str, str]:
    rows = Delivery.select(Delivery.channel, Delivery.status).join(Notification).where(Notification.key == key)
    return {d.channel: d.status for d in rows}


@pytest.fixture
def mail_rt(runtime, smtp):  # noqa: F811
    runtime.settings = replace(runtime.settings, smtp_url=f"smtp://127.0.0.1:{smtp[1]}", email_from="n@example.com")
    return runtime


# -- validation --------------------------------------------------------------------------
@pytest.mark.parametrize("escalate, field, words", [
    ({"after": 0, "channels": ["email"]}, "escalate.after", "greater than or equal to 1"),
    ({"after": 31 * 86400, "channels": ["email"]}, "escalate.after", "less than or equal to 2592000"),
    ({"after": "600", "channels": ["email"]}, "escalate.after", "valid integer"),
    ({"after": 600.5, "channels": ["email"]}, "escalate.after", "valid integer"),
    ({"after": 600, "channels": []}, "escalate.channels", "at least 1 item"),
    ({"after": 600, "channels": ["in_app"]}, "escalate.channels", "`in_app` is what escalation follows up on"),
    ({"after": 600, "channels": ["email", "sms"]}, "escalate.channels.1", "unknown channel 'sms'; channels this "
                                                                          "deployment loads: email, push"),
    ({"after": 600}, "escalate.channels", "Field required"),
    ({"after": 600, "channels": ["email"], "when": "unread"}, "escalate.when", "unknown field; known fields: after, "
                                                                              "channels"),
    ("soon", "escalate", "valid dictionary"),
])
def test_a_bad_escalate_is_dead_lettered_naming_the_field(runtime, sqs, queues, escalate, field, words):
    body = message()
    body["escalate"] = escalate
    outcome = ingest(runtime, sqs, queues, body)
    (letter,) = outcome.dead_lettered
    assert letter.field == field and words in letter.reason and letter.reason.startswith(field + ":")
    assert Notification.select().count() == 0 and Escalation.select().count() == 0


def test_an_escalation_is_stored_with_its_notification_due_after_it_became_visible(runtime, sqs, queues):
    send_at = later(3600)
    ingest(runtime, sqs, queues, message("now", after=600),
           message("later", after=60, send_at=send_at.isoformat() + "+00:00"),
           message("direct", after=60, to=("email", "push"), channels=["in_app", "email"]),
           message("none", after=None))
    rows = {e.notification.key: e for e in Escalation.select(Escalation, Notification).join(Notification)}
    assert set(rows) == {"now", "later", "direct"}  # (a message without `escalate` has none)
    now = rows["now"]
    assert (now.state, now.after, now.channels) == ("pending", 600, ["email"])
    assert now.due_at == now.notification.created_at + dt.timedelta(seconds=600)
    assert abs((rows["later"].due_at - (send_at + dt.timedelta(seconds=60))).total_seconds()) < 0.001  # from send_at
    assert rows["direct"].channels == ["push"]  # email goes out directly already: not escalated to again


def test_the_templates_escalate_section_is_used_when_the_message_has_none(runtime, sqs, queues, tmp_path):
    (tmp_path / "NUDGE.toml").write_text('title = "Hi {{ who }}"\nmessage = "m"\nchannels = ["in_app"]\n'
                                         '[escalate]\nafter = 900\nchannels = ["email", "push"]\n')
    runtime.templates = TemplateStore([tmp_path, *runtime.templates.directories])
    base = {"recipients": ["ana"], "type": "NUDGE", "variables": {"who": "Ana"}}
    ingest(runtime, sqs, queues, {"id": "by-template", **base},
           {"id": "own", **base, "escalate": {"after": 30, "channels": ["push"]}})
    rows = {e.notification.key: (e.after, e.channels) for e in Escalation.select(Escalation, Notification).join(Notification)}
    assert rows == {"by-template": (900, ["email", "push"]), "own": (30, ["push"])}


@pytest.mark.parametrize("section, words", [
    ('[escalate]\nafter = 0\nchannels = ["email"]\n', "[escalate] after: Input should be greater than or equal to 1"),
    ('[escalate]\nafter = 60\nchannels = ["in_app"]\n', "[escalate] channels: `in_app` is what escalation follows up"),
    ('[escalate]\nafter = 60\n', "[escalate] channels: Field required"),
    ('escalate = 60\n', "[escalate] section: Input should be a valid dictionary"),
    ('[escalate]\nafter = 60\nchannels = ["sms"]\n', "template BAD [escalate] channels: unknown channel 'sms'"),
])
def test_a_bad_escalate_section_dead_letters_the_message_naming_the_template(runtime, sqs, queues, tmp_path, section,
                                                                             words):
    (tmp_path / "BAD.toml").write_text('title = "t"\nmessage = "m"\n' + section)
    runtime.templates = TemplateStore([tmp_path, *runtime.templates.directories])
    outcome = ingest(runtime, sqs, queues, {"id": "x", "user_id": "ana", "type": "BAD"})
    (letter,) = outcome.dead_lettered
    assert words in letter.reason and letter.kind == "template_error"


# -- the pass ------------------------------------------------------------------------------
def test_unread_when_due_it_is_sent_on_the_escalation_channels_once(mail_rt, sqs, queues, smtp):  # noqa: F811
    ingest(mail_rt, sqs, queues, message(after=60))
    assert escalate_due(mail_rt, Enqueued(), now=later(59)).escalated == []  # not due yet
    before = metrics.ESCALATIONS.labels("escalated")._value.get()
    got = Enqueued()
    done = escalate_due(mail_rt, got, now=later(61))
    n = Notification.get()
    assert done.escalated == [n.id] and escalated_channels() == {"in_app": "pending", "email": "pending"}
    email = Delivery.get(Delivery.channel == "email")
    assert got == [(email.id, "normal")]
    assert metrics.ESCALATIONS.labels("escalated")._value.get() == before + 1
    assert escalate_due(mail_rt, got, now=later(3600)).escalated == [] and len(got) == 1  # once
    assert deliver(mail_rt, email.id) == "sent"
    (mail,) = smtp[0].messages  # the template's [email] part, as a direct send renders it
    assert mail["Subject"] == "Bo submitted a report for North" and mail["To"] == "ana@example.com"
    e = Escalation.get()
    assert (e.state, e.decided_at is not None) == ("escalated", True)


def test_read_before_it_is_due_nothing_is_sent(runtime, sqs, queues):
    ingest(runtime, sqs, queues, message(after=60))
    read_at = utcnow()
    Notification.update(read_at=read_at, seen_at=read_at).execute()  # as POST /api/notifications/{id}/read does
    done = escalate_due(runtime, Enqueued(), now=later(61))
    assert done.read == [Notification.get().id] and done.escalated == []
    assert escalated_channels() == {"in_app": "pending"}
    e = Escalation.get()
    assert (e.state, e.read_at) == ("read", read_at)
    assert escalate_due(runtime, Enqueued(), now=later(3600)).read == []  # settled once


def test_retracted_or_expired_first_it_is_withdrawn_and_a_cancelled_one_is_gone(runtime, sqs, queues):
    ingest(runtime, sqs, queues, message("retracted", after=60), message("expiring", after=60, ttl=30),
           message("cancelled", after=60, send_at=later(600).isoformat() + "+00:00"))
    put(sqs, queues["normal"], {"retract": "retracted"})
    put(sqs, queues["normal"], {"cancel": "cancelled"})
    ingest_batch(runtime, receive(sqs, queues["normal"], expect=2), Enqueued())
    assert {e.notification.key for e in Escalation.select(Escalation, Notification).join(Notification)} == {
        "retracted", "expiring"}  # the cancelled notification went, its escalation with it
    done = escalate_due(runtime, Enqueued(), now=later(61))
    assert len(done.withdrawn) == 2 and done.escalated == []
    notes = {e.notification.key: e.note for e in Escalation.select(Escalation, Notification).join(Notification)}
    assert notes["retracted"] == "retracted by its producer" and notes["expiring"].startswith("expired at ")
    assert set(escalated_channels("retracted")) == {"in_app"}  # (withdrawn by the retract) and no email


def test_preferences_apply_an_opted_out_user_gets_no_email_and_the_trace_says_why(runtime, sqs, queues):
    Preference.create(user_id="ana", settings={"channels": {"email": False}})
    ingest(runtime, sqs, queues, message(after=60, to=("email", "push")))
    got = Enqueued()
    escalate_due(runtime, got, now=later(61))
    assert escalated_channels() == {"in_app": "pending", "email": "skipped", "push": "pending"}
    assert len(got) == 1  # push only
    (recipient,) = trace("m1")["recipients"]
    email = next(d for d in recipient["deliveries"] if d["channel"] == "email")
    assert email["reason"]["code"] == "opted_out" and email["reason"]["setting"] == "channels.email"
    assert recipient["escalation"]["state"] == "escalated"
    assert recipient["escalation"]["text"].endswith("(email, push)")


def test_a_critical_template_escalates_whatever_the_preferences(runtime, sqs, queues):
    Preference.create(user_id="ana", settings={"channels": {"email": False}})
    ingest(runtime, sqs, queues, {"id": "alert", "recipients": [{"user_id": "ana", "email": "a@example.com"}],
                                  "type": "SECURITY_ALERT", "channels": ["in_app"],
                                  "variables": runtime.templates.get("SECURITY_ALERT").sample,
                                  "escalate": {"after": 60, "channels": ["email"]}})
    escalate_due(runtime, Enqueued(), now=later(61))
    assert escalated_channels("alert") == {"in_app": "pending", "email": "pending"}


def test_the_email_feature_off_records_the_escalation_email_as_skipped(runtime, sqs, queues):
    runtime.settings = replace(runtime.settings, feature_email=False)
    ingest(runtime, sqs, queues, message(after=60))
    escalate_due(runtime, Enqueued(), now=later(61))
    assert escalated_channels() == {"in_app": "pending", "email": "skipped"}
    assert Delivery.get(Delivery.channel == "email").reason_code == "channel_off"


def test_the_trace_says_when_it_is_due_when_it_escalated_and_that_a_read_one_did_not(runtime, sqs, queues):
    ingest(runtime, sqs, queues, message("a", after=60), message("b", after=60))
    due = Escalation.get(Escalation.notification == Notification.get(Notification.key == "a").id).due_at
    iso = due.isoformat(timespec="milliseconds") + "Z"
    assert trace("a")["recipients"][0]["escalation"]["text"] == f"escalation due at {iso} (email) unless read by then"
    read_at = utcnow()
    Notification.update(read_at=read_at).where(Notification.key == "b").execute()
    assert trace("b")["recipients"][0]["escalation"]["text"].startswith(
        f"not escalated: read at {read_at.isoformat(timespec='milliseconds')}Z")
    escalate_due(runtime, Enqueued(), now=later(61))
    a, b = trace("a")["recipients"][0]["escalation"], trace("b")["recipients"][0]["escalation"]
    assert a["state"] == "escalated" and a["text"] == f"escalated at {a['decided_at']} (email)"
    assert b == {"state": "read", "after": 60, "channels": ["email"], "due_at": b["due_at"], "decided_at": b["decided_at"],
                 "read_at": read_at.isoformat(timespec="milliseconds") + "Z",
                 "text": f"not escalated: read at {read_at.isoformat(timespec='milliseconds')}Z"}


# -- once, with several schedulers ------------------------------------------------------------
def test_two_schedulers_passing_at_once_escalate_each_once(runtime, sqs, queues):
    ingest(runtime, sqs, queues, *[message(f"k{i}", user=f"u{i}", after=60) for i in range(20)])
    results, got = [], Enqueued()

    def run():
        with database.connection_context():
            results.append(escalate_due(runtime, got, now=later(61)))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results[0].escalated + results[1].escalated) == sorted(n.id for n in Notification.select())
    assert len(got) == 20 and Delivery.select().where(Delivery.channel == "email").count() == 20


def test_a_leader_deposed_mid_pass_and_its_successor_cannot_both_escalate(runtime, sqs, queues, monkeypatch):
    """The old leader has claimed the row and is writing the deliveries when the new one passes: the new one's
    conditional UPDATE waits for the old one's transaction, then finds the row settled. Nothing twice."""
    ingest(runtime, sqs, queues, message(after=60))
    inside, go_on = threading.Event(), threading.Event()
    rows = escalations.delivery_rows

    def slow_rows(*args):
        if threading.current_thread().name == "old-leader":
            inside.set()
            assert go_on.wait(10)
        return rows(*args)

    monkeypatch.setattr(escalations, "delivery_rows", slow_rows)
    results = {}

    def run(name):
        with database.connection_context():
            results[name] = escalate_due(runtime, Enqueued(), now=later(61))

    old = threading.Thread(target=run, args=("old",), name="old-leader")
    old.start()
    assert inside.wait(10)  # the old leader holds the claim, uncommitted
    new = threading.Thread(target=run, args=("new",), name="new-leader")
    new.start()
    new.join(0.5)
    assert new.is_alive()  # the successor's claim waits on the row...
    go_on.set()
    old.join(10)
    new.join(10)
    assert results["old"].escalated == [Notification.get().id] and results["new"].escalated == []  # ...then loses
    assert escalated_channels() == {"in_app": "pending", "email": "pending"}


# -- digests, topics, retention ---------------------------------------------------------------
def test_a_digest_escalates_as_its_grouped_notification(runtime, sqs, queues):
    ingest(runtime, sqs, queues, *[message(f"report-{i}", after=300 - i * 100, to=[("email",), ("push",)][i],
                                           batch_key="reports", batch_window=1) for i in range(2)])
    assert {e.state for e in Escalation.select()} == {"held"}  # items wait for their digest
    close_when_due(runtime)
    digest = Notification.get(Notification.key == "digest-1")
    e = Escalation.get(Escalation.notification == digest.id)
    assert (e.state, e.after, e.channels) == ("pending", 200, ["email", "push"])  # the shortest wait, every channel
    assert e.due_at == digest.created_at + dt.timedelta(seconds=200)
    item = trace("report-0")["recipients"][0]
    assert item["escalation"]["state"] == "pending" and item["escalation"]["after"] == 200  # the digest's
    escalate_due(runtime, Enqueued(), now=later(201))
    assert escalated_channels("digest-1") == {"in_app": "pending", "email": "pending", "push": "pending"}
    assert trace("report-1")["recipients"][0]["escalation"]["state"] == "escalated"


def test_each_member_of_a_topic_gets_the_escalation(runtime, sqs, queues):
    change("branch", [f"m{i}" for i in range(5)], [])
    runtime.settings = replace(runtime.settings, fanout_chunk=2)
    put(sqs, queues["normal"], {"id": "news", "topic": "branch", "title": "t", "message": "m", "channels": ["in_app"],
                                "escalate": {"after": 60, "channels": ["push"]}})
    started = []
    ingest_batch(runtime, receive(sqs, queues["normal"], expect=1), Enqueued(), start_fanouts=started.extend)
    ((fanout_id, _),) = started
    while step(runtime, fanout_id).more:
        pass
    assert Escalation.select().where(Escalation.state == "pending").count() == 5
    assert len(escalate_due(runtime, Enqueued(), now=later(61)).escalated) == 5
    assert Delivery.select().where(Delivery.channel == "push").count() == 5


def test_retention_keeps_a_notification_whose_escalation_is_pending(runtime, sqs, queues):
    ingest(runtime, sqs, queues, message("waiting", after=60), message("done", after=None))
    Notification.update(created_at=utcnow() - dt.timedelta(days=100)).execute()
    Delivery.update(status="sent").execute()
    prune(None, 90)
    assert [n.key for n in Notification.select()] == ["waiting"]


def test_the_due_scan_reads_the_partial_index(runtime, pg, sqs, queues):
    ingest(runtime, sqs, queues, message(after=60))
    pg_query(pg, "ANALYZE notif_escalation")
    plan = "\n".join(row[0] for row in pg_query(pg, "SET enable_seqscan = off; EXPLAIN SELECT notification_id FROM "
                                                    "notif_escalation WHERE state = 'pending' AND due_at <= now() "
                                                    "ORDER BY due_at LIMIT 1000"))
    assert "notif_escalation_due" in plan


def test_an_update_with_unread_true_before_it_is_due_lets_it_escalate(runtime, sqs, queues):
    """What counts is whether it is unread when the time comes: read, then marked unread again, it escalates."""
    ingest(runtime, sqs, queues, message(after=60))
    Notification.update(read_at=utcnow()).execute()
    put(sqs, queues["normal"], {"update": "m1", "unread": True})
    (item,) = receive(sqs, queues["normal"], expect=1)
    from notif.prepare import prepare
    amend(runtime, prepare(runtime, item))
    assert escalate_due(runtime, Enqueued(), now=later(61)).escalated == [Notification.get().id]


# -- migration 0013 ----------------------------------------------------------------------------
def test_0013_adds_escalations_with_their_due_index_and_goes_back_keeping_everything_else(fresh_db):  # noqa: F811
    """Up, down (what was not due yet is never sent; its notification stays) and up again, on PostgreSQL and SQLite."""
    from notif.migrations import DOWN_LOSES, migrate

    migrate()
    n = Notification.create(user_id="u1", key="k", title="t", message="m", priority="normal", correlation_id="c")
    Escalation.create(notification=n, after=60, channels=["email"], state="pending", due_at=later(60))
    assert "notif_escalation_due" in {i.name for i in database.get_indexes("notif_escalation")}
    assert "escalations" in DOWN_LOSES[13]
    migrate(to=11)
    assert not database.table_exists("notif_escalation") and Notification.select().count() == 1
    migrate()
    assert Escalation.select().count() == 0 and "notif_escalation_due" in {
        i.name for i in database.get_indexes("notif_escalation")}
    Notification.delete().execute()  # an escalation goes with its notification (ON DELETE CASCADE)
    n = Notification.create(user_id="u1", key="k", title="t", message="m", priority="normal", correlation_id="c")
    Escalation.create(notification=n, after=60, channels=["email"], state="pending", due_at=later(60))
    Notification.delete().execute()
    assert Escalation.select().count() == 0


@pytest.mark.processes  # runs the notif command: not in the fast tier
def test_templates_check_fails_an_escalate_section_naming_a_channel_not_loaded(tmp_path):
    import subprocess
    import sys
    (tmp_path / "NUDGE.toml").write_text('title = "t"\nmessage = "m"\n[escalate]\nafter = 60\nchannels = ["sms"]\n')
    result = subprocess.run([sys.executable, "-m", "notif.cli", "templates", "check"], capture_output=True, text=True,
                            timeout=60, env={"PATH": "/usr/bin:/bin", "NOTIF_TEMPLATES_DIR": str(tmp_path),
                                             "NOTIF_STATE_DIR": str(tmp_path / "state")})
    assert result.returncode == 1
    assert "FAILED  NUDGE: template NUDGE [escalate] channels: unknown channel 'sms'; channels this deployment " \
           "loads: email, push" in result.stdout
