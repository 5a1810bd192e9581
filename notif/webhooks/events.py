"""Webhook events: their types, which of them a deployment sends, and the body each one is.

A body is the JSON object Standard Webhooks recommends, written once when the event happens and
sent as those exact bytes on every attempt::

    {"type": "delivery.failed", "timestamp": "2026-03-02T10:15:30.123Z", "data": {...}}

``timestamp`` is when the event happened (an attempt's own time is the ``webhook-timestamp``
header). What ``data`` holds for each type is listed in README › Webhooks; the builders below are
the one place each shape is made.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable

from ..models import isoformat

NOTIFICATION_STORED = "notification.stored"
NOTIFICATION_READ = "notification.read"
NOTIFICATION_SEEN = "notification.seen"
NOTIFICATION_ARCHIVED = "notification.archived"
DELIVERY_SENT = "delivery.sent"
DELIVERY_FAILED = "delivery.failed"
EVENTS = (NOTIFICATION_STORED, NOTIFICATION_READ, NOTIFICATION_SEEN, NOTIFICATION_ARCHIVED, DELIVERY_SENT,
          DELIVERY_FAILED)


def parse_events(text: str) -> frozenset[str]:
    """``NOTIF_WEBHOOK_EVENTS``: ``all`` (the default), types (``delivery.failed``), groups (``delivery.*``),
    each may be taken away with ``-`` (``all,-notification.seen``); separated by commas or spaces."""
    chosen: set[str] = set()
    for item in (part.strip().lower() for part in text.replace(" ", ",").split(",")):
        if not item:
            continue
        name = item.lstrip("-+")
        if name == "all":
            names = set(EVENTS)
        elif name.endswith(".*") and any(e.startswith(name[:-1]) for e in EVENTS):
            names = {e for e in EVENTS if e.startswith(name[:-1])}
        elif name in EVENTS:
            names = {name}
        else:
            raise ValueError(f"unknown webhook event {name!r}; events: {', '.join(EVENTS)}, a group such as "
                             "`delivery.*`, or all")
        if item.startswith("-"):
            chosen -= names
        else:
            chosen |= names
    return frozenset(chosen)


def body(type_: str, when: dt.datetime, data: dict) -> str:
    """The exact JSON text sent (compact, ASCII): the same bytes on every attempt."""
    return json.dumps({"type": type_, "timestamp": isoformat(when), "data": data}, separators=(",", ":"))


# -- what each type's data holds ---------------------------------------------------------
def stored(notification_id: int, key: str, user_id: str, type_: str | None, priority: str, correlation_id: str,
           channels: Iterable[str], send_at: dt.datetime | None, topic: str | None = None,
           digest: dict | None = None) -> dict:
    """``notification.stored`` for one recipient's notification (a direct message, a digest, or a topic message's
    recipient when NOTIF_WEBHOOK_TOPIC_RECIPIENTS is on)."""
    data = {"notification_id": notification_id, "key": key, "user_id": user_id, "type": type_, "priority": priority,
            "correlation_id": correlation_id, "channels": list(channels), "send_at": isoformat(send_at)}
    if topic is not None:
        data["topic"] = topic
    if digest is not None:
        data["digest"] = digest
    return data


def topic_stored(key: str, topic: str, type_: str | None, priority: str, correlation_id: str, channels: Iterable[str],
                 recipients: int, send_at: dt.datetime | None) -> dict:
    """``notification.stored`` for a whole topic message, once its fan-out has stored every member's copy."""
    return {"key": key, "topic": topic, "type": type_, "priority": priority, "correlation_id": correlation_id,
            "channels": list(channels), "recipients": recipients, "send_at": isoformat(send_at)}


def delivery(delivery_id: int, channel: str, attempts: int, notification_id: int, key: str, user_id: str,
             type_: str | None, priority: str, correlation_id: str, error: str | None = None) -> dict:
    """``delivery.sent`` (``error`` None) and ``delivery.failed`` (``error``: why it is a dead letter)."""
    data = {"delivery_id": delivery_id, "channel": channel, "attempts": attempts, "notification_id": notification_id,
            "key": key, "user_id": user_id, "type": type_, "priority": priority, "correlation_id": correlation_id}
    if error is not None:
        data["error"] = error
    return data


def inbox(type_: str, notification_id: int, key: str, user_id: str, kind: str | None, correlation_id: str,
          at: dt.datetime | None, archived: bool | None = None) -> dict:
    """``notification.read`` / ``.seen`` / ``.archived``: the user's action on one notification (``at``: its
    ``read_at``, ``seen_at`` or ``archived_at``; None when brought back from the archive)."""
    field = {NOTIFICATION_READ: "read_at", NOTIFICATION_SEEN: "seen_at", NOTIFICATION_ARCHIVED: "archived_at"}[type_]
    data: dict = {"notification_id": notification_id, "key": key, "user_id": user_id, "type": kind,
                  "correlation_id": correlation_id, field: isoformat(at)}
    if archived is not None:
        data["archived"] = archived
    return data
