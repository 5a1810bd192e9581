"""Ingest: a batch of SQS messages becomes notifications and deliveries, durably, once.

Order of events, and why:
1. validate and render every message (:mod:`notif.prepare`); a permanent failure becomes a dead letter;
2. in ONE transaction, insert the notifications (a duplicate idempotency key inserts
   nothing) and one delivery row per (new notification, channel) — the outbox — and, when
   the host app's webhooks want it, a ``notification.stored`` event per new notification;
3. after the commit, enqueue one ``deliver`` per pending delivery (and the webhook events);
4. send the dead letters, then delete from SQS what is stored, duplicated or dead-lettered.

A crash before step 4 leaves the SQS message to be received again; step 2 then inserts
nothing. If the batch transaction fails, each message is tried in a transaction of its
own so one bad message cannot hold back the nine beside it.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import peewee

from .amendments import amend, apply_remembered
from .cancels import cancel_scheduled, cancelled_keys
from .db import database
from .digests import join_window
from .errors import InvalidMessage, PermanentError, TemplateError, TransientError
from .escalations import schedule as schedule_escalations
from .fanout import RUNNING, UNKNOWN, Begun, begin
from .locales import preferences_of
from .models import Notification, utcnow
from .outbox import DeliverNow, Enqueue, OwedDelivery, QueuedDelivery, chunks, delivery_rows, hand_off
from .prepare import Amend, Cancel, Prepared, localize, prepare
from .redis_keys import ingest_error
from .runtime import Runtime
from .sqs import DeadLetter, Received, delete_batch, send_dead_letters
from .webhooks import events as webhook_events

log = logging.getLogger(__name__)

LAST_ERROR_TTL = 7 * 24 * 3600

#: hands new fan-outs, as (fan-out id, priority), to the ``fanout`` actors
StartFanouts = Callable[[list[tuple[int, str]]], None]


@dataclass(frozen=True)
class StoreResult:
    """What one store transaction did."""

    inserted: set[tuple[str, str]]  # (user id, key) of every notification inserted
    duplicates: int  # notifications whose (user, key) was already stored
    queued: list[QueuedDelivery]  # pending deliveries to enqueue once committed
    dropped: int  # notifications not stored: a cancel or retract for their key came first
    fanouts: list[Begun] = field(default_factory=list)  # topic messages recorded (id None: a duplicate)
    webhooks: list[int] = field(default_factory=list)  # webhook events written, to hand to the sender once committed


@dataclass
class Outcome:
    stored: int = 0  # notifications inserted
    duplicates: int = 0  # notifications whose key was already stored
    new_messages: int = 0  # messages that stored at least one new notification
    duplicate_messages: int = 0  # messages that stored nothing new (every recipient had the key)
    dead_lettered: list[DeadLetter] = field(default_factory=list)
    retry: list[Received] = field(default_factory=list)  # transient failures, left on SQS
    cancelled: int = 0  # scheduled notifications withdrawn
    amended: int = 0  # notifications an update or retract changed
    dropped: int = 0  # notifications not stored: a cancel for their key came first
    deliveries: list[QueuedDelivery] = field(default_factory=list)  # pending, to enqueue (or deliver now)
    fanouts: list[Begun] = field(default_factory=list)  # topic messages recorded, to start once committed
    webhooks: list[int] = field(default_factory=list)  # webhook events written, to hand off once committed
    done: list[Received] = field(default_factory=list)  # safe to delete from SQS

    def add(self, prepared: list[Prepared], result: StoreResult) -> None:
        """Count a committed store of ``prepared``."""
        self.stored += len(result.inserted)
        self.duplicates += result.duplicates
        self.dropped += result.dropped
        unclaimed = set(result.inserted)  # a key sent twice in one batch is new for the first message only
        new_topics = {f.key for f in result.fanouts if f.id is not None}
        for item in prepared:
            if item.topic is not None:  # new when it began a fan-out (its key had none)
                if item.each and item.each["key"] in new_topics:
                    self.new_messages += 1
                    new_topics.discard(item.each["key"])
                else:
                    self.duplicate_messages += 1
                continue
            pairs = {(row["user_id"], row["key"]) for row in item.notifications}
            if pairs & unclaimed:
                self.new_messages += 1
                unclaimed -= pairs
            else:
                self.duplicate_messages += 1
        self.deliveries.extend(result.queued)
        self.fanouts.extend(result.fanouts)
        self.webhooks.extend(result.webhooks)
        self.done.extend(item.message for item in prepared)


def _error_kind(exc: PermanentError) -> str:
    if isinstance(exc, InvalidMessage):
        return "invalid_message"
    if isinstance(exc, TemplateError):
        return "template_error"
    return "permanent_error"


def store(rt: Runtime, prepared: list[Prepared]) -> StoreResult:
    """Write all of ``prepared`` in one transaction: the notifications, then their outbox rows."""
    rows = [row for p in prepared for row in p.notifications]
    of = {(row["user_id"], row["key"]): p for p in prepared for row in p.notifications}
    now = utcnow()
    topics = [p for p in prepared if p.topic is not None and p.each is not None]
    with database.atomic():
        keys = list({row["key"] for row in rows} | {p.each["key"] for p in topics if p.each})
        cancelled = cancelled_keys(keys)
        if cancelled:  # the cancel overtook its send on SQS
            log.info("send dropped: cancelled before it arrived", extra={"keys": sorted(cancelled)})
            rows = [row for row in rows if row["key"] not in cancelled]
        rows = apply_remembered(rt, rows)  # an update or retract that overtook its send (notif.amendments)
        prefs = preferences_of({row["user_id"] for row in rows})  # one read: locales here, opt-outs in the outbox
        localize(rt, prepared, prefs)
        dropped = sum(len(p.notifications) for p in prepared) - len(rows)
        kept = {id(row) for row in rows}
        # Digest items join their bucket's window first, in a fixed order (no deadlock between batches).
        held = sorted(((row, p, p.digest) for p in prepared if p.digest
                       for row in p.notifications if id(row) in kept),
                      key=lambda item: (item[0]["user_id"], item[2].batch_key))
        for row, p, digest in held:
            row["digest_id"] = join_window(row["user_id"], digest, row["type"], row["priority"], p.channels, now)
            row["variables"] = p.variables or None
        inserted: list[tuple[int, str, str, str]] = []
        for chunk in chunks(rows):
            query = (Notification.insert_many(chunk).on_conflict_ignore()
                     .returning(Notification.id, Notification.user_id, Notification.key, Notification.priority))
            inserted.extend(query.tuples().execute())
        # escalations: due `after` seconds from when each becomes visible; a digest item's escalates with its digest
        schedule_escalations([(nid, p.escalate, None if p.digest else p.notifications[0]["send_at"] or
                               p.notifications[0]["created_at"])
                              for nid, user_id, key, _ in inserted if (p := of[(user_id, key)]).escalate], now)
        owed = []
        stored: list = []  # webhook events (a digest item is reported as its digest, when the window closes)
        report = rt.webhooks.wants(webhook_events.NOTIFICATION_STORED)
        for notification_id, user_id, key, priority in inserted:
            p = of[(user_id, key)]
            if p.digest is None:  # a digest item is delivered with its digest
                first = p.notifications[0]
                owed.append(OwedDelivery(notification_id, user_id, priority, p.channels, first["type"],
                                         p.critical, first["send_at"]))
                if report:
                    stored.append((webhook_events.NOTIFICATION_STORED, now, webhook_events.stored(
                        notification_id, key, user_id, first["type"], priority, first["correlation_id"], p.channels,
                        first["send_at"])))
        queued = delivery_rows(rt, owed, now, prefs)
        webhooks = rt.webhooks.write(stored) if stored else []
        # a topic message: its fan-out is recorded here, its members' rows are stored chunk by chunk after;
        # an update that overtook it changes what every member gets, a retract drops it
        each = apply_remembered(rt, [p.each for p in topics if p.each and p.each["key"] not in cancelled])
        sending = {id(row) for row in each}
        fanouts = [begin(p.topic, p.each, p.channels, p.critical, now, p.escalate, p.variables) for p in topics
                   if p.topic and p.each and id(p.each) in sending]
        dropped += len(topics) - len(fanouts)
    return StoreResult({(user_id, key) for _, user_id, key, _ in inserted}, len(rows) - len(inserted), queued, dropped,
                       fanouts, webhooks)


def _is_data_error(exc: Exception) -> bool:
    """The database refused this data (not a connection problem): retrying cannot help."""
    return isinstance(exc, (peewee.IntegrityError, peewee.DataError, peewee.ProgrammingError))


def _store_each(rt: Runtime, prepared: list[Prepared], outcome: Outcome) -> None:
    for item in prepared:
        try:
            result = store(rt, [item])
        except peewee.DatabaseError as exc:
            if _is_data_error(exc):
                outcome.dead_lettered.append(DeadLetter(item.message, f"database rejected the message: {exc}", None,
                                                        "database_rejected"))
            else:
                _remember_error(rt, item.message, f"database error: {exc}")
                outcome.retry.append(item.message)
            continue
        outcome.add([item], result)


def _observe(rt: Runtime, messages: list[Received], outcome: Outcome, seconds: float) -> None:
    rt.recorder.ingested(messages[0].priority if messages else "normal", stored=outcome.new_messages,
                         duplicate=outcome.duplicate_messages,
                         dead_letter_kinds=[letter.kind for letter in outcome.dead_lettered],
                         retry=len(outcome.retry), messages=len(messages), seconds=seconds)


def _remember_error(rt: Runtime, received: Received, reason: str) -> None:
    """Keep the last transient error, so a message that finally gives up says why."""
    try:
        if rt.redis is None:
            raise RuntimeError("no Redis client")
        rt.redis.set(ingest_error(rt.settings, received.message_id), reason[:1000], ex=LAST_ERROR_TTL)
    except Exception:  # a lost breadcrumb must not fail the batch
        log.warning("could not record the last ingest error in Redis", exc_info=True)


def _gave_up(rt: Runtime, received: Received) -> DeadLetter:
    last = None
    try:
        if rt.redis is None:
            raise RuntimeError("no Redis client")
        # (the client is made without decode_responses: a reply is bytes)
        last = cast("bytes | None", rt.redis.get(ingest_error(rt.settings, received.message_id)))
    except Exception:
        pass
    reason = f"received {received.receives} times without being stored (NOTIF_MAX_RECEIVES={rt.settings.max_receives})"
    if last:
        reason += f"; last error: {last.decode(errors='replace')}"
    return DeadLetter(received, reason, None, "gave_up")


def _amend_all(rt: Runtime, amends: list[Amend], outcome: Outcome) -> None:
    for item in amends:
        try:
            outcome.amended += amend(rt, item)
            outcome.done.append(item.message)
        except PermanentError as exc:
            outcome.dead_lettered.append(DeadLetter(item.message, exc.reason, exc.field, _error_kind(exc)))
        except peewee.DatabaseError as exc:
            _remember_error(rt, item.message, f"database error: {exc}")
            outcome.retry.append(item.message)


def _transactions(prepared: list[Prepared], rows: int) -> list[list[Prepared]]:
    """The batch split into transactions of at most ``rows`` notifications (NOTIF_FANOUT_CHUNK),
    whole messages each: a batch of long recipient lists is several short transactions."""
    groups: list[list[Prepared]] = []
    size = 0
    for item in prepared:
        n = max(1, len(item.notifications))
        if not groups or size + n > rows:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += n
    return groups


def _start_fanouts(rt: Runtime, fanouts: list[Begun], start: StartFanouts | None) -> None:
    """Log and count the topic messages recorded; hand the running fan-outs to their actors."""
    for fanout in fanouts:
        if fanout.id is None:
            continue
        rt.recorder.topic_message(fanout.outcome)
        if fanout.outcome != RUNNING:
            log.warning("topic message for no one: %s", "no such topic" if fanout.outcome == UNKNOWN
                        else "the topic has no subscribers", extra={
                            "topic": fanout.topic, "key": fanout.key, "outcome": fanout.outcome,
                            "fanout_id": fanout.id})
    running = [(f.id, f.priority) for f in fanouts if f.id is not None and f.outcome == RUNNING]
    if running and start is not None:
        try:
            start(running)
        except Exception:  # recorded: the scheduler resumes a fan-out that does not move
            log.exception("could not start fan-outs; the scheduler resumes them", extra={"fanout_ids": running})


def ingest_batch(rt: Runtime, messages: list[Received], enqueue: Enqueue, deliver_now: DeliverNow | None = None,
                 start_fanouts: StartFanouts | None = None) -> Outcome:
    """Store a batch, enqueue its deliveries, dead-letter the bad, delete what is done.

    With ``deliver_now`` (the worker passes :func:`notif.deliver.deliver_batch`), the
    batch's in-app deliveries are made right here, together, instead of one Dramatiq message
    each; whatever it could not deliver is enqueued as usual. A topic message is recorded as
    a fan-out (:mod:`notif.fanout`) handed to ``start_fanouts`` once committed.

    Raises TransientError (after finishing everything else) when some messages could not
    be stored for a reason that may pass; those stay on SQS.
    """
    started = time.monotonic()
    outcome = Outcome()
    prepared: list[Prepared] = []
    cancels: list[Cancel] = []
    amends: list[Amend] = []
    for received in messages:
        if received.receives > rt.settings.max_receives:
            outcome.dead_lettered.append(_gave_up(rt, received))
            continue
        try:
            item = prepare(rt, received)
            if isinstance(item, Cancel):
                cancels.append(item)
            elif isinstance(item, Amend):
                amends.append(item)
            else:
                prepared.append(item)
        except PermanentError as exc:
            outcome.dead_lettered.append(DeadLetter(received, exc.reason, exc.field, _error_kind(exc)))

    for group in _transactions(prepared, rt.settings.fanout_chunk):
        try:
            result = store(rt, group)
        except peewee.DatabaseError as exc:
            log.warning("batch transaction failed; storing each message on its own",
                        extra={"error": str(exc), "batch_size": len(group)})
            _store_each(rt, group, outcome)
        else:
            outcome.add(group, result)

    for item in cancels:  # after the batch's own rows: a send and its cancel may share a batch
        try:
            outcome.cancelled += cancel_scheduled(item.key, item.message.correlation_id)[0]
            outcome.done.append(item.message)
        except peewee.DatabaseError as exc:
            _remember_error(rt, item.message, f"database error: {exc}")
            outcome.retry.append(item.message)
    _amend_all(rt, amends, outcome)  # after the batch's own rows too: an update may follow its send closely

    rt.webhooks.hand_off(outcome.webhooks)  # (before the in-app deliveries made here report theirs)
    outcome.deliveries = hand_off(rt, outcome.deliveries, enqueue, deliver_now)
    _start_fanouts(rt, outcome.fanouts, start_fanouts)

    if outcome.dead_lettered:
        dlq_url = rt.settings.require("queue_dead_letter")
        sent = send_dead_letters(rt.sqs, dlq_url, outcome.dead_lettered)
        for letter in sent:
            log.error("message dead-lettered", extra={
                "sqs_message_id": letter.message.message_id, "correlation_id": letter.message.correlation_id,
                "priority": letter.message.priority, "error_kind": letter.kind, "reason": letter.reason,
                "field": letter.field})
        outcome.done.extend(letter.message for letter in sent)

    by_queue: dict[str, list[Received]] = {}
    for received in outcome.done:
        by_queue.setdefault(rt.settings.queue_url(received.priority), []).append(received)
    for queue_url, done in by_queue.items():
        delete_batch(rt.sqs, queue_url, done)

    _observe(rt, messages, outcome, time.monotonic() - started)
    log.info("batch ingested", extra={
        "batch_size": len(messages), "stored": outcome.stored, "duplicates": outcome.duplicates,
        "dropped_cancelled": outcome.dropped,
        "dead_lettered": len(outcome.dead_lettered), "retrying": len(outcome.retry),
        "deliveries": len(outcome.deliveries), "duration_ms": round((time.monotonic() - started) * 1000, 1),
        "correlation_ids": [m.correlation_id for m in messages]})
    if outcome.retry:
        raise TransientError(f"{len(outcome.retry)} of {len(messages)} messages could not be stored; they stay on SQS")
    return outcome
