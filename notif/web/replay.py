"""Replays for many reconnecting streams at once: gathered for a few milliseconds, answered by one query.

When a web process restarts, or a proxy in front of it drops every connection, all its
clients come back within a second or two, each with ``Last-Event-ID``. One database replay
per stream, one after another through the thread pool, took 83 s for 18,000 streams
(docs/benchmarks.md › SSE capacity of one web process). :class:`ReplayBatcher` instead
collects the replays asked for within ``WINDOW_MS`` (or until ``BATCH`` are waiting) and
answers them together: on PostgreSQL with two
statements for the whole batch (the missed rows — ``unnest`` of the users and their last
ids, ``CROSS JOIN LATERAL`` a per-user ``ORDER BY id LIMIT`` — and the three counts), on
SQLite with the one-stream function per request, but in one thread hop for the batch.

What a stream gets is exactly what :func:`missed` returns for it (the
tests compare the two): its user's visible notifications after ``after`` (the first
``REPLAY_PAGE`` of them; the stream asks for the rest one page at a time), those older
ones whose in-app delivery was sent after the one at ``after`` (committed out of id order),
and its counts. Operators see the batching in ``/metrics``:
``notif_sse_replay_queries_total`` against ``notif_sse_replayed_streams_total``.
"""
from __future__ import annotations

import logging
from typing import NamedTuple

from anyio import to_thread

from ..db import database, is_postgres
from ..live import counts
from ..models import Delivery, Notification, utcnow
from ..monitoring.metrics import SSE_REPLAY_QUERIES, SSE_REPLAYED_STREAMS
from .batching import MicroBatcher

log = logging.getLogger(__name__)

REPLAY_PAGE = 500  # notifications per replay page
WINDOW_MS = 5.0  # how long the first replay of a batch waits for others: far below a reconnect's own cost
BATCH = 500  # most streams per batch (the statements' arrays)
CONCURRENT = 4  # batches in the database at once (the pool has more connections, for the API)


class Request(NamedTuple):
    user_id: str
    after: int


class Missed(NamedTuple):
    """What one stream missed: notifications oldest first (as ``to_dict``), and the user's counts now."""
    rows: list[dict]
    counts: dict[str, int]


# Notification.visible() in SQL, for the alias n; keep in step with it (the tests compare this path with missed()).
_VISIBLE = ("(n.send_at IS NULL OR n.send_at <= %(now)s) AND n.digest_id IS NULL AND n.retracted_at IS NULL"
            " AND (n.expires_at IS NULL OR n.expires_at > %(now)s)")

_REQUESTS = "unnest(%(users)s::text[], %(afters)s::bigint[]) WITH ORDINALITY AS r(user_id, after, k)"

ROWS_SQL = f"""
SELECT r.k AS batch_k, m.* FROM {_REQUESTS}
CROSS JOIN LATERAL (
  SELECT n.* FROM notif_notification n
  WHERE n.user_id = r.user_id AND n.id > r.after AND {_VISIBLE}
  ORDER BY n.id LIMIT {REPLAY_PAGE}) m
UNION ALL
SELECT r.k AS batch_k, late.* FROM {_REQUESTS}
CROSS JOIN LATERAL (
  SELECT d.sent_at FROM notif_notification n JOIN notif_delivery d ON d.notification_id = n.id
  WHERE n.id = r.after AND n.user_id = r.user_id AND d.channel = 'in_app' AND {_VISIBLE}) anchor
CROSS JOIN LATERAL (
  SELECT n.* FROM notif_notification n JOIN notif_delivery d ON d.notification_id = n.id
  WHERE n.user_id = r.user_id AND n.id < r.after AND d.channel = 'in_app' AND d.sent_at > anchor.sent_at
    AND {_VISIBLE}) late
"""

