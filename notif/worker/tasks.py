"""notif's Dramatiq actors, declared on a broker the caller made (nothing happens at import).

Two actors per priority, each on a Redis queue of its own: Dramatiq's ``priority`` option
only orders work inside one process, so separate queues are what keep a LOW flood out of
HIGH's path.

- ``ingest_<priority>(messages)`` on ``notif.<priority>``: a batch of SQS messages →
  stored notifications. The poller meters these queues (backpressure, weights).
- ``fanout_<priority>(fanout_id)`` on ``notif.<priority>`` too: one chunk of a topic
  message (:mod:`notif.fanout`), which then sends itself again for the next chunk, so a
  LOW announcement to a million takes a thread for one short transaction at a time.
- ``deliver_<priority>(delivery_id)`` on ``notif.deliver.<priority>``: one delivery row →
  its channel (retries, releases, the sweeper, dead-letter replays, a lone delivery).
- ``deliver_many_<priority>(delivery_ids)`` on the same queue: up to ``NOTIF_DELIVER_BATCH``
  rows of one channel made together (:mod:`notif.deliver_many`); one that fails for now is
  re-enqueued alone, as a delayed ``deliver`` message.
- ``webhook(event_id)`` on ``notif.webhook``: one attempt at one webhook event
  (:mod:`notif.webhooks.send`), retried with the webhooks' backoff.

Inside a worker process HIGH work is taken before NORMAL before LOW (the ``priority``
option); LOW cannot starve because the poller stops admitting HIGH batches while the
shared ingest backlog is full, which leaves the workers the LOW batches already queued.

The worker declares them with a :class:`~notif.runtime.Runtime` to run them
(:func:`notif.worker.process.build_worker`); the poller, the scheduler and ``notif dlq``
declare them only to send messages (:func:`producer`).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from .. import deliver as deliver_mod
from .. import deliver_many as deliver_many_mod
from .. import fanout as fanout_mod
from .. import ingest as ingest_mod
from ..config import PRIORITIES, Settings
from ..db import database
from ..errors import PermanentError
from ..outbox import IN_APP, QueuedDelivery, hand_off
from ..redis_keys import deliver_queue, ingest_queue, webhook_queue
from ..runtime import Runtime
from ..sqs import Received
from ..webhooks import send as webhook_send
from ..webhooks.outbox import ACTOR as WEBHOOK_ACTOR
from ..webhooks.outbox import topic_copies
from .broker import enqueue_many, make_broker

INGEST_RETRIES = 8
DELIVER_RETRIES = 30  # a safety net: the channel's retry policy decides, counting attempts in the database
WEBHOOK_RETRIES = 30  # likewise (NOTIF_WEBHOOK_MAX_ATTEMPTS decides; past this the sweep re-enqueues what is owed)
PROCESS_PRIORITY = {"high": 0, "normal": 10, "low": 20}  # lower runs first within a worker


@dataclass(frozen=True)
class Tasks:
    """The broker and the actors declared on it: what sends work to the workers."""

    broker: RedisBroker
    ingest: dict[str, dramatiq.Actor]
    deliver: dict[str, dramatiq.Actor]
    fanout: dict[str, dramatiq.Actor]
    webhook: dramatiq.Actor
    deliver_many: dict[str, dramatiq.Actor]
    batch: int = 20  # most deliveries per deliver_many message (NOTIF_DELIVER_BATCH)

    def send_ingest(self, priority: str, batch: Sequence[Received]) -> None:
        """Hand a batch of received SQS messages to that priority's ingest actor."""
        self.ingest[priority].send([m.to_json() for m in batch])

    def start_fanouts(self, fanouts: Sequence[tuple[int, str]]) -> None:
        """One ``fanout`` message per (fan-out id, priority), in one Redis round trip."""
        if fanouts:
            enqueue_many(self.broker, [self.fanout[priority].message(fanout_id) for fanout_id, priority in fanouts])

    def enqueue_deliveries(self, queued: Sequence[QueuedDelivery]) -> None:
        """One ``deliver`` message per pending delivery, in one Redis round trip (an ``Enqueue``)."""
        if queued:
            enqueue_many(self.broker, [self.deliver[q.priority].message(q.delivery_id) for q in queued])

    def enqueue_together(self, queued: Sequence[QueuedDelivery]) -> None:
        """Deliveries made together (an ingest batch, a fan-out chunk): one ``deliver_many`` message per
        (priority, channel, up to :attr:`batch` ids), a lone one a ``deliver`` message; one Redis round trip."""
        groups: dict[tuple[str, str], list[int]] = {}
        for q in queued:
            groups.setdefault((q.priority, q.channel), []).append(q.delivery_id)
        messages = []
        for (priority, _), ids in groups.items():
            for start in range(0, len(ids), self.batch):
                part = ids[start:start + self.batch]
                messages.append(self.deliver[priority].message(part[0]) if len(part) == 1
                                else self.deliver_many[priority].message(part))
        if messages:
            enqueue_many(self.broker, messages)

    def retry_later(self, priority: str, retries: Sequence[deliver_many_mod.Retry]) -> None:
        """A batch's deliveries that failed for now: each a ``deliver`` message of its own, due after its delay."""
        for retry in retries:
            self.deliver[priority].send_with_options(args=(retry.delivery_id,), delay=int(retry.delay * 1000))

    def enqueue_webhooks(self, event_ids: Sequence[int]) -> None:
        """One ``webhook`` message per webhook event, in one Redis round trip."""
        if event_ids:
            enqueue_many(self.broker, [self.webhook.message(event_id) for event_id in event_ids])


