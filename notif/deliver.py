"""Deliver: send one delivery row through its channel and record the outcome.

A delivery is claimed (``pending`` → ``sending``) before its channel is called, so two
copies of the same Dramatiq message (a redelivery, a sweep) cannot both send. Success
marks it ``sent``; a permanent error marks it ``failed`` with the reason (a dead letter);
a transient one puts it back to ``pending`` with the time of its next attempt and raises
:class:`RetryLater` — until the channel's retry policy is exhausted, when it is ``failed``
too, with its last error. Nothing is left without a status. Every try that claimed the row is
logged with its outcome (:mod:`notif.attempts`), and a skipped row keeps its reason's code.
"""
from __future__ import annotations

import datetime as dt
import logging
import time

from . import attempts as attempt_log
from . import delivery_states as states
from . import reasons
from .channels import Channel
from .claims import claim_loaded
from .db import is_postgres
from .delivery_states import SENDING, claim, claim_current, claim_many, move, move_many
from .errors import NotifError, PermanentError, Skipped, TransientError, classify
from .models import Delivery, Notification, utcnow
from .monitoring.record import Recorder
from .runtime import Runtime

log = logging.getLogger(__name__)


class RetryLater(NotifError):
    """The delivery failed for now; try again in ``delay`` seconds."""

    def __init__(self, delay: float, reason: str) -> None:
        super().__init__(reason)
        self.delay = delay


def _defer(rt: Runtime, delivery: Delivery, wait: float, context: dict, claimed_at: dt.datetime) -> str:
    """Over the user's limit: park the delivery until its reserved slot (the scheduler releases it)."""
    until = utcnow() + dt.timedelta(seconds=wait)
    reason = (f"rate limited ({rt.limiter.describe(delivery.channel)} per user): "
              f"deferred until {until.isoformat(timespec='seconds')}Z")
    move(delivery.id, SENDING, states.DEFERRED, next_attempt_at=until, deferred_until=until, last_error=reason)
    attempt_log.record(delivery.id, delivery.attempts + 1, attempt_log.RATE_LIMITED, claimed_at, reason)
    rt.recorder.delivery(delivery.channel, "deferred")
    log.info("delivery deferred by rate limit", extra={**context, "defer_s": round(wait, 2)})
    return states.DEFERRED


def deliver(rt: Runtime, delivery_id: int) -> str:
    """Deliver one row; returns the status it ends in, or raises RetryLater."""
    started = time.monotonic()
    claimed = claim_loaded([delivery_id], rt.channels, utcnow())  # the usual case: one statement, then the send
    if not claimed:
        return _unclaimed(rt, delivery_id, started)
    return send_claimed(rt, claimed[0], started)


def context_of(delivery: Delivery) -> dict:
    """The log fields of a delivery."""
    notification = delivery.notification
    return {"delivery_id": delivery.id, "channel": delivery.channel, "notification_id": notification.id,
            "user_id": notification.user_id, "correlation_id": notification.correlation_id,
            "priority": notification.priority}


def _unclaimed(rt: Runtime, delivery_id: int, started: float) -> str:
    """A row the claim did not take: read it and say why (gone, handled, withdrawn, channel missing), or, when it
    was pending again by now (a race with a retry's move), claim it the plain way and send it."""
    delivery = (Delivery.select(Delivery, Notification).join(Notification)
                .where(Delivery.id == delivery_id).get_or_none())
    if delivery is None:
        log.warning("delivery not found (deleted?)", extra={"delivery_id": delivery_id})
        return "missing"
    notification = delivery.notification
    context = context_of(delivery)
    if delivery.status != states.PENDING:
        log.info("delivery already handled", extra={**context, "status": delivery.status})
        return delivery.status
    lapsed = notification.lapsed()
    if lapsed is not None:  # retracted or expired while it waited: it is never sent
        if not move(delivery_id, states.PENDING, states.WITHDRAWN, last_error=lapsed, next_attempt_at=None):
            return "claimed-elsewhere"
        rt.recorder.delivery(delivery.channel, "withdrawn")
        log.info("delivery withdrawn", extra={**context, "reason": lapsed})
        return states.WITHDRAWN
    if rt.channels.get(delivery.channel) is None:
        move(delivery_id, states.PENDING, states.SKIPPED, reason_code=reasons.CHANNEL_UNAVAILABLE,
             last_error=f"channel {delivery.channel!r} is not installed or is disabled")
        rt.recorder.delivery(delivery.channel, "skipped")
        log.warning("delivery skipped: channel not available", extra=context)
        return states.SKIPPED
    if not claim(delivery_id):
        return "claimed-elsewhere"
    return send_claimed(rt, delivery, started)


