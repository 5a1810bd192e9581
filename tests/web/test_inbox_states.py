"""Seen, read, archived: the inbox API's states, filters and counts, in process (FastAPI's TestClient
over the real app, PostgreSQL and Redis). What other tabs see over SSE is in test_state_events.py."""
import datetime as dt
import itertools

import pytest

from helpers import auth
from notif.models import Notification, utcnow

API = "/api/notifications"
keys = itertools.count()


@pytest.fixture
def client(asgi, pg):
    return asgi["client"]


def add(user, type_="COMMENT_ADDED", **extra) -> int:
    return Notification.create(user_id=user, key=f"k{next(keys)}", type=type_, title="t", message="m",
                               priority="normal", correlation_id="c", **extra).id


def ids(client, user, **params) -> list[int]:
    response = client.get(API, headers=auth(user), params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def item(client, user, nid) -> dict:
    return next(i for i in client.get(API, headers=auth(user), params={"status": "all"}).json()["items"] if i["id"] == nid)


def counts(client, user) -> dict:
    return client.get(f"{API}/counts", headers=auth(user)).json()


def test_seen_read_archived_and_back_keep_the_invariants(client):
    a, b, c = add("ann"), add("ann"), add("ann")
    assert counts(client, "ann") == {"unread": 3, "unseen": 3, "total": 3}
    first = item(client, "ann", a)
    assert (first["seen"], first["read"], first["archived"]) == (False, False, False)
    assert first["seen_at"] is None and first["archived_at"] is None

    # opening the panel: seen, still unread
    assert client.post(f"{API}/seen", headers=auth("ann"), json={"ids": [a]}).json() == \
        {"marked": 1, "unread": 3, "unseen": 2}
    seen = item(client, "ann", a)
    assert seen["seen"] and seen["seen_at"] and not seen["read"]

    # reading implies seen
    assert client.post(f"{API}/{b}/read", headers=auth("ann")).json() == {"id": b, "read": True, "unread": 2, "unseen": 1}
    read = item(client, "ann", b)
    assert read["seen"] and read["seen_at"] == read["read_at"]

    # archiving reads (and sees) it; it leaves the inbox and its total
    assert client.post(f"{API}/{c}/archive", headers=auth("ann")).json() == \
        {"id": c, "archived": True, "unread": 1, "unseen": 0, "total": 2}
    archived = item(client, "ann", c)
    assert archived["archived"] and archived["read"] and archived["seen"] and archived["archived_at"]
    assert ids(client, "ann") == [b, a]
    assert client.get(f"{API}/unread-count", headers=auth("ann")).json() == {"unread": 1}  # never counts it

    # back from the archive: still read
    assert client.delete(f"{API}/{c}/archive", headers=auth("ann")).json() == \
        {"id": c, "archived": False, "unread": 1, "unseen": 0, "total": 3}
    back = item(client, "ann", c)
    assert (back["archived"], back["read"], back["archived_at"]) == (False, True, None)

    # unread again: out of the archive, still seen
    client.post(f"{API}/{c}/archive", headers=auth("ann"))
    assert client.post(f"{API}/{c}/unread", headers=auth("ann")).json() == {"id": c, "read": False, "unread": 2, "unseen": 0}
    again = item(client, "ann", c)
    assert (again["read"], again["archived"], again["seen"]) == (False, False, True) and again["read_at"] is None
    assert ids(client, "ann", status="unread") == [c, a] and counts(client, "ann") == {"unread": 2, "unseen": 0, "total": 3}


def test_archiving_keeps_the_times_it_had(client):
    earlier = utcnow() - dt.timedelta(hours=1)
    nid = add("abe", read_at=earlier)  # read before seen_at existed: seen when read
    client.post(f"{API}/{nid}/archive", headers=auth("abe"))
    row = Notification.get_by_id(nid)
    assert row.read_at == earlier and row.seen_at == earlier and row.archived_at > earlier


def test_marks_are_idempotent(client):
    nid = add("bea")
    first = client.post(f"{API}/{nid}/archive", headers=auth("bea")).json()
    archived_at = Notification.get_by_id(nid).archived_at
    assert client.post(f"{API}/{nid}/archive", headers=auth("bea")).json() == first
    assert Notification.get_by_id(nid).archived_at == archived_at
    assert client.delete(f"{API}/{nid}/archive", headers=auth("bea")).json()["archived"] is False
    assert client.delete(f"{API}/{nid}/archive", headers=auth("bea")).json()["archived"] is False
    assert client.post(f"{API}/{nid}/unread", headers=auth("bea")).json()["read"] is False
    assert client.post(f"{API}/{nid}/unread", headers=auth("bea")).json() == {"id": nid, "read": False, "unread": 1, "unseen": 0}
    assert client.post(f"{API}/seen", headers=auth("bea"), json={"all": True}).json()["marked"] == 0  # seen already


def test_status_and_type_filter_the_list(client):
    plain = add("cal", "COMMENT_ADDED")
    seen = add("cal", "REPORT_SUBMITTED", seen_at=utcnow())
    read = add("cal", "COMMENT_ADDED", read_at=utcnow(), seen_at=utcnow())
    now = utcnow()
    archived = add("cal", "REPORT_SUBMITTED", read_at=now, seen_at=now, archived_at=now)
    add("cal", "COMMENT_ADDED", retracted_at=now)  # never shown, whatever the status
    add("dan", "COMMENT_ADDED")
    assert ids(client, "cal") == [read, seen, plain]  # the inbox: not archived
    assert ids(client, "cal", status="unread") == [seen, plain] == ids(client, "cal", unread="true")
    assert ids(client, "cal", status="unread", unread="true") == [seen, plain]
    assert ids(client, "cal", status="unseen") == [plain]
    assert ids(client, "cal", status="archived") == [archived]
    assert ids(client, "cal", status="all") == [archived, read, seen, plain]
    assert ids(client, "cal", type="REPORT_SUBMITTED") == [seen]
    assert ids(client, "cal", type="REPORT_SUBMITTED", status="all") == [archived, seen]
    assert ids(client, "cal", type="REPORT") == []  # exact, not a prefix
    # pages walk a filtered list too
    first = client.get(API, headers=auth("cal"), params={"status": "all", "limit": 3}).json()
    rest = client.get(API, headers=auth("cal"), params={"status": "all", "limit": 3, "cursor": first["next_cursor"]}).json()
    assert [i["id"] for i in first["items"] + rest["items"]] == [archived, read, seen, plain] and rest["next_cursor"] is None


def test_a_bad_status_is_422_naming_the_allowed_values(client):
    response = client.get(API, headers=auth("eve"), params={"status": "starred"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "status"]
    assert all(value in error["msg"] for value in ("'unread'", "'unseen'", "'archived'", "'all'"))
    both = client.get(API, headers=auth("eve"), params={"status": "archived", "unread": "true"})
    assert both.status_code == 422 and both.json()["detail"][0]["loc"] == ["query", "unread"]


def test_counts_follow_what_the_inbox_shows(client):
    now, hour = utcnow(), dt.timedelta(hours=1)
    add("fay")
    add("fay", seen_at=now)
    add("fay", read_at=now - hour)  # read before seen_at existed: seen all the same
    add("fay", read_at=now, seen_at=now, archived_at=now)
    for hidden in ({"send_at": now + hour}, {"expires_at": now - hour}, {"retracted_at": now}, {"digest_id": 1}):
        add("fay", **hidden)
    add("gil")
    assert counts(client, "fay") == {"unread": 2, "unseen": 1, "total": 3}
    assert counts(client, "nobody") == {"unread": 0, "unseen": 0, "total": 0}


def test_marking_seen_by_ids_marks_only_the_users_own_and_all_marks_every_one(client):
    mine = [add("hal") for _ in range(3)]
    theirs = add("ida")
    answer = client.post(f"{API}/seen", headers=auth("hal"), json={"ids": [mine[0], mine[1], theirs, 10**12]})
    assert answer.status_code == 200 and answer.json() == {"marked": 2, "unread": 3, "unseen": 1}
    assert Notification.get_by_id(theirs).seen_at is None  # not an error, and not marked
    read = add("hal", read_at=utcnow())
    assert client.post(f"{API}/seen", headers=auth("hal"), json={"all": True}).json() == \
        {"marked": 1, "unread": 3, "unseen": 0}
    assert Notification.get_by_id(read).seen_at is None  # only unseen ones are marked (it is seen: it was read)
    assert counts(client, "ida") == {"unread": 1, "unseen": 1, "total": 1}


@pytest.mark.parametrize("body,says", [
    ({}, "send `ids`"), ({"ids": [1], "all": True}, "not both"), ({"all": False}, "`all` may only be true"),
    ({"ids": []}, "at least 1"), ({"ids": list(range(1, 502))}, "at most 500"), ({"ids": ["x"]}, "integer"),
    ({"ids": [0]}, "greater than or equal to 1"), ({"ids": [1], "also": 2}, "Extra inputs"),
])
def test_a_bad_seen_request_is_422_naming_the_problem(client, body, says):
    add("jon")
    response = client.post(f"{API}/seen", headers=auth("jon"), json=body)
    assert response.status_code == 422
    assert any(says in error["msg"] for error in response.json()["detail"]), response.json()
    assert counts(client, "jon")["unseen"] == 1


@pytest.mark.parametrize("method,action", [("POST", "read"), ("POST", "unread"), ("POST", "archive"), ("DELETE", "archive")])
def test_another_users_notification_answers_as_a_missing_one(client, method, action):
    theirs = add("kim", read_at=utcnow(), seen_at=utcnow())
    before = Notification.get_by_id(theirs)
    other = client.request(method, f"{API}/{theirs}/{action}", headers=auth("lou"))
    missing = client.request(method, f"{API}/{10**12}/{action}", headers=auth("lou"))
    assert other.status_code == missing.status_code == 404 and other.json() == missing.json()
    after = Notification.get_by_id(theirs)
    assert (after.read_at, after.seen_at, after.archived_at) == (before.read_at, before.seen_at, before.archived_at)


def test_the_openapi_document_describes_the_new_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path, method in [("/api/notifications/counts", "get"), ("/api/notifications/seen", "post"),
                         ("/api/notifications/{notification_id}/archive", "post"),
                         ("/api/notifications/{notification_id}/archive", "delete"),
                         ("/api/notifications/{notification_id}/unread", "post")]:
        operation = paths[path][method]
        assert operation["summary"] and "schema" in operation["responses"]["200"]["content"]["application/json"]
        if "{notification_id}" in path:
            assert "404" in operation["responses"]
    status = next(p for p in paths["/api/notifications"]["get"]["parameters"] if p["name"] == "status")
    assert set(status["schema"]["anyOf"][0]["enum"]) == {"unread", "unseen", "archived", "all"}
