"""Deliver several rows of one channel in one go: one claim, one ``send_many``, outcomes written by kind.

When a batch of deliveries is made together (an ingest batch, a fan-out chunk), the outbox
enqueues one ``deliver_many`` message per (priority, channel, up to ``NOTIF_DELIVER_BATCH`` ids)
instead of one message each (:meth:`notif.worker.tasks.Tasks.enqueue_together`). The worker then:

1. claims them and loads their notifications in one statement (:func:`notif.claims.claim_loaded`);
2. hands them to the channel's ``send_many`` (one SMTP session, one subscription query, the
   pooled push session), which reports an outcome per item;
3. marks every sent one ``sent`` in one UPDATE and logs their attempts in one multi-row INSERT;
   each failure is recorded on its own, as :func:`notif.deliver.deliver` would, with its own
   backoff — a transient error of one item never retries the others.

"Sent once" holds as on the single path: nothing is sent that this worker did not claim. A
per-user rate limit is checked for each row (over it, the row is deferred to its slot, as on
the single path). What the claim leaves (handled already, withdrawn, a missing channel) and
every row under shadow mode go through :func:`notif.deliver.deliver` one at a time. Retries, releases, the
sweeper and dead-letter replays keep the single-id actor.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from typing import NamedTuple

from . import attempts as attempt_log
from . import delivery_states as states
from .channels import Channel
from .claims import claim_loaded
from .deliver import RetryLater, _defer, _observe_sent, context_of, deliver, send_claimed, settle_error
from .models import Delivery, utcnow
from .runtime import Runtime

log = logging.getLogger("notif.deliver")


class Retry(NamedTuple):
    """A delivery of the batch that failed for now: due again in ``delay`` seconds (its own backoff)."""

    delivery_id: int
    delay: float


def deliver_many(rt: Runtime, delivery_ids: list[int]) -> list[Retry]:
    """Deliver these rows (of one channel, normally); returns those to try again later, each with its delay."""
    started = time.monotonic()
    claimed = claim_loaded(delivery_ids, rt.channels, utcnow())
    retries: list[Retry] = []
    groups: dict[str, list[Delivery]] = {}
    for delivery in claimed:
        groups.setdefault(delivery.channel, []).append(delivery)
    for name, rows in groups.items():
        channel = rt.channels[name]
        if not rt.settings.shadow:
            retries += _send_together(rt, channel, rows, started)
        else:  # shadow mode: each on its own, as the single path does (recorded, not sent)
            for delivery in rows:
                try:
                    send_claimed(rt, delivery, started)
                except RetryLater as retry:
                    retries.append(Retry(delivery.id, retry.delay))
    taken = {d.id for d in claimed}
    for delivery_id in dict.fromkeys(delivery_ids):
        if delivery_id not in taken:  # read afresh: handled, withdrawn, skipped — or sent the long way
            try:
                deliver(rt, delivery_id)
            except RetryLater as retry:
                retries.append(Retry(delivery_id, retry.delay))
    return retries


def _within_limits(rt: Runtime, channel: Channel, rows: list[Delivery], claimed_at: dt.datetime,
                   retries: list[Retry]) -> list[Delivery]:
    """The rows the user's rate limit lets out now (each reserves its slot, as on the single path; one Redis round
    trip for them all); the others are deferred to their slot. When the limiter fails, each is settled as that
    error (a retry)."""
    if not (channel.name in rt.settings.rate_limits and rt.settings.feature("rate_limits")):
        return rows
    now: list[Delivery] = []
    limited = [d for d in rows if not rt.templates.is_critical(d.notification.type)]  # security alerts: never held
    now += [d for d in rows if d not in limited]
    try:
        waits = rt.limiter.wait_many(channel.name, [(d.notification.user_id, d.id) for d in limited])
    except Exception as exc:  # (Redis unreachable: each is a transient error, as on the single path)
        for delivery in limited:
            try:
                settle_error(rt, channel, delivery, exc, claimed_at, context_of(delivery))
            except RetryLater as retry:
                retries.append(Retry(delivery.id, retry.delay))
        return now
    for delivery, wait in zip(limited, waits, strict=True):
        if wait > 0:
            _defer(rt, delivery, wait, context_of(delivery), claimed_at)
        else:
            now.append(delivery)
    return now


def _send_together(rt: Runtime, channel: Channel, rows: list[Delivery], started: float) -> list[Retry]:
    claimed_at = utcnow()
    retries: list[Retry] = []
    rows = _within_limits(rt, channel, rows, claimed_at, retries)
    if not rows:
        return retries
    items = [(d.notification, d) for d in rows]
    send_many = getattr(channel, "send_many", None)
    try:
        # (a plugin's channel need not subclass Channel: then the default, one ``send`` per item)
        outcomes = send_many(items, rt.channel_context(log)) if send_many else \
            Channel.send_many(channel, items, rt.channel_context(log))
    except Exception as exc:  # an all-or-nothing send_many that raised: none was sent
        outcomes = [exc] * len(items)
    if outcomes is None:  # an all-or-nothing send_many that returned: all were sent
        outcomes = [None] * len(items)
    if len(outcomes) != len(items):
        raise TypeError(f"{channel.name}.send_many returned {len(outcomes)} outcomes for {len(items)} items")
    sent = [d for d, outcome in zip(rows, outcomes, strict=True) if outcome is None]
    now = utcnow()
    if sent:
        states.move_many([d.id for d in sent], states.SENDING, states.SENT, attempts=Delivery.attempts + 1,
                         sent_at=now, last_error=None, next_attempt_at=None, updated_at=now)
        attempt_log.record_many([attempt_log.Attempt(d.id, d.attempts + 1, attempt_log.SENT, claimed_at, None, now)
                                 for d in sent])
        with rt.recorder.batched() as recorder:
            for delivery in sent:
                latency = _observe_sent(rt.settings.sla_seconds, recorder, delivery.notification, delivery,
                                        delivery.attempts + 1, now)
                log.info("delivered", extra={**context_of(delivery), "attempts": delivery.attempts + 1,
                                             "end_to_end_ms": latency, "batched": len(rows),
                                             "duration_ms": round((time.monotonic() - started) * 1000, 1)})
    for delivery, outcome in zip(rows, outcomes, strict=True):
        if outcome is not None:
            try:
                settle_error(rt, channel, delivery, outcome, claimed_at, context_of(delivery))
            except RetryLater as retry:
                retries.append(Retry(delivery.id, retry.delay))
    return retries
