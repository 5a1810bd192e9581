"""Releasing parked deliveries when they fall due: scheduled sends (``send_at``) and
deliveries a rate limit deferred to a later slot.

The status change is one conditional UPDATE per row (:func:`notif.delivery_states.move`),
so two schedulers releasing at the same moment each release a row at most once. A send
whose key was cancelled while it was being stored is withdrawn, never released.
"""
from __future__ import annotations

import logging
from typing import cast

from .. import delivery_states as states
from ..cancels import cancelled_keys, withdraw_scheduled
from ..models import Delivery, Notification, utcnow
from ..outbox import Enqueue, QueuedDelivery

log = logging.getLogger(__name__)


def release_due(enqueue: Enqueue, limit: int = 5000) -> int:
    """Scheduled and deferred deliveries whose time has come become ``pending`` and are enqueued."""
    now = utcnow()
    # (peewee's stubs type a .tuples() query's rows as model instances: the cast says what they are)
    due = cast("list[tuple[int, str, str, str, str, int]]", list(
        Delivery.select(Delivery.id, Delivery.status, Delivery.channel, Notification.priority,
                        Notification.key, Notification.id)
        .join(Notification)
        .where(Delivery.status.in_(list(states.PARKED)) & (Delivery.next_attempt_at <= now))
        .order_by(Delivery.next_attempt_at).limit(limit).tuples()))
    cancelled = cancelled_keys(list({key for *_, key, _ in due}))
    if cancelled:  # a cancel that came in while this send was being stored: withdraw, never release
        withdraw_scheduled([nid for *_, key, nid in due if key in cancelled])
        log.info("scheduled sends withdrawn: cancelled", extra={"keys": sorted(cancelled)})
    released = [QueuedDelivery(delivery_id, priority, channel)
                for delivery_id, status, channel, priority, key, _ in due
                if key not in cancelled
                and states.move(delivery_id, status, states.PENDING, updated_at=now, next_attempt_at=None)]
    if released:
        enqueue(released)
        log.info("scheduled deliveries released", extra={"released": len(released)})
    return len(released)
