"""``GET /events``: a user's live notifications over Server-Sent Events, without gaps.

On connect the stream subscribes to the user's channel first, then — given
``Last-Event-ID`` (header, or ``?last_event_id=``) — replays from the database what the
client missed, then goes on live, dropping live copies of what it just replayed.

"What the client missed" is every notification with a larger id, *and* any older one
whose in-app event was published after the client's last one: two ingest transactions can
commit out of id order, so the last id alone could hide a notification committed late.
"""
from __future__ import annotations

import json
import logging
from typing import AsyncIterator, Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError

from ..db import database
from ..live import unread_count
from ..models import Delivery, Notification
from .deps import current_user
from .hub import CLOSE, RESYNC, Hub

log = logging.getLogger(__name__)
router = APIRouter(tags=["live"])

REPLAY_PAGE = 500


def missed(user_id: str, after: int, exclude: set[int]) -> tuple[list[dict], int]:
    """Notifications the client has not seen since ``after``, oldest first, and the unread count."""
    with database.connection_context():
        mine = Notification.user_id == user_id
        anchor = (Delivery.select(Delivery.sent_at).join(Notification)
                  .where(mine & (Notification.id == after) & (Delivery.channel == "in_app")).scalar())
        rows = list(Notification.select().where(mine & (Notification.id > after))
                    .order_by(Notification.id).limit(REPLAY_PAGE))
        if anchor is not None:
            late = (Notification.select().join(Delivery)
                    .where(mine & (Notification.id < after) & (Delivery.channel == "in_app") & (Delivery.sent_at > anchor))
                    .order_by(Notification.id))
            rows = list(late) + rows
        return [r.to_dict() for r in rows if r.id not in exclude], unread_count(user_id)


def notification_sse(notification: dict, unread: int) -> ServerSentEvent:
    data = json.dumps({**notification, "unread_count": unread}, separators=(",", ":"))
    return ServerSentEvent(data=data, event="notification", id=str(notification["id"]))


async def stream(hub: Hub, user_id: str, after: Optional[int], retry_ms: int) -> AsyncIterator[ServerSentEvent]:
    listener = await hub.subscribe(user_id)  # before the replay: nothing published meanwhile is lost
    sent: set[int] = set()  # ids replayed on this connection (live copies of them are dropped)
    try:
        yield ServerSentEvent(comment="connected", retry=retry_ms)
        last = after
        while True:
            if last is not None:  # replay what the client missed (pages until caught up)
                while True:
                    rows, unread = await run_in_threadpool(missed, user_id, last, sent)
                    for row in rows:
                        sent.add(row["id"])
                        yield notification_sse(row, unread)
                    newest = max((r["id"] for r in rows), default=last)
                    if newest == last or len(rows) < REPLAY_PAGE:
                        last = max(last, newest)
                        break
                    last = newest
            item = await listener.queue.get()
            while item is not RESYNC:
                if item is CLOSE:
                    return
                if item["event"] == "notification":
                    notification = item["notification"]
                    if notification["id"] not in sent:
                        sent.add(notification["id"])
                        last = notification["id"] if last is None else max(last, notification["id"])
                        yield notification_sse(notification, item["unread"])
                elif item["event"] == "read":
                    data = {"ids": item["ids"], "all": item["all"], "unread_count": item["unread"]}
                    yield ServerSentEvent(data=json.dumps(data, separators=(",", ":")), event="read")
                item = await listener.queue.get()
            # RESYNC: Redis dropped events while it was away; catch up from the database
            last = last if last is not None else 0
    finally:
        await hub.unsubscribe(listener)


class EventStream(EventSourceResponse):
    """An SSE response that drops a client too slow to take its events, quietly."""

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            log.warning("SSE client dropped: it did not take an event within the send timeout")


def _ping() -> ServerSentEvent:
    return ServerSentEvent(comment="ping")  # a heartbeat comment, as short as it gets


def _last_event_id(request: Request, query_value: Optional[str]) -> Optional[int]:
    raw = request.headers.get("last-event-id") or query_value
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise HTTPException(422, detail=[{"loc": ["query", "last_event_id"], "type": "value_error",
                                          "msg": "Last-Event-ID must be a notification id (digits)"}])
    return int(raw)


@router.get("/events", summary="Live notifications (Server-Sent Events)", response_class=EventSourceResponse)
async def events(request: Request, user_id: str = Depends(current_user),
                 last_event_id: Optional[str] = Query(None, description="resume after this notification id "
                                                      "(or the Last-Event-ID header)")):
    after = _last_event_id(request, last_event_id)
    settings = request.app.state.settings
    hub: Hub = await request.app.state.live.hub()
    return EventStream(
        stream(hub, user_id, after, settings.sse_retry_ms),
        ping=settings.sse_ping_seconds,
        ping_message_factory=_ping,
        send_timeout=settings.sse_send_timeout,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
