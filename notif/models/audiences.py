"""Topics, their members, and a topic message's fan-out in chunks (notif/fanout.py).
"""
from __future__ import annotations

import peewee

from .base import BaseModel, JSONField, utcnow


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
