"""Inbox states over SSE, read with a real HTTP client from `notif serve`: every tab and device of a
user follows its seen, read, unread and archive marks; a reconnecting client gets the counts; a
stream ends when its token expires, and a new token resumes it with nothing missed."""
import json
import time

import jwt
import pytest
from test_events import connected, publish

from helpers import SSE, WEB_SECRET, auth, token
from notif.auth import make_token

API = "/api/notifications"


def stream(http, user, last=None, bearer=None):
    headers = {"Authorization": f"Bearer {bearer or token(user)}"}
    if last is not None:
        headers["Last-Event-ID"] = str(last)
    return http.stream("GET", "/events", headers=headers)


def state(sse: SSE) -> tuple[str, dict]:
    """The next event, which must be a state event: (name, data). State events have no `id:` line."""
    event = sse.next()
    assert "id" not in event, event
    return event["event"], json.loads(event["data"])


def test_every_state_change_reaches_every_stream_of_that_user_and_no_one_else(http, rt):
    with stream(http, "mia") as one, stream(http, "mia") as two, stream(http, "ned") as other:
        tabs, ned = [connected(one), connected(two)], connected(other)
        a, b = publish(rt, "mia"), publish(rt, "mia")
        for tab in tabs:
            arrived = [json.loads(tab.next()["data"]) for _ in (a, b)]
            assert [(n["id"], n["seen"], n["archived"]) for n in arrived] == [(a, False, False), (b, False, False)]

        def everywhere(expected):
            assert [state(tab) for tab in tabs] == [expected, expected]

        assert http.post(f"{API}/seen", headers=auth("mia"), json={"ids": [a, b]}).json()["marked"] == 2
        everywhere(("seen", {"ids": [a, b], "all": False, "unread_count": 2, "unseen_count": 0}))
        http.post(f"{API}/{a}/read", headers=auth("mia"))
        everywhere(("read", {"ids": [a], "all": False, "unread_count": 1, "unseen_count": 0}))
        http.post(f"{API}/{b}/archive", headers=auth("mia"))
        everywhere(("archived", {"id": b, "archived": True, "unread_count": 0, "unseen_count": 0, "total_count": 1}))
        http.post(f"{API}/{b}/archive", headers=auth("mia"))  # already archived: nothing changes, nothing is sent
        http.delete(f"{API}/{b}/archive", headers=auth("mia"))
        everywhere(("archived", {"id": b, "archived": False, "unread_count": 0, "unseen_count": 0, "total_count": 2}))
        http.post(f"{API}/{b}/archive", headers=auth("mia"))
        everywhere(("archived", {"id": b, "archived": True, "unread_count": 0, "unseen_count": 0, "total_count": 1}))
        http.post(f"{API}/{b}/unread", headers=auth("mia"))  # unread again, and back in the inbox: still seen
        everywhere(("unread", {"ids": [b], "unread_count": 1, "unseen_count": 0}))
        c = publish(rt, "mia")
        assert [int(tab.next()["id"]) for tab in tabs] == [c, c]
        http.post(f"{API}/seen", headers=auth("mia"), json={"all": True})
        everywhere(("seen", {"ids": [], "all": True, "unread_count": 2, "unseen_count": 0}))
        http.post(f"{API}/read-all", headers=auth("mia"))
        everywhere(("read", {"ids": [], "all": True, "unread_count": 0, "unseen_count": 0}))

        # ned's stream carried none of it: his first event is his own notification
        mine = publish(rt, "ned")
        first = ned.next()
        assert (first["event"], int(first["id"])) == ("notification", mine)


def test_a_reconnecting_client_gets_the_counts_after_the_replay(http, rt):
    with stream(http, "ola") as response:
        sse = connected(response)
        seen_last = publish(rt, "ola")
        assert int(sse.next()["id"]) == seen_last
        other = publish(rt, "ola")
        assert int(sse.next()["id"]) == other
    # while the client is away: marks made elsewhere (their events reached no stream of this client) and a new one
    http.post(f"{API}/{seen_last}/archive", headers=auth("ola"))
    http.post(f"{API}/seen", headers=auth("ola"), json={"all": True})
    missed = publish(rt, "ola")
    with stream(http, "ola", last=other) as response:
        sse = connected(response)
        replayed = sse.next()
        assert (replayed["event"], int(replayed["id"])) == ("notification", missed)
        assert state(sse) == ("counts", {"unread_count": 2, "unseen_count": 1, "total_count": 2})
        live = publish(rt, "ola")
        assert int(sse.next()["id"]) == live
    with stream(http, "ola") as response:  # a first connection (no Last-Event-ID) fetches counts itself: none sent
        sse = connected(response)
        live = publish(rt, "ola")
        event = sse.next()
        assert (event["event"], int(event["id"])) == ("notification", live)


def test_a_stream_ends_when_its_token_expires_and_a_new_token_resumes_it(http, rt):
    short = make_token(WEB_SECRET, "pam", ttl_seconds=3)
    expires = jwt.decode(short, options={"verify_signature": False})["exp"]
    with stream(http, "pam", bearer=short) as response:
        sse = connected(response)
        last = publish(rt, "pam")
        assert int(sse.next()["id"]) == last
        with pytest.raises(AssertionError, match="the stream ended"):
            sse.next()  # (pings come and go meanwhile)
        ended = time.time()
    assert "token expired" in sse.comments
    assert expires <= ended < expires + 3  # at exp, give or take the tick

    missed = publish(rt, "pam")  # sent while the client has no stream
    refused = http.get("/events", headers={"Authorization": f"Bearer {short}"})
    assert refused.status_code == 401 and refused.json()["reason"] == "token expired"
    with stream(http, "pam", last=last) as response:  # a new token, and Last-Event-ID
        sse = connected(response)
        replayed = sse.next()
        assert (replayed["event"], int(replayed["id"])) == ("notification", missed)
        assert state(sse) == ("counts", {"unread_count": 2, "unseen_count": 2, "total_count": 2})