def send_claimed(rt: Runtime, delivery: Delivery, started: float) -> str:
    """Send a delivery this worker has claimed (``sending``, with its notification) and record the outcome."""
    notification = delivery.notification
    context = context_of(delivery)
    channel = rt.channels[delivery.channel]
    claimed_at = utcnow()
    attempts = delivery.attempts + 1
    if rt.settings.shadow:  # beside the old worker: record what would go out, send nothing
        move(delivery.id, SENDING, states.SHADOW, attempts=attempts, sent_at=claimed_at, next_attempt_at=None)
        attempt_log.record(delivery.id, attempts, attempt_log.SHADOW, claimed_at, finished_at=claimed_at)
        rt.recorder.delivery(delivery.channel, "shadow")
        log.info("shadow: would deliver", extra=context)
        return states.SHADOW
    try:
        if (delivery.channel in rt.settings.rate_limits and rt.settings.feature("rate_limits")
                and not rt.templates.is_critical(notification.type)):  # security alerts are never held back
            wait = rt.limiter.wait(notification.user_id, delivery.channel, delivery.id)
            if wait > 0:
                return _defer(rt, delivery, wait, context, claimed_at)
        channel.send(notification, delivery, rt.channel_context(log))
    except Exception as exc:
        return settle_error(rt, channel, delivery, exc, claimed_at, context)
    now = utcnow()
    move(delivery.id, SENDING, states.SENT, attempts=attempts, sent_at=now, last_error=None, next_attempt_at=None)
    attempt_log.record(delivery.id, attempts, attempt_log.SENT, claimed_at, finished_at=now)
    with rt.recorder.batched() as recorder:
        latency = _observe_sent(rt.settings.sla_seconds, recorder, notification, delivery, attempts, now)
    log.info("delivered", extra={**context, "attempts": attempts, "end_to_end_ms": latency,
                                 "duration_ms": round((time.monotonic() - started) * 1000, 1)})
    return states.SENT


def settle_error(rt: Runtime, channel: Channel, delivery: Delivery, exc: Exception, claimed_at: dt.datetime,
                 context: dict) -> str:
    """Record a claimed delivery's failed send (``exc``): skipped, failed, or back to pending with its backoff
    (then raises :class:`RetryLater`)."""
    delivery_id, attempts = delivery.id, delivery.attempts + 1
    if isinstance(exc, Skipped):
        move(delivery_id, SENDING, states.SKIPPED, attempts=attempts, last_error=exc.reason, reason_code=exc.code)
        attempt_log.record(delivery_id, attempts, attempt_log.SKIPPED, claimed_at, exc.reason)
        rt.recorder.delivery(delivery.channel, "skipped")
        log.info("delivery skipped", extra={**context, "reason": exc.reason})
        return states.SKIPPED
    error = classify(exc)
    policy = channel.retry_policy
    kind = "permanent" if isinstance(error, PermanentError) else "transient"
    rt.recorder.error("deliver", kind, type(exc).__name__)
    if isinstance(error, PermanentError) or policy.exhausted(attempts):
        reason = error.reason if isinstance(error, PermanentError) else \
            f"gave up after {attempts} attempts; last error: {error.reason}"
        move(delivery_id, SENDING, states.FAILED, attempts=attempts, last_error=reason, next_attempt_at=None)
        attempt_log.record(delivery_id, attempts, attempt_log.PERMANENT if kind == "permanent" else attempt_log.TRANSIENT,
                           claimed_at, error.reason)
        log.error("delivery dead-lettered", extra={**context, "reason": reason, "attempts": attempts,
                                                  "error_kind": kind})
        rt.recorder.delivery(delivery.channel, "failed")
        return states.FAILED
    delay = policy.delay(attempts, error.retry_after if isinstance(error, TransientError) else None)
    move(delivery_id, SENDING, states.PENDING, attempts=attempts, last_error=error.reason,
         next_attempt_at=utcnow() + dt.timedelta(seconds=delay))
    attempt_log.record(delivery_id, attempts, attempt_log.TRANSIENT, claimed_at, error.reason)
    log.warning("delivery failed; will retry", extra={**context, "reason": error.reason, "attempts": attempts,
                                                      "retry_in_s": round(delay, 1)})
    rt.recorder.delivery(delivery.channel, "retry")
    raise RetryLater(delay, error.reason) from exc


