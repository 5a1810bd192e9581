"""The webhooks' outbox: each event a row, written in the transaction of the change it reports.

Every writer asks :meth:`WebhookOutbox.wants` first. With no ``NOTIF_WEBHOOK_URL`` (or a type
``NOTIF_WEBHOOK_EVENTS`` leaves out) the answer is no for every type: nothing is queried,
built or written, and no transaction is opened for it. Otherwise the writer builds the events
(:mod:`.events`) inside its own transaction and :meth:`~WebhookOutbox.write` inserts one row per
(event, endpoint) in one statement; after the commit :meth:`~WebhookOutbox.hand_off` enqueues one
Dramatiq message per row for the sender (:mod:`.send`). A hand-off that fails leaves the rows
``pending``: the scheduler's sweep (:mod:`.sweep`) enqueues them again, so the database alone
says what is owed, as for deliveries.

Who writes what:
- ingest (direct messages) and digests: ``notification.stored``, one per notification;
- a topic message's fan-out: ``notification.stored`` once, with the recipient count, when the
  fan-out is done; per recipient (one row each, in bulk) with ``NOTIF_WEBHOOK_TOPIC_RECIPIENTS``;
- :mod:`notif.delivery_states`: ``delivery.sent`` / ``delivery.failed`` with the state move
  (not ``delivery.sent`` for a topic message's copies unless per recipient);
- the inbox routes: ``notification.read`` / ``.seen`` / ``.archived`` with their UPDATE.

:mod:`notif.delivery_states` is the one writer that is not handed an outbox: it uses the
process's (:func:`install`, done by :meth:`notif.runtime.Runtime.start`).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import cast

import dramatiq
import peewee
from dramatiq.brokers.redis import RedisBroker

from ..config import Settings
from ..db import database, is_postgres
from ..models import Delivery, Fanout, Notification, WebhookEvent, utcnow
from ..redis_keys import webhook_queue
from ..worker.broker import enqueue_many, make_broker
from . import events as ev
from . import states
from .signing import new_webhook_id

log = logging.getLogger(__name__)

ACTOR = "webhook"  # the sender's actor (notif.worker.tasks declares it on webhook_queue())
CHUNK = 100  # rows per INSERT on SQLite (bound variables per statement are capped); PostgreSQL takes them all at once
#: an event: (type, when it happened, data)
Event = tuple[str, dt.datetime, dict]
#: hands written events (row ids) to the sender
Enqueue = Callable[[Sequence[int]], None]

_INSERT = f"""
INSERT INTO {WebhookEvent._meta.table_name} (webhook_id, type, endpoint, body, correlation_id, status, attempts,
                                             created_at, updated_at)
