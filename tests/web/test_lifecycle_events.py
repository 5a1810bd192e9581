"""Update, retract and expiry as a user sees them: a real HTTP client reading `notif serve`'s
SSE stream and its inbox API, with the messages ingested from SQS by the real pipeline."""
import datetime as dt
import json

import pytest

from helpers import SSE, auth, token
from notif.deliver import deliver_batch
from notif.ingest import ingest_batch
from notif.models import Notification, utcnow
from test_ingest import Enqueued, literal, put, receive


@pytest.fixture
def send(web, rt):
    """Put messages on SQS and ingest them as a worker would (in-app delivered at once, live)."""
    def send(*bodies):
        for body in bodies:
            put(web["sqs"], web["queue"], body)
        return ingest_batch(rt, receive(web["sqs"], web["queue"], expect=len(bodies)), Enqueued(), deliver_batch)
    return send


def stream(http, user, last=None):
    params = {"token": token(user)}
    if last is not None:
        params["last_event_id"] = str(last)
    return http.stream("GET", "/events", params=params)


def connected(response) -> SSE:
    assert response.status_code == 200
    sse = SSE(response)
    sse.until_comment("connected")
    return sse


def inbox(http, user):
    return http.get("/api/notifications", headers=auth(user)).json()["items"]


def unread(http, user):
    return http.get("/api/notifications/unread-count", headers=auth(user)).json()["unread"]


def test_an_update_and_a_retract_reach_the_open_stream_and_the_api(http, send):
    with stream(http, "lia") as response:
        sse = connected(response)
        send(literal("lia", "life-1"))
        first = sse.next()
        assert first["event"] == "notification"
        nid = int(first["id"])

        send({"update": "life-1", "title": "Edited", "data": {"v": 2}})
        updated = sse.next()
        assert updated["event"] == "updated" and "id" not in updated  # Last-Event-ID stays where it was
        data = json.loads(updated["data"])
        assert (data["id"], data["title"], data["data"], data["unread_count"]) == (nid, "Edited", {"v": 2}, 1)
        assert data["updated_at"] is not None
        assert [(i["id"], i["title"]) for i in inbox(http, "lia")] == [(nid, "Edited")]

        assert http.post(f"/api/notifications/{nid}/read", headers=auth("lia")).json()["unread"] == 0
        assert sse.next()["event"] == "read"
        send({"update": "life-1", "unread": True})
        again = json.loads(sse.next()["data"])
        assert (again["read"], again["unread_count"]) == (False, 1) and unread(http, "lia") == 1

        send({"retract": "life-1"})
        removed = sse.next()
        assert removed["event"] == "removed" and json.loads(removed["data"]) == {"id": nid, "unread_count": 0}
    assert inbox(http, "lia") == [] and unread(http, "lia") == 0
    assert http.post(f"/api/notifications/{nid}/read", headers=auth("lia")).status_code == 404


def test_an_expired_notification_leaves_the_api_the_count_and_the_replay(http, send):
    send(literal("max", "keeps"), literal("max", "expires", ttl=3600))
    assert unread(http, "max") == 2
    Notification.update(expires_at=utcnow() - dt.timedelta(seconds=1)).where(Notification.key == "expires").execute()
    assert [i["title"] for i in inbox(http, "max")] == ["Hello"] and inbox(http, "max")[0]["expires_at"] is None
    assert unread(http, "max") == 1
    assert http.post("/api/notifications/read-all", headers=auth("max")).json()["marked"] == 1
    with stream(http, "max", last=0) as response:
        sse = connected(response)
        replayed = sse.next()
        counts = sse.next()
        assert (counts["event"], json.loads(counts["data"])) == \
            ("counts", {"unread_count": 0, "unseen_count": 0, "total_count": 1})  # the expired one is not counted
        send(literal("max", "after"))
        live = sse.next()
    keeps = Notification.get(key="keeps").id
    assert (replayed["event"], int(replayed["id"])) == ("notification", keeps)  # not the expired one
    assert json.loads(live["data"])["title"] == "Hello" and int(live["id"]) > keeps
