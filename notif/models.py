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
import json

import peewee

from .db import database


def utcnow() -> dt.datetime:
    """Naive UTC, the one timestamp convention in the database."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def isoformat(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"


class JSONField(peewee.TextField):
    """JSON kept as text, the same on PostgreSQL and SQLite."""

    def db_value(self, value):
        return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)

    def python_value(self, value):
        return None if value is None else json.loads(value)


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


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


class PushSubscription(BaseModel):
    """A browser's Web Push subscription; a user may have several (one per device/browser)."""

    id = peewee.BigAutoField()
    user_id = peewee.CharField(max_length=255, index=True)
    endpoint = peewee.TextField(unique=True)
    p256dh = peewee.CharField(max_length=200)
    auth = peewee.CharField(max_length=100)
    user_agent = peewee.TextField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "notif_push_subscription"

    def info(self) -> dict:
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


class Preference(BaseModel):
    """A user's opt-outs: ``{"channels": {"email": false}, "types": {"COMMENT_ADDED": false},
    "type_channels": {"REPORT_SUBMITTED": {"push": false}}}`` (absent means on), and ``"locale": "fr"``
    (:mod:`notif.locales`)."""

    user_id = peewee.CharField(max_length=255, primary_key=True)
    settings = JSONField()
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "notif_preference"

    @staticmethod
    def allows(settings: dict | None, type_: str | None, channel: str) -> bool:
        return Preference.opted_out(settings, type_, channel) is None

    @staticmethod
    def opted_out(settings: dict | None, type_: str | None, channel: str) -> str | None:
        """Which opt-out keeps this (type, channel) from the user: ``"channel"``, ``"type"`` or
        ``"type_channel"`` (the first that applies, in that order), or None when none does."""
        if not settings:
            return None
        if settings.get("channels", {}).get(channel) is False:
            return "channel"
        if type_ and settings.get("types", {}).get(type_) is False:
            return "type"
        if type_ and settings.get("type_channels", {}).get(type_, {}).get(channel) is False:
            return "type_channel"
        return None


class Digest(BaseModel):
    """A digest window: notifications for one (user, batch key), collected until ``closes_at``.

    ``open_key`` is ``"<user>\x1f<batch key>"`` while the window is open and NULL once it is
    closed; its unique index means one open window per bucket, whichever process asks. Items
    are notifications with ``digest_id`` set; closing writes one grouped notification
    (``notification_id``) with its deliveries, in one transaction.
    """

    id = peewee.BigAutoField()
    user_id = peewee.CharField(max_length=255)
    batch_key = peewee.CharField(max_length=255)
    open_key = peewee.CharField(max_length=520, null=True, unique=True)
    type = peewee.CharField(max_length=100, null=True)  # the first item's: picks the digest template
    priority = peewee.CharField(max_length=10)
    channels = JSONField()
    opened_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    closes_at = peewee.DateTimeField(index=True)
    closed_at = peewee.DateTimeField(null=True)
    notification_id = peewee.BigIntegerField(null=True)  # the grouped notification, once closed

    class Meta:
        table_name = "notif_digest"

    @staticmethod
    def bucket(user_id: str, batch_key: str) -> str:
        return f"{user_id}\x1f{batch_key}"


class Cancellation(BaseModel):
    """A cancel, remembered: SQS does not keep order, so a ``{"cancel": id}`` may arrive before
    the send it cancels. Ingest drops a send whose key is here, and the scheduler never
    releases one; kept for ``KEEP_DAYS``."""

    KEEP_DAYS = 7
    key = peewee.CharField(max_length=255, primary_key=True)
    created_at = peewee.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "notif_cancellation"


class Topic(BaseModel):
    """A named set of user ids (:class:`TopicMember`) a message can name instead of recipients.

    ``subscribers`` is kept in the transaction that adds or removes members, so listing
    topics with their counts reads no member rows.
    """

    id = peewee.BigAutoField()
    name = peewee.CharField(max_length=128, unique=True)
    subscribers = peewee.BigIntegerField(default=0)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "notif_topic"


class TopicMember(BaseModel):
    """One subscriber of a topic. Ids only grow: a fan-out takes the members up to the
    largest id when its message was ingested (who was subscribed then), in id order."""

    id = peewee.BigAutoField()
    topic = peewee.ForeignKeyField(Topic, on_delete="CASCADE", column_name="topic_id")
    topic_id: int  # the foreign key's column (for the type checker only)
    user_id = peewee.CharField(max_length=255)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "notif_topic_member"
        indexes = (
            (("topic", "user_id"), True),  # one membership per user; members listed by user id
            (("topic", "id"), False),  # a fan-out's chunks, in id order
        )


