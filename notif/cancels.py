"""Cancels: ``{"cancel": id}`` and ``DELETE /api/scheduled/{id}`` withdraw what has not gone out.

A scheduled send not yet released, or an item of a digest window still open, is deleted
with its deliveries. SQS does not keep order, so a cancel may arrive before its send: every
cancel is remembered (:class:`~notif.models.Cancellation`, for ``KEEP_DAYS``); ingest drops
a send whose key is there (:func:`cancelled_keys`) and the scheduler never releases one.
"""
from __future__ import annotations

import logging
from typing import cast

from . import delivery_states as states
from .db import database
from .models import Cancellation, Delivery, Digest, Notification, utcnow

log = logging.getLogger(__name__)


def cancelled_keys(keys: list[str]) -> set[str]:
    """Which of ``keys`` a cancel has named."""
    if not keys:
        return set()
    # (peewee's stubs type a .tuples() query's rows as model instances: the casts here say what they are)
    rows = cast("list[tuple[str]]", list(Cancellation.select(Cancellation.key).where(Cancellation.key.in_(keys)).tuples()))
    return {k for (k,) in rows}


def cancel_scheduled(key: str, correlation_id: str | None = None) -> tuple[int, int]:
    """Withdraw the notifications with idempotency key ``key`` that have not gone out yet:
    scheduled ones not yet released, and digest items whose window is still open. The cancel
    is remembered (:class:`Cancellation`), so a send with this key arriving later is dropped.
    Returns (withdrawn, too late)."""
    with database.atomic():
        found = cast("list[tuple[int, int | None]]", list(
            Notification.select(Notification.id, Notification.digest_id).where(Notification.key == key).tuples()))
        held = {digest_id for _, digest_id in found if digest_id is not None}
        # Touching the open windows locks them: a closer waits, then renders without these items.
        still_open = {d for (d,) in Digest.update(updated_at=utcnow())
                      .where(Digest.id.in_(list(held)) & Digest.open_key.is_null(False))
                      .returning(Digest.id).tuples().execute()} if held else set()
        plain = [i for i, digest_id in found if digest_id is None]
        started = {d.notification_id for d in Delivery.select(Delivery.notification)
                   .where(Delivery.notification.in_(plain) & Delivery.status.not_in(list(states.PARKED)))} if plain else set()
        withdraw = [i for i, digest_id in found
                    if (digest_id is None and i not in started) or (digest_id is not None and digest_id in still_open)]
        if withdraw:
            Delivery.delete().where(Delivery.notification.in_(withdraw)).execute()
            Notification.delete().where(Notification.id.in_(withdraw)).execute()
        # remembered, for a send that is still on its way (SQS does not keep order)
        Cancellation.insert(key=key, created_at=utcnow()).on_conflict_ignore().execute()
    log.info("cancel handled", extra={"key": key, "cancelled": len(withdraw), "too_late": len(found) - len(withdraw),
                                      "correlation_id": correlation_id})
    return len(withdraw), len(found) - len(withdraw)


def withdraw_scheduled(notification_ids: list[int]) -> None:
    """Delete the parked (not yet released) deliveries of these notifications, and each
    notification left with no delivery at all: a cancelled send that must never go out."""
    if not notification_ids:
        return
    ids = list(set(notification_ids))
    with database.atomic():
        Delivery.delete().where(Delivery.notification.in_(ids) & Delivery.status.in_(list(states.PARKED))).execute()
        rows = cast("list[tuple[int]]", list(
            Delivery.select(Delivery.notification).where(Delivery.notification.in_(ids)).tuples()))
        left = {d for (d,) in rows}
        Notification.delete().where(Notification.id.in_([n for n in ids if n not in left])).execute()
