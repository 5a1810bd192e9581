"""Dead letters, one place to look: poison inputs (the SQS DLQ), failed deliveries and failed
webhook events (rows).

Ids say which is which: ``sqs:<MessageId>`` for an input message that could never be
stored, ``delivery:<id>`` for a delivery that gave up, ``webhook:<id>`` for a webhook event
that did. ``replay`` sends each back through the normal path — an input to the queue it came
from (keeping its idempotency key, so a replay stores nothing twice), a delivery or a webhook
event back to ``pending`` and its worker queue (an event keeps its body and its webhook-id, so
a receiver that already has it can tell).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from . import delivery_states as states
from .config import PRIORITIES, Settings
from .models import Delivery, Notification, WebhookEvent, isoformat
from .outbox import Enqueue, QueuedDelivery
from .sqs import REPLAY_ATTRIBUTE, client_for
from .webhooks import states as webhook_states
from .webhooks.outbox import Enqueue as EnqueueWebhooks
from .webhooks.send import shown

PEEK_VISIBILITY = 30  # seconds the DLQ messages stay hidden while a command looks at them


@dataclass
class Letter:
    id: str
    kind: str  # "input", "delivery" or "webhook"
    reason: str
    error: str
    when: str | None
    priority: str | None
    where: str  # the queue, the channel or the webhook endpoint
    correlation_id: str | None
    details: dict = field(default_factory=dict)
    receipt: str | None = field(default=None, repr=False)

    def public(self) -> dict:
        data = asdict(self)
        data.pop("receipt")
        return data


def _attr(message: dict, name: str) -> str | None:
    return message.get("MessageAttributes", {}).get(name, {}).get("StringValue")


class DeadLetters:
    def __init__(self, settings: Settings, enqueue: Enqueue | None = None,
                 enqueue_webhooks: EnqueueWebhooks | None = None) -> None:
        self.settings = settings
        self.sqs = client_for(settings)
        self.dlq = settings.require("queue_dead_letter")
        self.enqueue = enqueue
        self.enqueue_webhooks = enqueue_webhooks
        self._peeked: list[Letter] | None = None

    # -- reading ------------------------------------------------------------------------
    def inputs(self, limit: int = 1000) -> list[Letter]:
        """The DLQ's messages, oldest first (hidden for PEEK_VISIBILITY while we look)."""
        if self._peeked is not None:
            return self._peeked
        seen: dict[str, Letter] = {}
        while len(seen) < limit:
            batch = self.sqs.receive_message(QueueUrl=self.dlq, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                             VisibilityTimeout=PEEK_VISIBILITY, MessageAttributeNames=["All"],
                                             MessageSystemAttributeNames=["SentTimestamp"]).get("Messages", [])
            if not batch:
                break
            for m in batch:
                sent = int(m.get("Attributes", {}).get("SentTimestamp", 0)) / 1000
                seen[m["MessageId"]] = Letter(
                    id=f"sqs:{m['MessageId']}", kind="input", reason=_attr(m, "notif_reason") or "(no reason recorded)",
                    error=_attr(m, "notif_error") or "unknown",
                    when=isoformat(dt.datetime.fromtimestamp(sent, dt.UTC).replace(tzinfo=None)) if sent else None,
                    priority=_attr(m, "notif_priority"), where=f"sqs:{_attr(m, 'notif_priority') or '?'}",
                    correlation_id=_attr(m, "notif_correlation_id"),
                    details={"body": m["Body"], "field": _attr(m, "notif_field"),
                             "source_message_id": _attr(m, "notif_source_message_id"),
                             "receive_count": _attr(m, "notif_receive_count")},
                    receipt=m["ReceiptHandle"])
        letters = sorted(seen.values(), key=lambda letter: letter.when or "")
        self._peeked = letters
        return letters

    def release(self) -> None:
        """Make what we peeked at visible again (what was replayed or purged is gone already)."""
        letters = [letter for letter in (self._peeked or []) if letter.receipt]
        for start in range(0, len(letters), 10):
            self.sqs.change_message_visibility_batch(QueueUrl=self.dlq, Entries=[
                {"Id": str(i), "ReceiptHandle": letter.receipt, "VisibilityTimeout": 0}
                for i, letter in enumerate(letters[start:start + 10])])
        self._peeked = None

    def deliveries(self, limit: int = 1000) -> list[Letter]:
        rows = (Delivery.select(Delivery, Notification).join(Notification)
                .where(Delivery.status == states.FAILED).order_by(Delivery.updated_at).limit(limit))
        return [Letter(
            id=f"delivery:{d.id}", kind="delivery", reason=d.last_error or "", error="delivery_failed",
            when=isoformat(d.updated_at), priority=d.notification.priority, where=f"channel:{d.channel}",
            correlation_id=d.notification.correlation_id,
            details={"notification_id": d.notification.id, "user_id": d.notification.user_id,
                     "channel": d.channel, "attempts": d.attempts, "title": d.notification.title,
                     "created_at": isoformat(d.created_at)}) for d in rows]

    def webhooks(self, limit: int = 1000) -> list[Letter]:
        rows = (WebhookEvent.select().where(WebhookEvent.status == webhook_states.FAILED)
                .order_by(WebhookEvent.updated_at).limit(limit))
        return [Letter(
            id=f"webhook:{e.id}", kind="webhook", reason=e.last_error or "", error="webhook_failed",
            when=isoformat(e.updated_at), priority=None, where=f"webhook:{e.type}", correlation_id=e.correlation_id,
            details={"event_type": e.type, "webhook_id": e.webhook_id, "endpoint": shown(e.endpoint),
                     "attempts": e.attempts, "created_at": isoformat(e.created_at), "body": e.body}) for e in rows]

    def of_kind(self, kind: str | None) -> list[Letter]:
        """Every dead letter, or those of one kind (input, delivery, webhook)."""
        if kind is None:
            return self.all()
        return {"input": self.inputs, "delivery": self.deliveries, "webhook": self.webhooks}[kind]()

    def all(self) -> list[Letter]:
        return self.inputs() + self.deliveries() + self.webhooks()

    def find(self, ids: Iterable[str]) -> tuple[list[Letter], list[str]]:
        wanted = list(ids)
        known = {letter.id: letter for letter in self.all()}
        return [known[i] for i in wanted if i in known], [i for i in wanted if i not in known]

    # -- acting -------------------------------------------------------------------------
    def replay(self, letters: list[Letter]) -> int:
        done = 0
        pending: list[QueuedDelivery] = []
        events: list[int] = []
        for letter in letters:
            if letter.kind == "input":
                source = self.settings.queue_url(letter.priority if letter.priority in PRIORITIES else "normal")
                attributes = {REPLAY_ATTRIBUTE: letter.details.get("source_message_id") or letter.id[4:]}
                if letter.correlation_id:
                    attributes["correlation_id"] = letter.correlation_id
                self.sqs.send_message(QueueUrl=source, MessageBody=letter.details["body"], MessageAttributes={
                    k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()})
                self.sqs.delete_message(QueueUrl=self.dlq, ReceiptHandle=letter.receipt)
                letter.receipt = None
                done += 1
            elif letter.kind == "webhook":
                event_id = int(letter.id.split(":", 1)[1])
                if webhook_states.move(event_id, webhook_states.FAILED, webhook_states.PENDING, attempts=0,
                                       next_attempt_at=None,
                                       last_error=f"replayed from the dead letters; was: {letter.reason}"[:2000]):
                    events.append(event_id)
                    done += 1
            else:
                delivery_id = int(letter.id.split(":", 1)[1])
                if states.move(delivery_id, states.FAILED, states.PENDING, attempts=0, next_attempt_at=None,
                               last_error=f"replayed from the dead letters; was: {letter.reason}"[:2000]):
                    pending.append(QueuedDelivery(delivery_id, letter.priority or "normal",
                                                  letter.details.get("channel", "")))
                    done += 1
        if pending:
            if self.enqueue is None:
                raise RuntimeError("replaying deliveries needs a broker")
            self.enqueue(pending)
        if events:
            if self.enqueue_webhooks is None:
                raise RuntimeError("replaying webhook events needs a broker")
            self.enqueue_webhooks(events)
        return done

    def purge(self, letters: list[Letter]) -> int:
        done = 0
        for letter in letters:
            if letter.kind == "input":
                self.sqs.delete_message(QueueUrl=self.dlq, ReceiptHandle=letter.receipt)
                letter.receipt = None
                done += 1
            elif letter.kind == "webhook":
                done += webhook_states.move(int(letter.id.split(":", 1)[1]), webhook_states.FAILED,
                                            webhook_states.DISCARDED)
            else:
                delivery_id = int(letter.id.split(":", 1)[1])
                done += states.move(delivery_id, states.FAILED, states.DISCARDED)
        return done
