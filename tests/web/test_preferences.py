"""Preferences: set through the API as the user, applied at ingest, recorded on the delivery row."""
import pytest

from helpers import auth
from notif.ingest import ingest_batch
from notif.models import Delivery, Notification, Preference
from test_ingest import Enqueued, put, receive


def test_a_user_reads_and_replaces_only_their_own_preferences(http):
    assert http.get("/api/preferences", headers=auth("pia")).json() == {"channels": {}, "types": {},
                                                                        "type_channels": {}}
    wanted = {"channels": {"email": False}, "types": {"COMMENT_ADDED": False},
              "type_channels": {"REPORT_SUBMITTED": {"push": False}}}
    assert http.put("/api/preferences", json=wanted, headers=auth("pia")).json() == wanted
    assert http.get("/api/preferences", headers=auth("pia")).json() == wanted
    assert http.get("/api/preferences", headers=auth("quin")).json()["channels"] == {}
    bad = http.put("/api/preferences", json={"channel": {"email": False}}, headers=auth("pia"))
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "channel"


def test_the_options_name_the_loaded_channels_and_every_type_with_critical_ones_marked(http):
    options = http.get("/api/preferences/options", headers=auth("pia")).json()
    assert {"in_app", "push", "email"} <= set(options["channels"])
    types = {t["type"]: t["critical"] for t in options["types"]}
    assert types["SECURITY_ALERT"] is True and types["REPORT_SUBMITTED"] is False
    # what the options name is what PUT accepts: every channel and type can be turned off
    everything = {"channels": {c: False for c in options["channels"]}, "types": {t: False for t in types}}
    assert http.put("/api/preferences", json=everything, headers=auth("pia")).status_code == 200
    assert http.get("/api/preferences/options").status_code == 401


def test_opt_outs_are_applied_at_ingest_and_critical_types_ignore_them(runtime, sqs, queues):
    Preference.create(user_id="u1", settings={"channels": {"email": False},
                                              "type_channels": {"REPORT_SUBMITTED": {"push": False}},
                                              "types": {"SECURITY_ALERT": False}})
    put(sqs, queues["normal"], {"id": "r1", "type": "REPORT_SUBMITTED", "user_id": "u1",
                                "variables": {"submitterName": "A", "branchName": "B", "reportId": 1},
                                "channels": ["in_app", "push", "email"]})
    put(sqs, queues["normal"], {"id": "s1", "type": "SECURITY_ALERT", "user_id": "u1",
                                "variables": {"device": "a phone", "when": "now"}})
    enqueued = Enqueued()
    ingest_batch(runtime, receive(sqs, queues["normal"], expect=2), enqueued)
    rows = {(d.notification.key, d.channel): d for d in Delivery.select(Delivery, Notification).join(Notification)}
    assert rows[("r1", "in_app")].status == "pending"
    got = {channel: (rows[("r1", channel)].status, rows[("r1", channel)].reason_code, rows[("r1", channel)].last_error)
           for channel in ("push", "email")}
    assert got == {  # the row names the opt-out that applied
        "push": ("skipped", "opted_out_type_channel", "preference: the user opted out of REPORT_SUBMITTED notifications "
                                                      "by push (type_channels.REPORT_SUBMITTED.push)"),
        "email": ("skipped", "opted_out_channel", "preference: the user opted out of the email channel (channels.email)")}
    assert {rows[("s1", c)].status for c in ("in_app", "push", "email")} == {"pending"}  # critical
    assert Notification.select().count() == 2  # the inbox record is written either way


# -- what a document may name (in process) ----------------------------------------------
@pytest.fixture
def client(asgi, pg):
    return asgi["client"]


def put_prefs(client, document, user="pia"):
    return client.put("/api/preferences", json=document, headers=auth(user))


def test_only_known_channels_and_types_are_accepted_and_the_error_lists_them(client):
    response = put_prefs(client, {"channels": {"emial": False}, "types": {"REPORT_SUBMITED": False},
                                  "type_channels": {"NOPE": {"push": False}, "COMMENT_ADDED": {"sms": False}}})
    assert response.status_code == 422
    errors = {tuple(e["loc"]): e["msg"] for e in response.json()["detail"]}
    assert set(errors) == {("body", "channels", "emial"), ("body", "types", "REPORT_SUBMITED"),
                           ("body", "type_channels", "NOPE"), ("body", "type_channels", "COMMENT_ADDED", "sms")}
    assert errors[("body", "channels", "emial")] == "unknown channel 'emial'; known channels: email, in_app, push"
    assert "REPORT_SUBMITTED" in errors[("body", "types", "REPORT_SUBMITED")]
    assert "DIGEST" in errors[("body", "types", "REPORT_SUBMITED")]  # the digest type is a template like any other
    assert client.get("/api/preferences", headers=auth("pia")).json()["channels"] == {}  # nothing stored


def test_a_deployments_own_templates_are_known_types(app_client, tmp_path):
    (tmp_path / "PAYROLL_READY.toml").write_text('title = "Payroll"\nmessage = "ready"\n')
    client = app_client(NOTIF_TEMPLATES_DIR=str(tmp_path))
    wanted = {"channels": {}, "types": {"PAYROLL_READY": False}, "type_channels": {"DIGEST": {"email": False}}}
    assert put_prefs(client, wanted).json() == wanted


def test_types_of_literal_messages_are_known_when_the_operator_lists_them(app_client):
    """The old worker's messages carry a free-form `type` and no template: NOTIF_PREFERENCE_TYPES names them."""
    client = app_client(NOTIF_PREFERENCE_TYPES="INVOICE_PAID, TASK_DUE")
    wanted = {"channels": {}, "types": {"INVOICE_PAID": False}, "type_channels": {"TASK_DUE": {"push": False}}}
    assert put_prefs(client, wanted).json() == wanted
    assert put_prefs(client, {"types": {"TASK_DUEE": False}}).status_code == 422


def test_the_document_is_bounded(client):
    from notif.web.preferences import MAX_KEYS, MAX_NAME
    many = put_prefs(client, {"types": {f"T{i}": False for i in range(MAX_KEYS + 1)}})
    assert many.status_code == 422
    assert many.json()["detail"][0]["loc"] == ["body", "types"] and many.json()["detail"][0]["type"] == "too_long"
    long = put_prefs(client, {"channels": {"x" * (MAX_NAME + 1): False}})
    assert long.status_code == 422 and long.json()["detail"][0]["type"] == "string_too_long"
    inner = put_prefs(client, {"type_channels": {"COMMENT_ADDED": {f"c{i}": False for i in range(MAX_KEYS + 1)}}})
    assert inner.status_code == 422 and inner.json()["detail"][0]["type"] == "too_long"