def _observe_sent(sla_seconds: dict[str, int], recorder: Recorder, notification: Notification, delivery: Delivery,
                  attempts: int, now: dt.datetime) -> float | None:
    """Record one successful delivery; returns the end-to-end milliseconds when known."""
    recorder.delivery(delivery.channel, "sent")
    due = max(filter(None, (notification.sqs_sent_at, notification.send_at)), default=None)
    if due is None:
        return None
    seconds = (now - due).total_seconds()  # a scheduled send is measured from its time, not when it was queued
    target = sla_seconds.get(notification.priority)
    # first delivery only (once per breach), and not one a rate limit deferred on purpose
    breached = (target is not None and seconds > target and attempts == 1 and delivery.deferred_until is None)
    recorder.latency(notification.priority, delivery.channel, seconds, breached)
    return round(seconds * 1000, 1)


def deliver_batch(rt: Runtime, delivery_ids: list[int]) -> list[int]:
    """Deliver several rows of one batching channel together (ingest's in-app deliveries).

    Claimed in one UPDATE, sent with the channel's ``send_many``, marked sent in one
    UPDATE. Returns the ids left for the usual one-at-a-time path: all of them when the
    batch cannot be done this way (shadow mode, a rate limit, a channel that does not
    batch) or ``send_many`` raised, and those items it reported failed — they are back to
    ``pending`` by then. No attempt is
    logged: the trace shows each one's single try from its ``sent_at`` (:mod:`notif.attempts`).
    """
    rows = list(Delivery.select(Delivery, Notification).join(Notification).where(Delivery.id.in_(delivery_ids)))
    lapsed = [d.id for d in rows if d.notification.lapsed() is not None]  # the one-at-a-time path withdraws them
    if lapsed:
        rows = [d for d in rows if d.id not in lapsed]
        delivery_ids = [i for i in delivery_ids if i not in lapsed]
    channels = {d.channel for d in rows}
    channel = rt.channels.get(next(iter(channels))) if len(channels) == 1 else None
    if channel is None or not channel.batches or not _together(rt, channel):
        return list(delivery_ids) + lapsed
    claimed = claim_many(delivery_ids)
    items = [(d.notification, d) for d in rows if d.id in claimed]
    if not items:
        return lapsed
    try:
        outcomes = channel.send_many(items, rt.channel_context(log))
    except Exception as exc:
        move_many(claimed, SENDING, states.PENDING)
        log.warning("batched delivery failed; each goes the usual way", extra={
            "channel": channel.name, "count": len(items), "reason": str(exc)})
        return sorted(claimed) + lapsed
    failed = {d.id for (_, d), outcome in zip(items, outcomes or (), strict=False) if outcome is not None}
    if failed:  # (an item of send_many that failed: it goes the usual way, one at a time, with retries)
        move_many(failed, SENDING, states.PENDING)
        items = [(n, d) for n, d in items if d.id not in failed]
        claimed = claimed - failed
    sent_at = utcnow()
    move_many(claimed, SENDING, states.SENT, attempts=Delivery.attempts + 1, sent_at=sent_at, last_error=None,
              next_attempt_at=None, updated_at=sent_at)
    with rt.recorder.batched() as recorder:
        for notification, delivery in items:
            latency = _observe_sent(rt.settings.sla_seconds, recorder, notification, delivery, delivery.attempts + 1,
                                    sent_at)
            log.info("delivered", extra={
                "delivery_id": delivery.id, "channel": delivery.channel, "notification_id": notification.id,
                "user_id": notification.user_id, "correlation_id": notification.correlation_id,
                "priority": notification.priority, "attempts": delivery.attempts + 1, "end_to_end_ms": latency,
                "batched": len(items)})
    return sorted(failed) + lapsed


