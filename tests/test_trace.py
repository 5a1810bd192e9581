"""The trace of a message (GET /api/messages/{key}): a reason for each way a notification does not reach
a user (sent, opted out, skipped, held back), each attempt with its time and outcome, and the route's own
answers. tests/test_trace_outcomes.py has the withdrawn, failed and topic-sized ones and `notif trace`.

Messages go onto SQS (moto over HTTP) and through ingest, delivery and the scheduler's jobs in
process, against real PostgreSQL and Redis, a push service and an SMTP server on loopback; the
trace is read through the web app (in process) with a service token (tests/trace_support.py).
"""
import datetime as dt
from dataclasses import replace

from helpers import token
from notif.models import Delivery, Digest, Notification, Preference, utcnow
from test_digests import close_when_due
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


# -- sent ------------------------------------------------------------------------------
def test_a_sent_message_shows_what_was_received_and_each_attempt_with_its_time(client, rt, sqs, queues, push_service,
                                                                              smtp):
    subscribe(push_service[0], "ana")
    deliver_all(rt, send(rt, sqs, queues, {"id": "report-42", "type": "REPORT_SUBMITTED", "priority": "high",
                                           "recipients": [{"user_id": "ana", "email": "ana@example.com"}],
                                           "variables": {"submitterName": "Bo", "branchName": "North", "reportId": 42},
                                           "channels": ["in_app", "push", "email"]}))
    assert len(smtp[0].messages) == 1 and push_service[0].subscribers["/push/ana"].received
    doc = traced(client, "report-42")
    stored = Notification.get(Notification.key == "report-42")
    assert doc["message"] == {
        "key": "report-42", "type": "REPORT_SUBMITTED", "priority": "high", "correlation_id": stored.correlation_id,
        "sqs_message_id": stored.sqs_message_id, "sqs_sent_at": iso(stored.sqs_sent_at),
        "received_at": iso(stored.created_at), "send_at": None, "expires_at": None, "updated_at": None,
        "retracted_at": None, "cancelled_at": None, "topic": None}
    assert doc["summary"] == {"recipients": 1, "held_in_digest": 0,
                              "channels": {"email": {"sent": 1}, "in_app": {"sent": 1}, "push": {"sent": 1}}}
    assert doc["next_cursor"] is None
    got = channels(doc, "ana")
    rows = {d.channel: d for d in Delivery.select()}
    for channel in ("push", "email"):  # one attempt each, logged by the worker with its start and end
        d = got[channel]
        assert (d["state"], d["attempts"], d["reason"], d["sent_at"]) == ("sent", 1, None, iso(rows[channel].sent_at))
        (attempt,) = d["attempt_log"]
        assert attempt["attempt"] == 1 and attempt["outcome"] == "sent" and attempt["logged"] and attempt["error"] is None
        assert attempt["started_at"] <= attempt["finished_at"] == d["sent_at"]
    # the in-app row went out with its batch in one UPDATE, which logs nothing: shown from its sent_at
    assert got["in_app"]["attempt_log"] == [{"attempt": 1, "started_at": None, "finished_at": iso(rows["in_app"].sent_at),
                                             "outcome": "sent", "error": None, "logged": False}]

    # what the user did with it since: seen (the bell opened), read, archived
    (ana,) = doc["recipients"]
    assert (ana["seen_at"], ana["read_at"], ana["archived_at"]) == (None, None, None)
    user = {"Authorization": f"Bearer {token('ana')}"}
    assert client.post("/api/notifications/seen", json={"ids": [stored.id]}, headers=user).status_code == 200
    assert traced(client, "report-42")["recipients"][0]["seen_at"] is not None
    assert client.post(f"/api/notifications/{stored.id}/archive", headers=user).status_code == 200
    (ana,) = traced(client, "report-42")["recipients"]
    assert ana["read_at"] is not None and ana["archived_at"] is not None