SELECT w, t, e, b, c, %s, 0, a, %s
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::timestamp[]) AS x(w, t, e, b, c, a)
RETURNING id
"""


class WebhookOutbox:
    """What this deployment reports, to which endpoints, and how written events reach the sender.

    ``enqueue`` is how rows are handed to the sender; by default a Redis broker of its own,
    made on the first hand-off (so a process that writes no event never connects for it).
    """

    def __init__(self, settings: Settings | None, enqueue: Enqueue | None = None) -> None:
        self.settings = settings
        self.endpoints: tuple[str, ...] = settings.webhook_urls if settings is not None else ()
        self.events: frozenset[str] = settings.webhook_events if self.endpoints and settings is not None else frozenset()
        self.topic_recipients = bool(settings is not None and settings.webhook_topic_recipients)
        self._enqueue = enqueue
        self._broker: RedisBroker | None = None
        self._lock = threading.Lock()

    @classmethod
    def disabled(cls) -> WebhookOutbox:
        """Reports nothing (no NOTIF_WEBHOOK_URL)."""
        return cls(None)

    def wants(self, type_: str) -> bool:
        """Is an event of this type written? (False for all when no URL is set: the zero-cost path.)"""
        return type_ in self.events

    def reports_moves(self, type_: str) -> bool:
        """Does a delivery state move into ``delivery.sent``/``.failed`` write events here? Not the sent copies a
        fan-out chunk delivers (:func:`topic_copies`) unless per recipient: no query is made for them."""
        if not self.wants(type_):
            return False
        return not (type_ == ev.DELIVERY_SENT and not self.topic_recipients and getattr(_local, "topic_copies", False))

    # -- writing, inside the caller's transaction ---------------------------------------
    def write(self, events: Sequence[Event]) -> list[int]:
        """Insert one row per (event, endpoint) in one statement (SQLite: one per CHUNK); returns their ids."""
        rows = [(new_webhook_id(), type_, endpoint, ev.body(type_, when, data), data.get("correlation_id"), when)
                for type_, when, data in events if self.wants(type_) for endpoint in self.endpoints]
        if not rows:
            return []
        now = utcnow()
        if is_postgres():
            columns = [list(column) for column in zip(*rows, strict=True)]
            cursor = database.execute_sql(_INSERT, [states.PENDING, now, *columns])
            return [event_id for (event_id,) in cursor.fetchall()]
        ids: list[int] = []
        for start in range(0, len(rows), CHUNK):
            chunk = [{"webhook_id": w, "type": t, "endpoint": e, "body": b, "correlation_id": c, "status": states.PENDING,
                      "attempts": 0, "created_at": a, "updated_at": now} for w, t, e, b, c, a in rows[start:start + CHUNK]]
            query = WebhookEvent.insert_many(chunk).returning(WebhookEvent.id)
            ids.extend(event_id for (event_id,) in cast("list[tuple[int]]", list(query.tuples().execute())))
        return ids

    def deliveries(self, type_: str, delivery_ids: Sequence[int]) -> list[int]:
        """``delivery.sent`` / ``delivery.failed`` for deliveries just moved to that state (inside the move's
        transaction): one query for them all, one insert. A topic message's copies report ``delivery.sent``
        only per recipient (NOTIF_WEBHOOK_TOPIC_RECIPIENTS)."""
        if not delivery_ids or not self.wants(type_):
            return []
        ids = list(delivery_ids)
        among = (Delivery.id == peewee.fn.ANY(peewee.Value(ids, unpack=False))) if is_postgres() else Delivery.id.in_(ids)
        query = (Delivery.select(Delivery.id, Delivery.channel, Delivery.attempts, Delivery.last_error, Delivery.updated_at,
                                 Notification.id, Notification.key, Notification.user_id, Notification.type,
                                 Notification.priority, Notification.correlation_id)
                 .join(Notification).where(among))
        if type_ == ev.DELIVERY_SENT and not self.topic_recipients:
            query = (query.join(Fanout, peewee.JOIN.LEFT_OUTER, on=(Fanout.key == Notification.key))
                     .where(Fanout.id.is_null()))
        failed = type_ == ev.DELIVERY_FAILED
        return self.write([
            (type_, updated_at, ev.delivery(delivery_id, channel, attempts, notification_id, key, user_id, kind,
                                            priority, correlation_id, (last_error or "") if failed else None))
            for (delivery_id, channel, attempts, last_error, updated_at, notification_id, key, user_id, kind, priority,
                 correlation_id) in cast("Iterable[tuple]", query.tuples())])

    # -- after the commit ---------------------------------------------------------------
    def hand_off(self, event_ids: Sequence[int]) -> None:
        """Enqueue the sender for rows just committed; a failure is logged and left to the sweep."""
        if not event_ids:
            return
        try:
            if self._enqueue is not None:
                self._enqueue(list(event_ids))
            else:
                enqueue_many(self._producer(), [message(event_id) for event_id in event_ids])
        except Exception:
            log.exception("could not enqueue webhook events; they stay pending for the sweep",
                          extra={"webhook_event_ids": list(event_ids)[:50]})

    def _producer(self) -> RedisBroker:
        with self._lock:
            if self._broker is None:
                if self.settings is None:
                    raise RuntimeError("a disabled webhook outbox has nothing to send")
                self._broker = make_broker(self.settings)
            return self._broker


def message(event_id: int) -> dramatiq.Message:
    """The sender's Dramatiq message for one event."""
    return dramatiq.Message(queue_name=webhook_queue(), actor_name=ACTOR, args=(event_id,), kwargs={}, options={})


_installed = WebhookOutbox.disabled()
_local = threading.local()


@contextlib.contextmanager
def topic_copies() -> Iterator[None]:
    """Inside (this thread): the deliveries moved are a fan-out chunk's copies of a topic message, which report
    ``delivery.sent`` only per recipient (NOTIF_WEBHOOK_TOPIC_RECIPIENTS). Saves the query that would find
    that out (a chunk's 2,000 rows: 18 ms of a 210 ms chunk, docs/database.md › Webhooks)."""
    _local.topic_copies = True
    try:
        yield
    finally:
        _local.topic_copies = False


def install(outbox: WebhookOutbox) -> None:
    """Make ``outbox`` this process's, for the writer that is not handed one (:mod:`notif.delivery_states`)."""
    global _installed
    _installed = outbox


def installed() -> WebhookOutbox:
    """This process's outbox (disabled until :func:`install`)."""
    return _installed
