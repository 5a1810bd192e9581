"""The outbox sweeper: the database, not Redis, decides what is still owed.

Dramatiq's Redis broker requeues a dead worker's messages only after its heartbeat timeout
and on a random maintenance pass, and loses whatever Redis loses. So, periodically:

- a ``pending`` delivery whose time has come (``next_attempt_at``, else when it was last
  touched) and gone by more than ``grace`` is enqueued again — its message was lost;
- a ``sending`` delivery claimed longer ago than ``lease`` belonged to a worker that died
  mid-send: it goes back to ``pending`` and is enqueued again.

A delivery is claimed before it is sent, so an extra copy in Redis sends nothing twice.
(It also releases scheduled deliveries when their time comes: :func:`release_due`.)
(Ingest needs no sweep: an SQS message is deleted only after its rows commit, so SQS
hands an unfinished one out again.)
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Callable

import peewee

from .db import database
from .cancels import cancelled_keys
from .models import Cancellation, Delivery, Notification, utcnow

log = logging.getLogger(__name__)

Enqueue = Callable[[list[tuple[int, str]]], None]


def sweep(enqueue: Enqueue, grace: float = 120.0, lease: float = 300.0, limit: int = 5000) -> dict:
    """One pass; returns how many deliveries were re-enqueued and reclaimed."""
    now = utcnow()
    stale_sending = (Delivery.select(Delivery.id, Notification.priority).join(Notification)
                     .where((Delivery.status == Delivery.SENDING)
                            & (Delivery.updated_at < now - dt.timedelta(seconds=lease)))
                     .limit(limit).tuples())
    reclaimed = []
    for delivery_id, priority in list(stale_sending):
        changed = (Delivery.update(status=Delivery.PENDING, updated_at=now, attempts=Delivery.attempts + 1,
                                   last_error="reclaimed: the worker sending it stopped (lease expired)")
                   .where((Delivery.id == delivery_id) & (Delivery.status == Delivery.SENDING)).execute())
        if changed:
            reclaimed.append((delivery_id, priority))
    due = peewee.fn.COALESCE(Delivery.next_attempt_at, Delivery.updated_at)
    lost = list(Delivery.select(Delivery.id, Notification.priority).join(Notification)
                .where((Delivery.status == Delivery.PENDING) & (due < now - dt.timedelta(seconds=grace)))
                .limit(limit).tuples())
    if lost:
        # touched now, so the next pass gives this enqueue its own grace period
        Delivery.update(updated_at=now, next_attempt_at=None).where(Delivery.id.in_([d for d, _ in lost])).execute()
    Cancellation.delete().where(Cancellation.created_at < now - dt.timedelta(days=Cancellation.KEEP_DAYS)).execute()
    work = reclaimed + lost
    if work:
        enqueue(work)
        log.warning("outbox sweep re-enqueued deliveries", extra={
            "reclaimed": len(reclaimed), "requeued": len(lost), "delivery_ids": [d for d, _ in work][:50]})
    return {"reclaimed": len(reclaimed), "requeued": len(lost)}


def release_due(enqueue: Enqueue, limit: int = 5000) -> int:
    """Scheduled deliveries whose time has come become ``pending`` and are enqueued.

    The status change is one conditional UPDATE per row, so two schedulers releasing at
    the same moment each release a row at most once.
    """
    now = utcnow()
    due = list(Delivery.select(Delivery.id, Notification.priority, Notification.key, Notification.id).join(Notification)
               .where((Delivery.status == Delivery.SCHEDULED) & (Delivery.next_attempt_at <= now))
               .order_by(Delivery.next_attempt_at).limit(limit).tuples())
    keys = list({key for _, _, key, _ in due})
    cancelled = cancelled_keys(keys)
    if cancelled:  # a cancel that came in while this send was being stored: withdraw, never release
        withdraw = list({nid for _, _, key, nid in due if key in cancelled})
        with database.atomic():
            Delivery.delete().where(Delivery.notification.in_(withdraw) & (Delivery.status == Delivery.SCHEDULED)).execute()
            left = {d for (d,) in Delivery.select(Delivery.notification).where(Delivery.notification.in_(withdraw)).tuples()}
            Notification.delete().where(Notification.id.in_([n for n in withdraw if n not in left])).execute()
        log.info("scheduled sends withdrawn: cancelled", extra={"keys": sorted(cancelled)})
    released = []
    for delivery_id, priority, key, _ in due:
        if key in cancelled:
            continue
        if (Delivery.update(status=Delivery.PENDING, updated_at=now, next_attempt_at=None)
                .where((Delivery.id == delivery_id) & (Delivery.status == Delivery.SCHEDULED)).execute()):
            released.append((delivery_id, priority))
    if released:
        enqueue(released)
        log.info("scheduled deliveries released", extra={"released": len(released)})
    return len(released)
