"""Preferences: set through the API as the user, applied at ingest, recorded on the delivery row."""
import httpx
import pytest

from helpers import auth
from notif.ingest import ingest_batch
from notif.models import Delivery, Notification, Preference
from test_ingest import Enqueued, put, receive


@pytest.fixture
def http(web, pg):
    with httpx.Client(base_url=web["base"], timeout=10) as client:
        yield client


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
    for channel in ("push", "email"):
        assert (rows[("r1", channel)].status, rows[("r1", channel)].last_error) == \
            ("skipped", "preference: the user opted out")
    assert {rows[("s1", c)].status for c in ("in_app", "push", "email")} == {"pending"}  # critical
    assert Notification.select().count() == 2  # the inbox record is written either way
