"""Server-Sent Events wire format: notif's events, encoded once to the bytes a stream sends."""
from __future__ import annotations

import json


def _data(value: dict) -> bytes:
    # JSON never contains a raw newline, so one `data:` line always suffices
    return json.dumps(value, separators=(",", ":")).encode()


def encode_notification(notification: dict, unread: int) -> bytes:
    return (b"id: %d\nevent: notification\ndata: " % notification["id"]
            + _data({**notification, "unread_count": unread}) + b"\n\n")


def encode_updated(notification: dict, unread: int) -> bytes:
    # no `id:` line: an older notification's id would move the browser's Last-Event-ID back
    return b"event: updated\ndata: " + _data({**notification, "unread_count": unread}) + b"\n\n"


def encode_removed(notification_id: int, unread: int) -> bytes:
    return b"event: removed\ndata: " + _data({"id": notification_id, "unread_count": unread}) + b"\n\n"


def encode_read(ids: list[int], all_: bool, unread: int) -> bytes:
    return b"event: read\ndata: " + _data({"ids": ids, "all": all_, "unread_count": unread}) + b"\n\n"


def encode_open(retry_ms: int) -> bytes:
    return b": connected\nretry: %d\n\n" % retry_ms


PING = b": ping\n\n"
