"""GET /events read with a real HTTP client over a real socket from `notif serve`.

Notifications are published by the real in-app channel (``deliver``), through the real
Redis, to the web process's hub.
"""
import json
import socket
import time

import pytest

from helpers import BAD_TOKENS, SSE, auth, token, wait_until
from notif.deliver import deliver
from notif.models import Delivery, Notification
from notif.redis_keys import user_channel

counter = iter(range(10**6))


def stored(user, title=None):
    n = Notification.create(user_id=user, key=f"k{next(counter)}", title=title or f"for {user}", message="m",
                            priority="normal", correlation_id="c")
    Delivery.create(notification=n, channel="in_app")
    return n


def publish(rt, user, title=None):
    """Store a notification and deliver it through the in-app channel; returns its id."""
    n = stored(user, title)
    assert deliver(rt, Delivery.get(Delivery.notification == n).id) == "sent"
    return n.id


def subscribers(rt, user) -> int:
    return rt.redis.pubsub_numsub(user_channel(rt.settings, user))[0][1]


def open_stream(http, user, last=None, header=False):
    headers, params = {}, {"token": token(user)}
    if last is not None:
        if header:
            headers["Last-Event-ID"] = str(last)
        else:
            params["last_event_id"] = str(last)
    return http.stream("GET", "/events", params=params, headers=headers)


def connected(response) -> SSE:
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    sse = SSE(response)
    sse.until_comment("connected")
    return sse


def test_a_stored_notification_arrives_live_with_the_unread_count(http, rt):
    with open_stream(http, "alice") as response:
        sse = connected(response)
        nid = publish(rt, "alice", "Hello Alice")
        event = sse.next()
    assert (event["event"], event["id"]) == ("notification", str(nid))
    data = json.loads(event["data"])
    assert data["title"] == "Hello Alice" and data["unread_count"] == 1


def test_the_stream_sets_retry_and_sends_heartbeats(http, rt):
    with open_stream(http, "hb") as response:
        sse = connected(response)
        sse.until_comment("ping")  # the web process under test pings every second
    assert sse.retry == 3000


def test_a_user_only_ever_receives_their_own_events(http, rt):
    with open_stream(http, "bob") as bob_response, http.stream("GET", "/events", headers=auth("carol")) as carol_response:
        bob, carol = connected(bob_response), connected(carol_response)
        publish(rt, "carol", "carol's secret")
        bob_id = publish(rt, "bob", "bob's")
        # bob's first event is his own: carol's, published before it, never reached him
        assert json.loads(bob.next()["data"])["title"] == "bob's"
        assert json.loads(carol.next()["data"])["title"] == "carol's secret"
    assert bob_id


@pytest.mark.parametrize("header", [False, True], ids=["query", "header"])
def test_reconnecting_replays_exactly_what_was_missed_then_goes_live(http, rt, header):
    first = publish(rt, "dave")
    missed = [publish(rt, "dave") for _ in range(3)]  # published while dave was away
    publish(rt, "erin")  # another user's: never replayed to dave
    with open_stream(http, "dave", last=first, header=header) as response:
        sse = connected(response)
        replayed = [int(sse.next()["id"]) for _ in missed]
        counts = sse.next()  # then the counts now, for the badges
        assert (counts["event"], json.loads(counts["data"])) == \
            ("counts", {"unread_count": 4, "unseen_count": 4, "total_count": 4})
        live = publish(rt, "dave")
        after = int(sse.next()["id"])
    assert replayed == missed
    assert after == live  # no duplicate of a replayed one, no gap


def test_replay_includes_an_older_id_published_after_the_last_one_seen(http, rt):
    # two ingests committed out of id order: the lower id is published second
    older, newer = stored("fay"), stored("fay")
    deliver(rt, Delivery.get(Delivery.notification == newer).id)
    time.sleep(0.01)  # distinct sent_at timestamps for the two publishes
    deliver(rt, Delivery.get(Delivery.notification == older).id)
    with open_stream(http, "fay", last=newer.id) as response:
        sse = connected(response)
        event = sse.next()
        assert int(event["id"]) == older.id
        assert sse.next()["event"] == "counts"
        live = publish(rt, "fay")
        assert int(sse.next()["id"]) == live  # and nothing else was replayed


def test_marking_read_updates_every_tab_of_that_user(http, rt):
    nid = publish(rt, "gus")
    publish(rt, "gus")
    with open_stream(http, "gus") as response:
        sse = connected(response)
        answer = http.post(f"/api/notifications/{nid}/read", headers=auth("gus")).json()
        assert answer == {"id": nid, "read": True, "unread": 1, "unseen": 1}
        event = sse.next()
        assert event["event"] == "read" and "id" not in event
        assert json.loads(event["data"]) == {"ids": [nid], "all": False, "unread_count": 1, "unseen_count": 1}
        assert http.post("/api/notifications/read-all", headers=auth("gus")).json() == \
            {"marked": 1, "unread": 0, "unseen": 0}
        assert json.loads(sse.next()["data"]) == {"ids": [], "all": True, "unread_count": 0, "unseen_count": 0}


def test_nobody_can_mark_another_users_notification(http, rt):
    nid = publish(rt, "hal")
    response = http.post(f"/api/notifications/{nid}/read", headers=auth("ivy"))
    assert response.status_code == 404
    assert Notification.get_by_id(nid).read_at is None
    assert http.post("/api/notifications/read-all", headers=auth("ivy")).json() == {"marked": 0, "unread": 0, "unseen": 0}
    assert Notification.get_by_id(nid).read_at is None


@pytest.mark.parametrize("case", list(BAD_TOKENS()))
def test_bad_tokens_cannot_open_a_stream(http, case):
    value = BAD_TOKENS()[case]
    response = http.get("/events", params={"token": value} if value else {})
    assert response.status_code == 401
    assert response.json()["reason"]


def test_a_bad_last_event_id_is_422(http):
    response = http.get("/events", params={"token": token("x"), "last_event_id": "abc"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][-1] == "last_event_id"


def test_a_disconnect_leaves_no_subscription_behind(http, rt):
    with open_stream(http, "jo") as response:
        sse = connected(response)  # (keep the reader: dropping it closes the stream)
        assert subscribers(rt, "jo") == 1 and sse.comments == ["connected"]
    wait_until(lambda: subscribers(rt, "jo") == 0, 10, message="the web process to unsubscribe")


def test_a_client_that_stops_reading_is_dropped(web, rt):
    # a raw socket that sends the request and then never reads
    sock = socket.create_connection(("127.0.0.1", web["port"]))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET /events?token={token('kim')} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    try:
        wait_until(lambda: subscribers(rt, "kim") == 1, 10, message="the stream to subscribe")
        big = {"event": "notification", "unread": 1,
               "notification": {"id": 1, "title": "x" * 20000, "message": "m", "priority": "low"}}
        channel = user_channel(rt.settings, "kim")
        for i in range(400):
            big["notification"]["id"] = i + 1
            rt.redis.publish(channel, json.dumps(big))
        wait_until(lambda: subscribers(rt, "kim") == 0, 20, message="the slow client to be dropped")
    finally:
        sock.close()


def test_the_web_process_counts_its_open_streams_on_metrics(http, rt):
    def open_streams():
        text = http.get("/metrics").text
        return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith("notif_sse_connections"))

    with open_stream(http, "lou") as response:
        sse = connected(response)  # (kept: dropping the reader closes the stream)
        assert open_streams() == 1 and sse.comments == ["connected"]
    wait_until(lambda: open_streams() == 0, 10, message="the stream to be counted out")
