"""What belongs to a user beside their notifications: push subscriptions and preferences.
"""
from __future__ import annotations

import peewee

from .base import BaseModel, JSONField, utcnow


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
