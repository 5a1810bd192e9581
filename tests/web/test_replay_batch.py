"""A reconnect storm: many streams coming back at once with Last-Event-ID share their replay queries.

Read with real HTTP clients over real sockets from `notif serve` (PostgreSQL, Redis); the
notifications are published by the real in-app channel.
"""
import asyncio
import datetime as dt
import json
import re

import httpx

from helpers import token
from notif.deliver import deliver
from notif.models import Delivery, Notification
from notif.web.events import missed
from notif.web.replay import Request, fetch_postgres

counter = iter(range(10**6))
USERS = [f"storm-{i}" for i in range(40)]


def stored(user, title=None, hidden=False):
    n = Notification.create(user_id=user, key=f"s{next(counter)}", title=title or f"for {user}", message="m",
                            priority="normal", correlation_id="c",
                            send_at=dt.datetime(2999, 1, 1) if hidden else None)
    Delivery.create(notification=n, channel="in_app")
    return n


def metric(http, name: str) -> float:
    text = http.get("/metrics").text
    return sum(float(v) for v in re.findall(rf"^{name} ([0-9.e+]+)$", text, re.M))


async def reconnect(client: httpx.AsyncClient, user: str, last: int) -> list[tuple[str, str | None, dict]]:
    """Open the user's stream with Last-Event-ID, read until the replay's closing `counts` event."""
    events, event = [], {}
    async with client.stream("GET", "/events", params={"token": token(user)},
                             headers={"Last-Event-ID": str(last)}) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line == "":
                if "event" in event:
                    events.append((event["event"], event.get("id"), json.loads(event["data"])))
                    if event["event"] == "counts":
                        return events
                event = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                event[name] = value
    raise AssertionError("the stream ended before its counts")


async def storm(base: str, lasts: dict[str, int]):
    limits = httpx.Limits(max_connections=len(lasts) + 5)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=httpx.Timeout(20)) as client:
        return await asyncio.gather(*(reconnect(client, user, last) for user, last in lasts.items()))


def test_a_storm_of_reconnects_each_gets_exactly_its_own_missed_events_in_few_queries(web, http, rt):
    seen, expected = {}, {}
    for i, user in enumerate(USERS):
        ids = [stored(user).id for _ in range(2)]  # what the client saw before it dropped
        seen[user] = ids[-1]
        stored(user, hidden=True)  # scheduled for later: never replayed
        expected[user] = [stored(user, f"missed {user} #{k}").id for k in range(1 + i % 3)]
        for n in Notification.select().where(Notification.user_id == user):
            deliver(rt, Delivery.get(Delivery.notification == n).id)
    queries, streams = metric(http, "notif_sse_replay_queries_total"), metric(http, "notif_sse_replayed_streams_total")

    results = asyncio.run(storm(web["base"], seen))

    for user, events in zip(seen, results, strict=True):
        notifications = [e for e in events if e[0] == "notification"]
        assert [int(i) for _, i, _ in notifications] == expected[user]  # its own, all, once, in order
        assert all(data["title"].startswith(f"missed {user} ") for _, _, data in notifications)
        assert events[-1][2]["unread_count"] == 2 + len(expected[user])  # the counts now (hidden one not counted)
    replayed = metric(http, "notif_sse_replayed_streams_total") - streams
    ran = metric(http, "notif_sse_replay_queries_total") - queries
    assert replayed == len(USERS)
    # one stream at a time would run five statements each (200 here); batches share two
    assert ran < len(USERS) / 2, f"{ran} replay statements for {len(USERS)} streams"


def test_the_batched_query_answers_what_the_one_stream_replay_does(pg):
    ann = [stored("ann") for _ in range(3)]
    stored("bob")
    # committed out of id order: ann's first one was delivered after her second (the client's last)
    Delivery.update(sent_at=dt.datetime(2026, 1, 1, 0, 0, 2)).where(Delivery.notification == ann[0]).execute()
    Delivery.update(sent_at=dt.datetime(2026, 1, 1, 0, 0, 1)).where(Delivery.notification == ann[1]).execute()
    stored("ann", hidden=True)
    requests = [Request("ann", ann[1].id), Request("bob", 0), Request("nobody", 0), Request("ann", 0)]
    batched = fetch_postgres(requests)
    for request, answer in zip(requests, batched, strict=True):
        rows, counts = missed(request.user_id, request.after, set())
        assert (answer.rows, answer.counts) == (rows, counts)
    assert [r["id"] for r in batched[0].rows] == [ann[0].id, ann[2].id]
