"""The unread count on the event loop: PostgreSQL through psycopg2's asynchronous connections.

The count is an index-only scan of well under a millisecond (docs/database.md). Through the
thread pool it cost two thread wake-ups per request, the larger part of what the web process
spent on it (docs/benchmarks.md › The inbox at 10 million rows). Here the statement is sent
and its answer awaited with the loop's own readiness callbacks (``add_reader``), so the
loop never blocks on the database: a slow answer only waits, at most ``TIMEOUT`` seconds,
after which its connection is closed.

At most ``SIZE`` connections, opened on first use (the opening itself in a thread: libpq
may resolve a host name), kept while they work; one that fails is closed. A statement
that fails on a connection kept from an earlier request is tried once more on a new one
(the server may have dropped it meanwhile; a count changes nothing). When all ``SIZE``
are busy, :meth:`LoopCounts.unread` answers None and the caller takes the thread pool.
The statement is :func:`notif.live.unread_count`'s, generated from ``Notification.visible()``.
"""
from __future__ import annotations

import asyncio

import psycopg2
import psycopg2.extensions
from starlette.concurrency import run_in_threadpool

from ..db import postgres_params
from ..live import count_statement_values

SIZE = 4  # connections per web process, beside the peewee pool's
TIMEOUT = 5.0  # seconds a count may take before its connection is closed and the request fails


def _wake(done: asyncio.Future) -> None:
    if not done.done():
        done.set_result(None)


async def _ready(conn) -> None:
    """Drive ``conn`` (connecting, or running a statement) until it is done, waiting on the loop."""
    loop = asyncio.get_running_loop()
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        done = loop.create_future()
        fd = conn.fileno()
        if state == psycopg2.extensions.POLL_READ:
            loop.add_reader(fd, _wake, done)
            try:
                await done
            finally:
                loop.remove_reader(fd)
        elif state == psycopg2.extensions.POLL_WRITE:
            loop.add_writer(fd, _wake, done)
            try:
                await done
            finally:
                loop.remove_writer(fd)
        else:
            raise psycopg2.OperationalError(f"unexpected poll state {state}")


class LoopCounts:
    def __init__(self, url: str, size: int = SIZE, timeout: float = TIMEOUT) -> None:
        self.params = postgres_params(url)
        self.size = size
        self.timeout = timeout
        self._idle: list = []
        self._open = 0  # connections opened and not closed, idle or in use

    async def _connect(self):
        conn = await run_in_threadpool(lambda: psycopg2.connect(async_=True, **self.params))
        try:
            async with asyncio.timeout(self.timeout):
                await _ready(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    async def _run(self, conn, sql: str, values: list) -> int:
        async with asyncio.timeout(self.timeout):
            cursor = conn.cursor()
            cursor.execute(sql, values)
            await _ready(conn)
            return cursor.fetchone()[0]

    async def unread(self, user_id: str) -> int | None:
        """The user's unread count, or None when every connection is busy (the caller uses the thread pool)."""
        sql, values = count_statement_values(user_id)
        kept = bool(self._idle)
        if not kept and self._open >= self.size:
            return None
        if not kept:
            self._open += 1
        for attempt in (1, 2):
            try:
                conn = self._idle.pop() if kept else await self._connect()
            except BaseException:
                self._open -= 1
                raise
            try:
                count = await self._run(conn, sql, values)
            except BaseException as exc:
                conn.close()
                if attempt == 1 and kept and isinstance(exc, psycopg2.OperationalError):
                    kept = False  # dropped while it waited in the pool: once more, on a new connection
                    continue
                self._open -= 1
                raise
            self._idle.append(conn)
            return count
        raise AssertionError("unreachable")

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
            self._open -= 1
