"""The host app's webhook events, an outbox written with each change (notif/webhooks/).
"""
from __future__ import annotations

import peewee

from .base import BaseModel, utcnow


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