class Fanout(BaseModel):
    """A message for a topic, stored chunk by chunk: its progress, so a crash resumes it.

    Written in the ingest transaction (its ``key`` unique: a redelivered message makes no
    second one); each chunk stores the notifications of members ``cursor < id <= upto`` (at
    most a chunk of them) and moves ``cursor`` in the same transaction. ``row`` is the
    notification every member gets (without ``user_id``); ``finished_at`` is set when no
    member is left, or at once for an unknown or empty topic (``outcome`` says which).
    """

    id = peewee.BigAutoField()
    key = peewee.CharField(max_length=255, unique=True)  # the message's idempotency key
    topic = peewee.CharField(max_length=128)
    topic_id = peewee.BigIntegerField(null=True)  # the topic named, when it existed at ingest
    priority = peewee.CharField(max_length=10)
    correlation_id = peewee.CharField(max_length=64)
    row = JSONField()  # the notification's columns, the same for every member
    channels = JSONField()
    critical = peewee.BooleanField(default=False)
    upto = peewee.BigIntegerField(default=0)  # members with an id up to this one (those subscribed at ingest)
    cursor = peewee.BigIntegerField(default=0)  # members up to this id are stored
    stored = peewee.BigIntegerField(default=0)  # notifications inserted so far
    outcome = peewee.CharField(max_length=32, default="running")  # running, done, unknown_topic, empty_topic, cancelled
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow, index=True)
    finished_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "notif_fanout"


class Escalation(BaseModel):
    """A notification's escalation (:mod:`notif.escalations`): if it is still unread at ``due_at``, the
    leading scheduler sends it on ``channels`` too, once.

    ``state`` moves once, by a conditional UPDATE from ``pending`` (or stays ``held``: a digest
    item, which escalates as its digest's notification): to ``escalated`` (its deliveries written
    in the same transaction), ``read`` (``read_at``: it was read in time), or ``withdrawn``
    (``note``: retracted or expired). Pending rows are found by a partial index on ``due_at``
    (migration 0013), so the due scan reads only what is owed, however many notifications there are.
    """

    notification = peewee.ForeignKeyField(Notification, primary_key=True, on_delete="CASCADE",
                                          column_name="notification_id")
    notification_id: int  # the foreign key's column (for the type checker only)
    after = peewee.IntegerField()  # seconds after the notification became visible
    channels = JSONField()  # where it escalates to
    state = peewee.CharField(max_length=16)  # held, pending, escalated, read, withdrawn
    due_at = peewee.DateTimeField(null=True)  # visible time + after (None while held in a digest)
    decided_at = peewee.DateTimeField(null=True)  # when it left `pending`
    read_at = peewee.DateTimeField(null=True)  # `read`: when the user had read it
    note = peewee.TextField(null=True)  # `withdrawn`: why
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "notif_escalation"


class Amendment(BaseModel):
    """An ``{"update": key, …}`` or ``{"retract": key}`` message, remembered: SQS does not keep
    order, so one may arrive before the notification it changes. Ingest applies the remembered
    ones to a notification arriving later (a retracted one is dropped); kept for ``KEEP_DAYS``.
    ``id`` is the amending message's own idempotency key: a redelivered copy changes nothing."""

    KEEP_DAYS = 7
    id = peewee.CharField(max_length=255, primary_key=True)
    target = peewee.CharField(max_length=255, index=True)  # the key of the notification it changes
    kind = peewee.CharField(max_length=16)  # "update" | "retract"
    changes = JSONField(null=True)  # an update's fields: title, message, variables, data, unread
    correlation_id = peewee.CharField(max_length=64, null=True)
    created_at = peewee.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "notif_amendment"


class WebhookEvent(BaseModel):
    """One event owed to one webhook endpoint (the webhooks' outbox, :mod:`notif.webhooks`).

    Written in the transaction of the change it reports, one row per (event, endpoint URL);
    ``body`` is the exact JSON sent and signed on every attempt, ``webhook_id`` the id every
    attempt and replay carries. Its states (:mod:`notif.webhooks.states`) are a delivery's:
    pending, sending, sent, failed (a dead letter; ``last_error`` says why), discarded.
    """

    id = peewee.BigAutoField()
    webhook_id = peewee.CharField(max_length=64)  # `msg_…`: the `webhook-id` header, the same on every attempt
    type = peewee.CharField(max_length=64)  # notification.stored, delivery.failed, …
    endpoint = peewee.TextField()  # one of NOTIF_WEBHOOK_URL's URLs
    body = peewee.TextField()  # the JSON sent: {"type", "timestamp", "data"}
    correlation_id = peewee.CharField(max_length=64, null=True)
    status = peewee.CharField(max_length=16, default="pending")
    attempts = peewee.IntegerField(default=0)
    last_error = peewee.TextField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)  # when the event happened (the body's timestamp)
    updated_at = peewee.DateTimeField(default=utcnow)
    next_attempt_at = peewee.DateTimeField(null=True)  # when a retry is due (the sweep waits for it)
    sent_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "notif_webhook_event"
        indexes = ((("status", "updated_at"), False),)  # the sweep's and retention's way in


MODELS = [Notification, Delivery, DeliveryAttempt, PushSubscription, Preference, Digest, Cancellation, Topic,
          TopicMember, Fanout, Amendment, WebhookEvent,
          Escalation]