# each count a scan of its own partial index (notif.live.COUNTED), as the one-user statements are
COUNTS_SQL = f"""
SELECT r.k,
  (SELECT count(n.id) FROM notif_notification n WHERE n.user_id = r.user_id AND n.read_at IS NULL AND {_VISIBLE}),
  (SELECT count(n.id) FROM notif_notification n
     WHERE n.user_id = r.user_id AND n.seen_at IS NULL AND n.read_at IS NULL AND {_VISIBLE}),
  (SELECT count(n.id) FROM notif_notification n WHERE n.user_id = r.user_id AND n.archived_at IS NULL AND {_VISIBLE})
FROM unnest(%(users)s::text[]) WITH ORDINALITY AS r(user_id, k)
"""


def fetch_postgres(requests: list[Request]) -> list[Missed]:
    """Every request's :class:`Missed`, in order, with two statements whatever the batch's size."""
    params = {"users": [r.user_id for r in requests], "afters": [r.after for r in requests], "now": utcnow()}
    found: list[list[Notification]] = [[] for _ in requests]
    counted: list[dict[str, int]] = [{"unread": 0, "unseen": 0, "total": 0} for _ in requests]
    with database.connection_context():
        cursor = database.execute_sql(ROWS_SQL, params)
        fields = Notification._meta.columns  # column name -> field (JSON columns are decoded by theirs)
        names = [column[0] for column in cursor.description]
        for k, *values in cursor.fetchall():
            found[k - 1].append(Notification(**{fields[name].name: fields[name].python_value(value)
                                                for name, value in zip(names[1:], values, strict=True)}))
        for k, unread, unseen, total in database.execute_sql(COUNTS_SQL, params).fetchall():
            counted[k - 1] = {"unread": unread, "unseen": unseen, "total": total}
    SSE_REPLAY_QUERIES.inc(2)
    out = []
    for rows, counts_now in zip(found, counted, strict=True):
        rows.sort(key=lambda n: n.id)  # the late ones (older ids) first, as missed() gives them
        out.append(Missed([n.to_dict() for n in rows], counts_now))
    return out


def missed(user_id: str, after: int, exclude: set[int]) -> tuple[list[dict], dict[str, int]]:
    """Notifications the client has not seen since ``after``, oldest first, and the user's counts
    (notif.live.counts)."""
    with database.connection_context():
        mine = (Notification.user_id == user_id) & Notification.visible()
        anchor = (Delivery.select(Delivery.sent_at).join(Notification)
                  .where(mine & (Notification.id == after) & (Delivery.channel == "in_app")).scalar())
        rows = list(Notification.select().where(mine & (Notification.id > after))
                    .order_by(Notification.id).limit(REPLAY_PAGE))
        if anchor is not None:
            late = (Notification.select().join(Delivery)
                    .where(mine & (Notification.id < after) & (Delivery.channel == "in_app") & (Delivery.sent_at > anchor))
                    .order_by(Notification.id))
            rows = list(late) + rows
        SSE_REPLAY_QUERIES.inc(6 if anchor is not None else 5)  # anchor, rows, (late), three counts
        return [r.to_dict() for r in rows if r.id not in exclude], counts(user_id)


def fetch_one_by_one(requests: list[Request]) -> list[Missed]:
    """SQLite (one writer, a local file): the one-stream queries per request, in a single thread hop."""
    out = []
    for request in requests:
        rows, counts_now = missed(request.user_id, request.after, set())  # (counted there)
        out.append(Missed(rows, counts_now))
    return out


def fetch(requests: list[Request]) -> list[Missed]:
    return fetch_postgres(requests) if is_postgres() else fetch_one_by_one(requests)


class ReplayBatcher:
    """Gathers the first-page replays of new streams and answers each batch with one query (one event loop)."""

    def __init__(self, window_ms: float = WINDOW_MS, batch: int = BATCH, concurrent: int = CONCURRENT) -> None:
        self.batcher: MicroBatcher[Request, Missed] = MicroBatcher(self._fetch, window_ms, batch, concurrent)

    async def missed(self, user_id: str, after: int) -> Missed:
        return await self.batcher.ask(Request(user_id, after))

    @staticmethod
    async def _fetch(requests: list[Request]) -> list[Missed]:
        answers = await to_thread.run_sync(fetch, requests)
        SSE_REPLAYED_STREAMS.inc(len(requests))
        return answers
