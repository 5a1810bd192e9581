"""What acts on messages after ingest: digests, cancels of scheduled sends, escalations and
producers' updates and retracts (amendments).
"""
from __future__ import annotations

import peewee

from .base import BaseModel, JSONField, utcnow
from .inbox import Notification


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
