"""Stored state: notifications and their deliveries (the outbox).

A notification is what a user sees in the inbox. A delivery is one (notification,
channel) pair that still has to reach that channel, or already did: it is written in the
same transaction as its notification, before any Dramatiq message exists, so the
database alone says what is owed.

A notification belongs to one user, so its inbox states are its own columns, each a time:
``seen_at`` (it was shown, e.g. the user opened the bell's panel), ``read_at`` and
``archived_at``. The routes that change them (notif/web/inbox.py) keep these invariants:

- reading implies seen: marking read sets ``seen_at`` too where it is NULL (a row read
  before migration 0010 has none and counts as seen at its ``read_at``);
- archived implies read: archiving sets ``archived_at``, and ``read_at`` and ``seen_at``
  where NULL; un-archiving clears ``archived_at`` only (the item comes back read);
- marking unread clears ``read_at`` and ``archived_at`` (an item the user wants to deal
  with goes back to the inbox) and keeps ``seen_at``; so does a producer's ``update``
  with ``"unread": true`` (notif/amendments.py).

So the unread count (``read_at IS NULL``) never counts an archived item, and the unseen
count is ``seen_at IS NULL AND read_at IS NULL``.
"""
from __future__ import annotations

import datetime as dt

import peewee

from .base import BaseModel, JSONField, isoformat, utcnow


class Notification(BaseModel):
    id = peewee.BigAutoField()
    user_id = peewee.CharField(max_length=255)
    key = peewee.CharField(max_length=255)  # idempotency key: the message `id`, else the SQS MessageId
    type = peewee.CharField(max_length=100, null=True)
    title = peewee.TextField()
    message = peewee.TextField()
    html = peewee.TextField(null=True)
    actions = JSONField(null=True)
    data = JSONField(null=True)
    recipient = JSONField(null=True)  # what the message said about the recipient (email, …)
    channel_content = JSONField(null=True)  # per-channel renderings: {"push": {...}, "email": {...}}
    priority = peewee.CharField(max_length=10)
    correlation_id = peewee.CharField(max_length=64)
    sqs_message_id = peewee.CharField(max_length=128, null=True)
    sqs_sent_at = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    read_at = peewee.DateTimeField(null=True)
    send_at = peewee.DateTimeField(null=True)  # a scheduled send: hidden from the user until then
    digest_id = peewee.BigIntegerField(null=True, index=True)  # an item held for a digest (hidden; the digest is shown)
    variables = JSONField(null=True)  # a digest item's template variables, for the digest template
    expires_at = peewee.DateTimeField(null=True)  # `expires_at` / `ttl`: gone from the inbox after it
    updated_at = peewee.DateTimeField(null=True)  # when an `update` message last changed it
    retracted_at = peewee.DateTimeField(null=True)  # a `retract` message withdrew it (kept as a tombstone)
    seen_at = peewee.DateTimeField(null=True)  # shown to the user (read implies seen: see the module's invariants)
    archived_at = peewee.DateTimeField(null=True)  # out of the inbox (archived implies read)

    class Meta:
        table_name = "notif_notification"
        indexes = (
            (("user_id", "key"), True),
            (("user_id", "id"), False),
            (("created_at",), False),  # retention deletes by age
        )

    @classmethod
    def visible(cls, now: dt.datetime | None = None):
        """What the user may see: not scheduled for later, not an item waiting in a digest,
        not retracted, not expired. (The partial indexes ``notif_notification_unread``,
        migration 0009, and ``notif_notification_unseen``, 0010, are built on the same
        conditions: keep them in step.)"""
        now = now or utcnow()
        return ((cls.send_at.is_null() | (cls.send_at <= now)) & cls.digest_id.is_null() & cls.retracted_at.is_null()
                & (cls.expires_at.is_null() | (cls.expires_at > now)))

    def lapsed(self, now: dt.datetime | None = None) -> str | None:
        """Why nothing more may be delivered for it (retracted, expired), or None."""
        if self.retracted_at is not None:
            return "retracted by its producer"
        if self.expires_at is not None and self.expires_at <= (now or utcnow()):
            return f"expired at {isoformat(self.expires_at)}"
        return None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "type": self.type,
            "title": self.title,
            "message": self.message,
            "html": self.html,
            "actions": self.actions or [],
            "data": self.data,
            "priority": self.priority,
            "created_at": isoformat(self.created_at),
            "read_at": isoformat(self.read_at),
            "send_at": isoformat(self.send_at),
            "expires_at": isoformat(self.expires_at),
            "updated_at": isoformat(self.updated_at),
            "read": self.read_at is not None,
            "seen_at": isoformat(self.seen_at or self.read_at),  # (read before 0010: seen when read)
            "archived_at": isoformat(self.archived_at),
            "seen": self.seen_at is not None or self.read_at is not None,
            "archived": self.archived_at is not None,
        }


class Delivery(BaseModel):
    """One (notification, channel): its state (:mod:`notif.delivery_states` says which states
    there are and moves a row between them), attempts, last error and when it is next due."""

    id = peewee.BigAutoField()
    notification = peewee.ForeignKeyField(Notification, backref="deliveries", on_delete="CASCADE")
    notification_id: int  # the foreign key's column, an attribute peewee adds (for the type checker only)
    channel = peewee.CharField(max_length=64)
    status = peewee.CharField(max_length=16, default="pending")
    attempts = peewee.IntegerField(default=0)
    last_error = peewee.TextField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    sent_at = peewee.DateTimeField(null=True)
    next_attempt_at = peewee.DateTimeField(null=True)  # when a pending retry is due (the sweeper waits for it)
    deferred_until = peewee.DateTimeField(null=True)  # the slot a rate limit last deferred it to (kept after release)
    reason_code = peewee.CharField(max_length=32, null=True)  # why a skipped row was skipped, as a code (notif.reasons)

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and redeliveries: give it to the other side when it can dedupe."""
        return f"notif-delivery-{self.id}"

    class Meta:
        table_name = "notif_delivery"
        indexes = (
            (("notification", "channel"), True),
            (("status", "updated_at"), False),
        )


class DeliveryAttempt(BaseModel):
    """One try at sending a delivery and what came of it (:mod:`notif.attempts` writes them).

    ``attempt`` is the delivery's attempt count that try made (a rate-limit deferral does not
    count, so the try after it carries the same number; a replay from the dead letters starts
    again at 1); ``error`` is bounded. Rows go with their delivery (ON DELETE CASCADE), so
    retention and cancels keep the log bounded."""

    id = peewee.BigAutoField()
    delivery = peewee.ForeignKeyField(Delivery, on_delete="CASCADE", column_name="delivery_id", index=False)
    delivery_id: int  # the foreign key's column (for the type checker only)
    attempt = peewee.IntegerField()
    started_at = peewee.DateTimeField(null=True)  # when the worker claimed it (None: not known)
    finished_at = peewee.DateTimeField(default=utcnow)
    outcome = peewee.CharField(max_length=16)
    error = peewee.TextField(null=True)

    class Meta:
        table_name = "notif_delivery_attempt"
        indexes = ((("delivery", "id"), False),)  # a delivery's attempts in order; the cascade's lookup (the only one)