def _retry_when(limit: int) -> Callable[[int, BaseException], bool]:
    def retry_when(retries: int, exc: BaseException) -> bool:
        return not isinstance(exc, PermanentError) and retries < limit
    return retry_when


def _no_runtime() -> Runtime:
    raise RuntimeError("this process only sends notif's tasks; `dramatiq notif.actors` runs them")


def declare(broker: RedisBroker, runtime: Callable[[], Runtime] = _no_runtime, batch: int = 20) -> Tasks:
    """Declare notif's actors on ``broker``; ``runtime()`` gives what they run with (per process); ``batch``:
    the most deliveries per ``deliver_many`` message (NOTIF_DELIVER_BATCH)."""
    tasks: Tasks

    def ingest(messages: list[dict]) -> None:
        rt = runtime()
        with database.connection_context():
            ingest_mod.ingest_batch(rt, [Received.from_json(m) for m in messages], tasks.enqueue_together,
                                    deliver_now=deliver_mod.deliver_batch, start_fanouts=tasks.start_fanouts)

    def fanout(fanout_id: int) -> None:
        rt = runtime()
        with database.connection_context():
            started = time.monotonic()
            chunk = fanout_mod.step(rt, fanout_id)
            if chunk.more:  # the next chunk, before delivering this one: another thread may take it meanwhile
                tasks.start_fanouts([(fanout_id, chunk.priority)])
            rt.recorder.fanout_chunk(chunk.priority, chunk.stored, time.monotonic() - started)
            # its in-app deliveries are copies of one notification: delivered together, with no model per row
            rt.webhooks.hand_off(chunk.webhooks)
            row = chunk.notification
            with topic_copies():  # (their delivery.sent: per recipient only, and then by the usual query)
                hand_off(rt, chunk.queued, tasks.enqueue_together, deliver_mod.deliver_batch if row is None else
                         lambda rt, ids: deliver_mod.deliver_copies(rt, ids, row, IN_APP))

    def deliver(delivery_id: int) -> None:
        rt = runtime()
        with database.connection_context():
            try:
                deliver_mod.deliver(rt, delivery_id)
            except deliver_mod.RetryLater as retry:
                # the channel's policy chose the delay (backoff with jitter, Retry-After honoured)
                raise dramatiq.Retry(str(retry), delay=int(retry.delay * 1000)) from None

    def many(priority: str) -> Callable[[list[int]], None]:
        def deliver_many(delivery_ids: list[int]) -> None:
            rt = runtime()
            with database.connection_context():
                retries = deliver_many_mod.deliver_many(rt, delivery_ids)
            tasks.retry_later(priority, retries)  # (not a Dramatiq retry: that would send the whole batch again)
        return deliver_many

    def webhook(event_id: int) -> None:
        rt = runtime()
        with database.connection_context():
            try:
                webhook_send.send(rt, event_id)
            except deliver_mod.RetryLater as retry:  # the webhooks' retry policy chose the delay
                raise dramatiq.Retry(str(retry), delay=int(retry.delay * 1000)) from None

    def actor(fn: Callable, name: str, queue: str, priority: str, retries: int, time_limit_ms: int) -> dramatiq.Actor:
        # (the decorator form: dramatiq's overloads have no variant for a function with options)
        return dramatiq.actor(broker=broker, actor_name=name, queue_name=queue,
                              priority=PROCESS_PRIORITY[priority], max_retries=retries, min_backoff=1_000,
                              max_backoff=300_000, retry_when=_retry_when(retries), time_limit=time_limit_ms)(fn)

    tasks = Tasks(
        broker=broker,
        ingest={p: actor(ingest, f"ingest_{p}", ingest_queue(p), p, INGEST_RETRIES, 120_000) for p in PRIORITIES},
        deliver={p: actor(deliver, f"deliver_{p}", deliver_queue(p), p, DELIVER_RETRIES, 60_000) for p in PRIORITIES},
        fanout={p: actor(fanout, f"fanout_{p}", ingest_queue(p), p, INGEST_RETRIES, 120_000) for p in PRIORITIES},
        webhook=actor(webhook, WEBHOOK_ACTOR, webhook_queue(), "normal", WEBHOOK_RETRIES, 60_000),
        # (a batch's time: its sends one after another, each bounded by the channel's own timeout)
        deliver_many={p: actor(many(p), f"deliver_many_{p}", deliver_queue(p), p, DELIVER_RETRIES, 300_000)
                      for p in PRIORITIES},
        batch=batch,
    )
    return tasks


def producer(settings: Settings) -> Tasks:
    """notif's tasks on a broker of their own, for a process that only sends them."""
    return declare(make_broker(settings), batch=settings.deliver_batch)