# -- opted out, skipped ------------------------------------------------------------------
def test_an_opt_out_names_the_preference_that_applied(client, rt, sqs, queues, push_service):
    for user in ("by-channel", "by-type", "by-both", "nobody"):
        subscribe(push_service[0], user)
    Preference.insert_many([{"user_id": "by-channel", "settings": {"channels": {"push": False}}},
                            {"user_id": "by-type", "settings": {"types": {"NEWS": False}}},
                            {"user_id": "by-both", "settings": {"type_channels": {"NEWS": {"push": False}}}}]).execute()
    deliver_all(rt, send(rt, sqs, queues, {"id": "news-1", "type": "NEWS", "title": "News", "message": "m",
                                           "recipients": ["by-channel", "by-type", "by-both", "nobody"],
                                           "channels": ["in_app", "push"]}))
    doc = traced(client, "news-1")
    reasons = {(r["user_id"], d["channel"]): (d["state"], d["reason"]) for r in doc["recipients"] for d in r["deliveries"]}
    assert reasons[("by-channel", "push")] == ("skipped", {
        "code": "opted_out", "preference": "channel", "setting": "channels.push",
        "text": "preference: the user opted out of the push channel (channels.push)"})
    for channel in ("in_app", "push"):
        assert reasons[("by-type", channel)] == ("skipped", {
            "code": "opted_out", "preference": "type", "setting": "types.NEWS",
            "text": "preference: the user opted out of NEWS notifications (types.NEWS)"})
    assert reasons[("by-both", "push")] == ("skipped", {
        "code": "opted_out", "preference": "type_channel", "setting": "type_channels.NEWS.push",
        "text": "preference: the user opted out of NEWS notifications by push (type_channels.NEWS.push)"})
    assert reasons[("by-channel", "in_app")] == reasons[("by-both", "in_app")] == reasons[("nobody", "push")] == \
        ("sent", None)
    assert doc["summary"]["channels"] == {"in_app": {"sent": 3, "skipped": 1}, "push": {"sent": 1, "skipped": 3}}
    assert channels(doc, "by-type")["push"]["attempt_log"] == []  # decided at ingest: never tried


def test_no_push_subscription_and_no_email_address_are_skips_of_their_own(client, rt, sqs, queues):
    deliver_all(rt, send(rt, sqs, queues, {"id": "k1", "user_id": "lone", "title": "t", "message": "m",
                                           "channels": ["push", "email"]}))
    got = channels(traced(client, "k1"), "lone")
    assert (got["push"]["state"], got["push"]["reason"]) == ("skipped", {
        "code": "no_push_subscription", "text": "the user has no push subscription"})
    assert got["email"]["state"] == "skipped" and got["email"]["reason"]["code"] == "no_email_address"
    assert got["email"]["reason"]["text"].startswith("no email address for the user")
    assert [a["outcome"] for a in got["push"]["attempt_log"]] == ["skipped"]


# -- held back: a rate limit, a digest, a send_at ----------------------------------------
def test_a_rate_limited_delivery_says_until_when(client, rt, sqs, queues, push_service):
    rt.settings = replace(rt.settings, rate_limits={"push": (1, 60.0)})
    subscribe(push_service[0], "busy")
    deliver_all(rt, send(rt, sqs, queues, *({"id": f"m{i}", "user_id": "busy", "title": "t", "message": "m",
                                             "channels": ["push"]} for i in range(2))))
    sent, held = (channels(traced(client, key), "busy")["push"] for key in ("m0", "m1"))
    assert sent["state"] == "sent" and sent["reason"] is None
    row = Delivery.get(Delivery.status == "deferred")
    assert held["state"] == "deferred" and held["deferred_until"] == iso(row.deferred_until)
    assert held["reason"] == {"code": "rate_limited", "until": iso(row.deferred_until), "text": row.last_error}
    assert 55 < (row.deferred_until - utcnow()).total_seconds() <= 60
    (attempt,) = held["attempt_log"]  # claimed, then held back: not counted against the retry policy
    assert (attempt["attempt"], attempt["outcome"], held["attempts"]) == (1, "rate_limited", 0)


