"""The inbox API: a user's notifications, newest first, and only ever that user's."""
from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from ..db import database
from ..models import Notification
from .deps import current_user

router = APIRouter(prefix="/api/notifications", tags=["inbox"])


def _page(user_id: str, limit: int, cursor: Optional[int], unread: bool) -> dict:
    with database.connection_context():
        query = Notification.select().where(Notification.user_id == user_id)
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
        return (Notification.select().where((Notification.user_id == user_id) & Notification.read_at.is_null()).count())


@router.get("", summary="The user's notifications, newest first")
async def list_notifications(
    user_id: str = Depends(current_user),
    limit: int = Query(20, ge=1, le=100, description="page size, at most 100"),
    cursor: Optional[str] = Query(None, description="`next_cursor` of the previous page"),
    unread: bool = Query(False, description="only unread notifications"),
) -> dict:
    position = None
    if cursor is not None:
        if not cursor.isdigit():
            raise HTTPException(422, detail=[{"loc": ["query", "cursor"], "msg": "cursor must be a `next_cursor` value from a previous page", "type": "value_error"}])
        position = int(cursor)
    return await run_in_threadpool(_page, user_id, limit, position, unread)


@router.get("/unread-count", summary="How many of the user's notifications are unread")
async def unread_count(user_id: str = Depends(current_user)) -> dict:
    return {"unread": await run_in_threadpool(_unread_count, user_id)}
