"""The inbox API: a user's notifications, newest first, and only ever that user's."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool

from ..db import database
from ..live import publish, read_event, unread_count
from ..models import Notification, utcnow
from .deps import current_user

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/notifications", tags=["inbox"])


def _page(user_id: str, limit: int, cursor: int | None, unread: bool) -> dict:
    with database.connection_context():
        query = Notification.select().where((Notification.user_id == user_id) & Notification.visible())
        if unread:
            query = query.where(Notification.read_at.is_null())
        if cursor is not None:
            query = query.where(Notification.id < cursor)
        rows = list(query.order_by(Notification.id.desc()).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [r.to_dict() for r in rows], "next_cursor": str(rows[-1].id) if more else None}


def _unread_count(user_id: str) -> int:
    with database.connection_context():
        return unread_count(user_id)


def _mark_read(user_id: str, notification_id: int | None) -> tuple[int, int] | None:
    """Mark one (or, with None, every) unread notification of the user read.

    Returns (rows changed, unread count after), or None when the id is not this user's.
    """
    with database.atomic():
        mine = (Notification.user_id == user_id) & Notification.visible()
        if notification_id is not None:
            if not Notification.select().where(mine & (Notification.id == notification_id)).exists():
                return None
            mine = mine & (Notification.id == notification_id)
        changed = Notification.update(read_at=utcnow()).where(mine & Notification.read_at.is_null()).execute()
        return changed, unread_count(user_id)


async def _announce(request: Request, user_id: str, ids: list[int] | None, unread: int) -> None:
    """Tell the user's other tabs (any web process) so their badges follow."""
    try:
        await publish(request.app.state.live.redis, request.app.state.settings, user_id, read_event(ids, unread))
    except Exception:  # the change is stored; live badges catch up on the next event or reload
        log.warning("could not publish a read event", exc_info=True)


@router.get("", summary="The user's notifications, newest first")
async def list_notifications(
    user_id: str = Depends(current_user),
    limit: int = Query(20, ge=1, le=100, description="page size, at most 100"),
    cursor: str | None = Query(None, description="`next_cursor` of the previous page"),
    unread: bool = Query(False, description="only unread notifications"),
) -> dict:
    position = None
    if cursor is not None:
        if not cursor.isdigit():
            raise HTTPException(422, detail=[{"loc": ["query", "cursor"], "type": "value_error",
                                              "msg": "cursor must be a `next_cursor` value from a previous page"}])
        position = int(cursor)
    return await run_in_threadpool(_page, user_id, limit, position, unread)


@router.get("/unread-count", summary="How many of the user's notifications are unread")
async def get_unread_count(request: Request, user_id: str = Depends(current_user)) -> dict:
    counts = request.app.state.loop_counts  # PostgreSQL: on the event loop, no thread hop (notif.web.loop_count)
    unread = await counts.unread(user_id) if counts is not None else None
    if unread is None:  # SQLite, or every loop connection busy
        unread = await run_in_threadpool(_unread_count, user_id)
    return {"unread": unread}


@router.post("/{notification_id}/read", summary="Mark one notification read",
             responses={404: {"description": "no such notification of this user's"}})
async def mark_read(notification_id: int, request: Request, user_id: str = Depends(current_user)) -> dict:
    result = await run_in_threadpool(_mark_read, user_id, notification_id)
    if result is None:  # not found, or another user's: the same answer, so ids reveal nothing
        raise HTTPException(404, detail="no such notification")
    changed, unread = result
    if changed:
        await _announce(request, user_id, [notification_id], unread)
    return {"id": notification_id, "read": True, "unread": unread}


@router.post("/read-all", summary="Mark every notification of the user read")
async def mark_all_read(request: Request, user_id: str = Depends(current_user)) -> dict:
    result = await run_in_threadpool(_mark_read, user_id, None)
    if result is None:  # only a single id can be not found
        raise RuntimeError("marking every notification read returned no counts")
    changed, unread = result
    if changed:
        await _announce(request, user_id, None, unread)
    return {"marked": changed, "unread": unread}
