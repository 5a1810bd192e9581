"""The unread count on the event loop (notif.web.loop_count): the same answer as the threaded count,
no thread hop, a bounded number of connections, and recovery from a connection the server dropped."""
import asyncio
import datetime as dt

import psycopg2
import pytest

from helpers import auth
from notif import live
from notif.models import Notification, utcnow
from notif.web import inbox
from notif.web.loop_count import LoopCounts


def add(user, key, **extra):
    Notification.create(user_id=user, key=key, title="t", message="m", priority="normal", correlation_id="c", **extra)


def backend_pids(counts: LoopCounts) -> list[int]:
    return [conn.get_backend_pid() for conn in counts._idle]


def test_the_loop_count_is_the_threaded_count(pg):
    now, hour = utcnow(), dt.timedelta(hours=1)
    for key, extra in [("a", {}), ("b", {}), ("read", {"read_at": now}), ("later", {"send_at": now + hour}),
                       ("expired", {"expires_at": now - hour}), ("retracted", {"retracted_at": now})]:
        add("u1", key, **extra)
    add("u2", "a")
    counts = LoopCounts(pg)

    async def run():
        return [await counts.unread(user) for user in ("u1", "u2", "nobody", "u1")]

    try:
        assert asyncio.run(run()) == [live.unread_count(u) for u in ("u1", "u2", "nobody", "u1")] == [2, 1, 0, 2]
        assert counts._open == 1 and len(counts._idle) == 1  # one connection, kept and reused
    finally:
        counts.close()


def test_the_route_counts_without_the_thread_pool(asgi, pg, monkeypatch):
    add("u1", "a")

    async def no_thread(*args, **kwargs):
        raise AssertionError("the unread count went through the thread pool")

    monkeypatch.setattr(inbox, "run_in_threadpool", no_thread)
    response = asgi["client"].get("/api/notifications/unread-count", headers=auth("u1"))
    assert response.status_code == 200 and response.json() == {"unread": 1}


def test_when_every_connection_is_busy_the_caller_falls_back(pg):
    add("u1", "a")
    counts = LoopCounts(pg, size=1)

    async def run():
        return await asyncio.gather(counts.unread("u1"), counts.unread("u1"))

    try:
        assert sorted(asyncio.run(run()), key=str) == [1, None]  # the second found the one connection busy
        assert counts._open == 1
    finally:
        counts.close()


def test_a_kept_connection_the_server_dropped_is_replaced_without_an_error(pg):
    add("u1", "a")
    counts = LoopCounts(pg)
    try:
        assert asyncio.run(counts.unread("u1")) == 1
        [pid] = backend_pids(counts)
        admin = psycopg2.connect(pg)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
        admin.close()
        assert asyncio.run(counts.unread("u1")) == 1
        assert backend_pids(counts) != [pid] and counts._open == 1
    finally:
        counts.close()


def test_a_count_that_takes_too_long_closes_its_connection_and_fails(pg, monkeypatch):
    counts = LoopCounts(pg, timeout=0.2)
    monkeypatch.setattr("notif.web.loop_count.count_statement_values",
                        lambda user: ("SELECT pg_sleep(2), %s", [user]))
    try:
        with pytest.raises(TimeoutError):
            asyncio.run(counts.unread("u1"))
        assert counts._open == 0 and counts._idle == []
    finally:
        counts.close()
