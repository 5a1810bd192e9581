"""The outbox sweeper: the database, not Redis, decides what is still owed.

Dramatiq's Redis broker requeues a dead worker's messages only after its heartbeat timeout
and on a random maintenance pass, and loses whatever Redis loses. So, periodically:

- a ``pending`` delivery whose time has come (``next_attempt_at``, else when it was last
  touched) and gone by more than ``grace`` is enqueued again — its message was lost;
- a ``sending`` delivery claimed longer ago than ``lease`` belonged to a worker that died
  mid-send: it goes back to ``pending`` and is enqueued again.

A delivery is claimed before it is sent, so an extra copy in Redis sends nothing twice.
(Ingest needs no sweep: an SQS message is deleted only after its rows commit, so SQS
hands an unfinished one out again.) Remembered cancels past their keep are forgotten here.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import cast

import peewee

from .. import attempts as attempt_log
from .. import delivery_states as states
from ..models import Cancellation, Delivery, Notification, utcnow
from ..outbox import Enqueue, QueuedDelivery

log = logging.getLogger(__name__)

ABANDONED = "reclaimed: the worker sending it stopped (lease expired)"


@dataclass(frozen=True)
class Swept:
    reclaimed: int  # `sending` past its lease, back to `pending`
    requeued: int  # `pending` whose message was lost, enqueued again


def sweep(enqueue: Enqueue, grace: float = 120.0, lease: float = 300.0, limit: int = 5000) -> Swept:
    """One pass; returns how many deliveries were reclaimed and re-enqueued."""
    now = utcnow()
    # (peewee's stubs type a .tuples() query's rows as model instances: the casts say what they are)
    stale_sending = cast("list[tuple[int, str, str, int, dt.datetime]]", list(
        Delivery.select(Delivery.id, Notification.priority, Delivery.channel, Delivery.attempts, Delivery.updated_at)
        .join(Notification)
        .where((Delivery.status == states.SENDING) & (Delivery.updated_at < now - dt.timedelta(seconds=lease)))
        .limit(limit).tuples()))
    reclaimed = []
    for delivery_id, priority, channel, attempts, claimed_at in stale_sending:
        if states.move(delivery_id, states.SENDING, states.PENDING, updated_at=now, attempts=Delivery.attempts + 1,
                       last_error=ABANDONED):
            attempt_log.record(delivery_id, attempts + 1, attempt_log.ABANDONED, claimed_at, ABANDONED, now)
            reclaimed.append(QueuedDelivery(delivery_id, priority, channel))
    due = peewee.fn.COALESCE(Delivery.next_attempt_at, Delivery.updated_at)
    lost_rows = cast("list[tuple[int, str, str]]", list(
        Delivery.select(Delivery.id, Notification.priority, Delivery.channel).join(Notification)
        .where((Delivery.status == states.PENDING) & (due < now - dt.timedelta(seconds=grace)))
        .limit(limit).tuples()))
    lost = [QueuedDelivery(*row) for row in lost_rows]
    if lost:
        # touched now (still pending), so the next pass gives this enqueue its own grace period
        Delivery.update(updated_at=now, next_attempt_at=None).where(
            Delivery.id.in_([q.delivery_id for q in lost]) & (Delivery.status == states.PENDING)).execute()
    Cancellation.delete().where(Cancellation.created_at < now - dt.timedelta(days=Cancellation.KEEP_DAYS)).execute()
    work = reclaimed + lost
    if work:
        enqueue(work)
        log.warning("outbox sweep re-enqueued deliveries", extra={
            "reclaimed": len(reclaimed), "requeued": len(lost), "delivery_ids": [q.delivery_id for q in work][:50]})
    return Swept(len(reclaimed), len(lost))
