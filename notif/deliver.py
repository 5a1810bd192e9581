"""Deliver: send one delivery row through its channel and record the outcome.

A delivery is claimed (``pending`` → ``sending``) before its channel is called, so two
copies of the same Dramatiq message (a redelivery, a sweep) cannot both send. Success
marks it ``sent``; a permanent error marks it ``failed`` with the reason; a transient one
puts it back to ``pending`` and raises, so Dramatiq retries it with backoff — and when
the retries run out it is marked ``failed`` too. Nothing is left without a status.
"""
from __future__ import annotations

import logging
import time

from .errors import PermanentError
from .models import Delivery, Notification, utcnow
from .runtime import Runtime

log = logging.getLogger(__name__)

SENDING = "sending"


def _set(delivery_id: int, expect: str, **values) -> bool:
    values.setdefault("updated_at", utcnow())
    query = Delivery.update(**values).where((Delivery.id == delivery_id) & (Delivery.status == expect))
    return query.execute() == 1


def deliver(rt: Runtime, delivery_id: int, *, final_attempt: bool = False) -> str:
    """Deliver one row; returns the status it ends in. Raises to ask for a retry."""
    started = time.monotonic()
    delivery = (Delivery.select(Delivery, Notification).join(Notification)
                .where(Delivery.id == delivery_id).get_or_none())
    if delivery is None:
        log.warning("delivery not found (deleted?)", extra={"delivery_id": delivery_id})
        return "missing"
    notification = delivery.notification
    context = {"delivery_id": delivery_id, "channel": delivery.channel, "notification_id": notification.id,
               "user_id": notification.user_id, "correlation_id": notification.correlation_id,
               "priority": notification.priority}
    if delivery.status != Delivery.PENDING:
        log.info("delivery already handled", extra={**context, "status": delivery.status})
        return delivery.status
    channel = rt.channels.get(delivery.channel)
    if channel is None:
        _set(delivery_id, Delivery.PENDING, status=Delivery.SKIPPED,
             last_error=f"channel {delivery.channel!r} is not installed or is disabled")
        log.warning("delivery skipped: channel not available", extra=context)
        return Delivery.SKIPPED
    if not _set(delivery_id, Delivery.PENDING, status=SENDING):
        return "claimed-elsewhere"
    attempts = delivery.attempts + 1
    try:
        channel.send(notification, delivery, rt.channel_context(log))
    except PermanentError as exc:
        _set(delivery_id, SENDING, status=Delivery.FAILED, attempts=attempts, last_error=exc.reason)
        log.error("delivery failed permanently", extra={**context, "reason": exc.reason, "attempts": attempts})
        return Delivery.FAILED
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        if final_attempt:
            _set(delivery_id, SENDING, status=Delivery.FAILED, attempts=attempts,
                 last_error=f"gave up after {attempts} attempts; last error: {reason}")
            log.error("delivery failed: retries exhausted", extra={**context, "reason": reason, "attempts": attempts})
            return Delivery.FAILED
        _set(delivery_id, SENDING, status=Delivery.PENDING, attempts=attempts, last_error=reason)
        log.warning("delivery failed; will retry", extra={**context, "reason": reason, "attempts": attempts})
        raise
    now = utcnow()
    _set(delivery_id, SENDING, status=Delivery.SENT, attempts=attempts, sent_at=now, last_error=None)
    latency = None
    if notification.sqs_sent_at is not None:
        latency = round((now - notification.sqs_sent_at).total_seconds() * 1000, 1)
    log.info("delivered", extra={**context, "attempts": attempts, "end_to_end_ms": latency,
                                 "duration_ms": round((time.monotonic() - started) * 1000, 1)})
    return Delivery.SENT
