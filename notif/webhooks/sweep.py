"""The webhooks' sweep: the database, not Redis, says which events are still owed (as for deliveries).

Once per ``NOTIF_SWEEP_INTERVAL`` the leading scheduler:

- puts an event ``sending`` for longer than ``lease`` back to ``pending`` (its worker died
  mid-attempt; the attempt counts) and enqueues it again;
- enqueues again an event ``pending`` whose time has come (``next_attempt_at``, else when it
  was last touched) and gone by more than ``grace``: its message was lost (Redis, a failed
  hand-off, an event written inside a caller's transaction).

A claim before each attempt keeps an extra copy in Redis from sending twice.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import peewee

from ..models import WebhookEvent, utcnow
from . import states

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Swept:
    reclaimed: int  # `sending` past its lease, back to `pending`
    requeued: int  # `pending` whose message was lost, enqueued again


def sweep(enqueue: Callable[[Sequence[int]], None], grace: float = 120.0, lease: float = 300.0,
          limit: int = 5000) -> Swept:
    """One pass; returns how many events were reclaimed and enqueued again."""
    now = utcnow()
    # (peewee's stubs type a .tuples() query's rows as model instances: the casts say what they are)
    stale = cast("list[tuple[int]]", list(
        WebhookEvent.select(WebhookEvent.id)
        .where((WebhookEvent.status == states.SENDING) & (WebhookEvent.updated_at < now - dt.timedelta(seconds=lease)))
        .limit(limit).tuples()))
    reclaimed = [event_id for (event_id,) in stale
                 if states.move(event_id, states.SENDING, states.PENDING, updated_at=now, next_attempt_at=None,
                                attempts=WebhookEvent.attempts + 1,
                                last_error="reclaimed: the worker sending it stopped (lease expired)")]
    due = peewee.fn.COALESCE(WebhookEvent.next_attempt_at, WebhookEvent.updated_at)
    lost = [event_id for (event_id,) in cast("list[tuple[int]]", list(
        WebhookEvent.select(WebhookEvent.id)
        .where((WebhookEvent.status == states.PENDING) & (due < now - dt.timedelta(seconds=grace)))
        .order_by(WebhookEvent.id).limit(limit).tuples()))]
    if lost:  # touched now (still pending), so the next pass gives this enqueue its own grace period
        WebhookEvent.update(updated_at=now, next_attempt_at=None).where(
            WebhookEvent.id.in_(lost) & (WebhookEvent.status == states.PENDING)).execute()
    work = reclaimed + lost
    if work:
        enqueue(work)
        log.warning("webhook sweep re-enqueued events", extra={
            "reclaimed": len(reclaimed), "requeued": len(lost), "webhook_event_ids": work[:50]})
    return Swept(len(reclaimed), len(lost))