def _together(rt: Runtime, channel: Channel) -> bool:
    """May several of this channel's deliveries go out together? Not in shadow mode, nor under a rate limit."""
    return not (rt.settings.shadow or (channel.name in rt.settings.rate_limits and rt.settings.feature("rate_limits")))


def deliver_copies(rt: Runtime, delivery_ids: list[int], row: dict, channel_name: str) -> list[int]:
    """Deliver a fan-out chunk's rows of one channel (``channel_name``): copies of one notification (``row``, its
    columns but ``id`` and ``user_id``) to many users, with no model per row.

    On PostgreSQL, with a channel that takes copies (``send_copies``): claimed in one UPDATE,
    only rows whose notification is still ``row``'s version, unread, not retracted and not
    expired; sent with ``send_copies``; marked sent in one UPDATE; one log line for them all.
    Returns the ids left for the one-at-a-time path: those not claimed (it reads each afresh:
    an update, a retract, a read, or another worker's claim since the chunk was stored), or
    all of them when ``send_copies`` failed (back to ``pending`` by then). Anything else —
    SQLite, shadow mode, a rate limit — goes through :func:`deliver_batch`. As there, no
    attempt is logged (a million copies would be a million more rows).
    """
    template = Notification(**row)
    channel = rt.channels.get(channel_name)
    if (channel is None or not channel.copies or not _together(rt, channel) or not is_postgres()
            or template.lapsed() is not None):
        return deliver_batch(rt, delivery_ids)
    claimed = claim_current(delivery_ids, template.updated_at, utcnow())
    ids = [delivery_id for delivery_id, _, _, _ in claimed]
    left = sorted(set(delivery_ids) - set(ids))
    if not claimed:
        return left
    try:
        channel.send_copies(template, [(notification_id, user) for _, notification_id, user, _ in claimed],
                            rt.channel_context(log))
    except Exception as exc:
        move_many(ids, SENDING, states.PENDING)
        log.warning("batched delivery failed; each goes the usual way", extra={
            "channel": channel.name, "count": len(ids), "key": template.key, "reason": str(exc)})
        return sorted(delivery_ids)
    sent_at = utcnow()
    move_many(ids, SENDING, states.SENT, attempts=Delivery.attempts + 1, sent_at=sent_at, last_error=None,
              next_attempt_at=None, updated_at=sent_at)
    latency = None
    with rt.recorder.batched() as recorder:
        recorder.delivery(channel.name, "sent", len(ids))
        due = max(filter(None, (template.sqs_sent_at, template.send_at)), default=None)
        if due is not None:
            seconds = (sent_at - due).total_seconds()
            target = rt.settings.sla_seconds.get(template.priority)
            for _, _, _, attempts in claimed:  # (a fresh copy: never deferred by a rate limit, which sends one by one)
                recorder.latency(template.priority, channel.name, seconds,
                                 target is not None and seconds > target and attempts == 0)
            latency = round(seconds * 1000, 1)
    log.info("delivered", extra={
        "channel": channel.name, "key": template.key, "correlation_id": template.correlation_id,
        "priority": template.priority, "end_to_end_ms": latency, "batched": len(ids),
        "delivery_ids": [ids[0], ids[-1]], "notification_ids": [claimed[0][1], claimed[-1][1]]})
    return left