def test_an_item_held_in_a_digest_then_sent_as_the_digests_notification(client, rt, sqs, queues):
    body = {"type": "REPORT_SUBMITTED", "user_id": "dee", "batch_key": "reports", "batch_window": 1,
            "variables": {"submitterName": "Ana", "branchName": "North", "reportId": 1}}
    send(rt, sqs, queues, {**body, "id": "report-1"}, {**body, "id": "report-2"})
    window = Digest.get()
    doc = traced(client, "report-1")
    (recipient,) = doc["recipients"]
    assert recipient["deliveries"] == [] and recipient["digest"]["id"] == window.id
    assert recipient["reason"] == {
        "code": "held_in_digest", "digest_id": window.id, "digest_notification_id": None, "until": iso(window.closes_at),
        "text": f"held in digest {window.id} (reports) until it closes at {iso(window.closes_at)}"}
    assert doc["summary"] == {"recipients": 1, "held_in_digest": 1, "channels": {}}

    deliver_all(rt, close_when_due(rt))
    grouped = Notification.get(Notification.key == f"digest-{window.id}")
    recipient = traced(client, "report-1")["recipients"][0]
    assert recipient["reason"]["code"] == "held_in_digest" and recipient["reason"]["digest_notification_id"] == grouped.id
    assert recipient["digest"]["notification_id"] == grouped.id and recipient["digest"]["closed_at"] is not None
    got = {d["channel"]: d for d in recipient["deliveries"]}  # the digest's deliveries, which carried this item
    assert {c: (d["notification_id"], d["state"]) for c, d in got.items()} == {
        "in_app": (grouped.id, "sent"), "push": (grouped.id, "skipped")}
    assert got["push"]["reason"]["code"] == "no_push_subscription"
    assert channels(traced(client, f"digest-{window.id}"), "dee")["in_app"]["state"] == "sent"  # traceable itself


def test_a_scheduled_send_says_for_when(client, rt, sqs, queues):
    at = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).replace(microsecond=0)
    send(rt, sqs, queues, {"id": "later", "user_id": "sam", "title": "t", "message": "m", "channels": ["in_app", "push"],
                           "send_at": at.isoformat()})
    doc = traced(client, "later")
    when = iso(at.replace(tzinfo=None))
    assert doc["message"]["send_at"] == when
    (recipient,) = doc["recipients"]
    assert recipient["reason"] == {"code": "scheduled", "until": when, "text": f"scheduled for {when}"}
    for d in recipient["deliveries"]:
        assert (d["state"], d["reason"]) == ("scheduled", {"code": "scheduled", "until": when, "text": f"scheduled for {when}"})


# -- the route's own answers -------------------------------------------------------------
def test_an_unknown_key_is_404_naming_it(client):
    answer = client.get("/api/messages/no-such-message", headers=SERVICE)
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found" and answer.json()["key"] == "no-such-message"
    assert "'no-such-message'" in answer.json()["reason"]


def test_only_a_service_token_may_read_a_trace_and_bad_paging_is_refused(client, rt, sqs, queues):
    send(rt, sqs, queues, {"id": "k", "user_id": "u1", "title": "t", "message": "m"})
    assert client.get("/api/messages/k").status_code == 401
    user = client.get("/api/messages/k", headers={"Authorization": f"Bearer {token('u1')}"})
    assert user.status_code == 401 and user.json()["error"] == "unauthorized"  # a user's token, even the recipient's
    for cursor in ("not-a-cursor", "OTk5OTk5OTk5OTk5OTk5OTk5OTk5"):  # garbage; a number past bigint
        bad = client.get("/api/messages/k", params={"cursor": cursor}, headers=SERVICE)
        assert bad.status_code == 400 and bad.json()["error"] == "bad_cursor"
    for limit in (0, 1001):
        assert client.get("/api/messages/k", params={"limit": limit}, headers=SERVICE).status_code == 422
    slashed = "orders/2024/7"  # an id with slashes is a key like any other
    send(rt, sqs, queues, {"id": slashed, "user_id": "u1", "title": "t", "message": "m"})
    assert traced(client, "orders%2F2024%2F7")["key"] == slashed
    assert traced(client, slashed)["key"] == slashed
