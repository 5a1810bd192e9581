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


# State events (read, seen, unread, archived, counts) have no `id:` line either: only a notification moves
# the browser's Last-Event-ID. A read event from a web process older than the unseen count has none (None):
# it is passed on without it.


def encode_read(ids: list[int], all_: bool, unread: int, unseen: int | None = None) -> bytes:
    body: dict = {"ids": ids, "all": all_, "unread_count": unread}
    if unseen is not None:
        body["unseen_count"] = unseen
    return b"event: read\ndata: " + _data(body) + b"\n\n"


def encode_seen(ids: list[int], all_: bool, unread: int, unseen: int) -> bytes:
    return (b"event: seen\ndata: "
            + _data({"ids": ids, "all": all_, "unread_count": unread, "unseen_count": unseen}) + b"\n\n")


def encode_unread(ids: list[int], unread: int, unseen: int) -> bytes:
    return b"event: unread\ndata: " + _data({"ids": ids, "unread_count": unread, "unseen_count": unseen}) + b"\n\n"


def encode_archived(notification_id: int, archived: bool, unread: int, unseen: int, total: int) -> bytes:
    return b"event: archived\ndata: " + _data({"id": notification_id, "archived": archived, "unread_count": unread,
                                               "unseen_count": unseen, "total_count": total}) + b"\n\n"


def encode_counts(unread: int, unseen: int, total: int) -> bytes:
    return (b"event: counts\ndata: "
            + _data({"unread_count": unread, "unseen_count": unseen, "total_count": total}) + b"\n\n")


def encode_expired() -> bytes:
    """The last thing a stream sends when its token expires (a comment: EventSource ignores it)."""
    return b": token expired\n\n"


def encode_open(retry_ms: int) -> bytes:
    return b": connected\nretry: %d\n\n" % retry_ms


PING = b": ping\n\n"
