"""The inbox API: a user's notifications, newest first, and only ever that user's.

Each notification has three states, each a time (notif.models: ``seen_at``, ``read_at``,
``archived_at``), which the routes here change and keep consistent: read implies seen,
archived implies read, marking unread brings an item back from the archive. Every change
is published on the user's channel (notif.live) with the counts it left, so every tab and
device of that user follows. An id that is not the user's answers as a missing one: 404
(or, marking seen by ids, is simply not marked), so ids reveal nothing.

The host app's webhooks (notif.webhooks) hear of each change in the transaction that makes it,
one event per notification changed: ``notification.read`` (read, read-all), ``notification.seen``
(seen by ids or all) and ``notification.archived`` (archive; un-archive and a mark-unread that
brings an item out of the archive, with ``"archived": false``). The states an action implies
(archiving reads, reading sees) are in the event's notification, not events of their own.
"""
from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from peewee import fn
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..db import database, is_postgres
from ..live import (
    archived_event,
    counts,
    publish,
    read_event,
    seen_event,
    unread_count,
    unread_event,
    unseen_count,
)
from ..models import Notification, utcnow
from ..webhooks import events as webhook_events
from ..webhooks.outbox import WebhookOutbox
from .deps import current_user

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/notifications", tags=["inbox"])

MAX_SEEN_IDS = 500  # ids one mark-seen request may name (a panel's worth, and then some)
Status = Literal["unread", "unseen", "archived", "all"]
NotificationId = Annotated[int, Field(ge=1, le=2**63 - 1)]


# -- what the routes answer (the OpenAPI document's shapes) ------------------------------
class Item(BaseModel):
    """A notification as the inbox shows it (``Notification.to_dict``); times are ISO 8601 UTC."""

    id: int
    type: str | None
    title: str
    message: str
    html: str | None
    actions: list[Any]
    data: Any
    priority: str
    created_at: str | None
    read_at: str | None
    send_at: str | None
    expires_at: str | None
    updated_at: str | None
    read: bool
    seen_at: str | None
    archived_at: str | None
    seen: bool
    archived: bool


class Page(BaseModel):
    items: list[Item]
    next_cursor: str | None = Field(description="the next page's `cursor`; null on the last page")


class UnreadCount(BaseModel):
    unread: int


class Counts(BaseModel):
    unread: int = Field(description="visible and not read")
    unseen: int = Field(description="visible, neither seen nor read")
    total: int = Field(description="visible and not archived")


class Read(BaseModel):
    id: int
    read: bool
    unread: int
    unseen: int


class Marked(BaseModel):
    marked: int = Field(description="notifications this request changed")
    unread: int
    unseen: int


class Archived(BaseModel):
    id: int
    archived: bool
    unread: int
    unseen: int
    total: int


class Missing(BaseModel):
    detail: str


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Missing, "description": "no such notification of this user's"}}


class SeenRequest(BaseModel):
    """Which notifications the user has now seen: ``{"ids": [...]}`` (1 to 500 ids; those that are not
    the user's are left alone) or ``{"all": true}`` — exactly one of the two."""

    model_config = ConfigDict(extra="forbid")
    ids: list[NotificationId] | None = Field(None, min_length=1, max_length=MAX_SEEN_IDS)
    all: bool | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SeenRequest:
        if self.all is False:
            raise ValueError("`all` may only be true; to mark some notifications seen, send `ids` alone")
        if self.ids is not None and self.all:
            raise ValueError("send either `ids` or `\"all\": true`, not both")
        if self.ids is None and not self.all:
            raise ValueError(f"send `ids` (1 to {MAX_SEEN_IDS} notification ids) or `\"all\": true`")
        return self


# -- the database side (run in the thread pool) -----------------------------------------
def _mine(user_id: str):
    return (Notification.user_id == user_id) & Notification.visible()


def _page(user_id: str, limit: int, cursor: int | None, status: Status | None, type_: str | None) -> dict:
    with database.connection_context():
        query = Notification.select().where(_mine(user_id))
        if status is None:
            query = query.where(Notification.archived_at.is_null())
        elif status == "unread":
            query = query.where(Notification.read_at.is_null())
        elif status == "unseen":
            query = query.where(Notification.seen_at.is_null() & Notification.read_at.is_null())
        elif status == "archived":
            query = query.where(Notification.archived_at.is_null(False))
        if type_ is not None:
            query = query.where(Notification.type == type_)
        if cursor is not None:
            query = query.where(Notification.id < cursor)
        rows = list(query.order_by(Notification.id.desc()).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [r.to_dict() for r in rows], "next_cursor": str(rows[-1].id) if more else None}


def _unread_count(user_id: str) -> int:
    with database.connection_context():
        return unread_count(user_id)


def _counts(user_id: str) -> dict[str, int]:
    with database.connection_context():
        return counts(user_id)


def _exists(user_id: str, notification_id: int) -> bool:
    return Notification.select().where(_mine(user_id) & (Notification.id == notification_id)).exists()


#: the column whose new value each inbox event reports
_EVENT_TIME = {webhook_events.NOTIFICATION_READ: Notification.read_at, webhook_events.NOTIFICATION_SEEN: Notification.seen_at,
               webhook_events.NOTIFICATION_ARCHIVED: Notification.archived_at}


def _update(outbox: WebhookOutbox, kind: str, query, written: list[int], archived: bool | None = None) -> int:
    """Run an inbox UPDATE; the rows it changed. When the webhooks want ``kind``, the UPDATE returns the
    changed rows and one event per row is written (in the caller's transaction) into ``written``."""
    if not outbox.wants(kind):
        return query.execute()
    rows = list(query.returning(Notification.id, Notification.key, Notification.user_id, Notification.type,
                                Notification.correlation_id, _EVENT_TIME[kind]).tuples().execute())
    now = utcnow()
    written += outbox.write([(kind, at or now, webhook_events.inbox(kind, nid, key, user, type_, correlation_id, at,
                                                                      archived))
                             for nid, key, user, type_, correlation_id, at in rows])
    return len(rows)


def _mark_read(outbox: WebhookOutbox, user_id: str, notification_id: int | None) -> tuple[int, int, int] | None:
    """Mark one (or, with None, every) unread notification of the user read, and seen where it was not.

    Returns (rows changed, unread count after, unseen count after), or None when the id is not this user's.
    """
    written: list[int] = []
    with database.atomic():
        mine = _mine(user_id)
        if notification_id is not None:
            if not _exists(user_id, notification_id):
                return None
            mine = mine & (Notification.id == notification_id)
        now = utcnow()
        changed = _update(outbox, webhook_events.NOTIFICATION_READ, Notification.update(
            read_at=now, seen_at=fn.COALESCE(Notification.seen_at, Notification.seen_at.to_value(now)))
            .where(mine & Notification.read_at.is_null()), written)
        result = changed, unread_count(user_id), unseen_count(user_id)
    outbox.hand_off(written)
    return result


def _mark_seen(outbox: WebhookOutbox, user_id: str, ids: list[int] | None) -> tuple[list[int] | None, int, int, int]:
    """Mark the given (or, with None, every) unseen notification of the user seen.

    Returns (the ids marked, or None for all; rows changed; unread count after; unseen count after)."""
    written: list[int] = []
    with database.atomic():
        unseen = _mine(user_id) & Notification.seen_at.is_null() & Notification.read_at.is_null()
        marked: list[int] | None = None
        if ids is not None:
            found = Notification.select(Notification.id).where(unseen & Notification.id.in_(sorted(set(ids))))
            marked = [row.id for row in found.order_by(Notification.id)]
            unseen = unseen & Notification.id.in_(marked)
        changed = _update(outbox, webhook_events.NOTIFICATION_SEEN, Notification.update(seen_at=utcnow()).where(unseen),
                          written) if marked != [] else 0
        result = marked, changed, unread_count(user_id), unseen_count(user_id)
    outbox.hand_off(written)
    return result


def _mark_unread(outbox: WebhookOutbox, user_id: str, notification_id: int) -> tuple[int, int, int] | None:
    """Mark one notification unread: out of the archive too, still seen. (changed, unread, unseen), or None."""
    written: list[int] = []
    with database.atomic():
        if not _exists(user_id, notification_id):
            return None
        mine = _mine(user_id) & (Notification.id == notification_id)
        archived = False
        if outbox.wants(webhook_events.NOTIFICATION_ARCHIVED):  # (locked: what it was is what this update changes)
            before = Notification.select(Notification.archived_at).where(mine)
            archived = (before.for_update() if is_postgres() else before).scalar() is not None
        query = (Notification.update(read_at=None, archived_at=None,
                                     seen_at=fn.COALESCE(Notification.seen_at, Notification.read_at))
                 .where(mine & (Notification.read_at.is_null(False) | Notification.archived_at.is_null(False))))
        # out of the archive: the host app hears `notification.archived` with "archived": false
        changed = _update(outbox, webhook_events.NOTIFICATION_ARCHIVED, query, written, False) if archived \
            else query.execute()
        result = changed, unread_count(user_id), unseen_count(user_id)
    outbox.hand_off(written)
    return result


def _archive(outbox: WebhookOutbox, user_id: str, notification_id: int,
             archived: bool) -> tuple[int, dict[str, int]] | None:
    """Archive one notification (read and seen too, where it was not) or bring it back (still read).
    (changed, counts after), or None when the id is not this user's."""
    written: list[int] = []
    with database.atomic():
        if not _exists(user_id, notification_id):
            return None
        mine = _mine(user_id) & (Notification.id == notification_id)
        now = utcnow()
        if archived:
            # (SET's right-hand sides read the row as it was: seen_at falls back on the old read_at)
            query = Notification.update(
                archived_at=now, read_at=fn.COALESCE(Notification.read_at, Notification.read_at.to_value(now)),
                seen_at=fn.COALESCE(Notification.seen_at, Notification.read_at, Notification.seen_at.to_value(now)),
            ).where(mine & Notification.archived_at.is_null())
        else:
            query = Notification.update(archived_at=None).where(mine & Notification.archived_at.is_null(False))
        result = _update(outbox, webhook_events.NOTIFICATION_ARCHIVED, query, written, archived), counts(user_id)
    outbox.hand_off(written)
    return result


async def _announce(request: Request, user_id: str, event: dict) -> None:
    """Tell the user's other tabs and devices (any web process) so their inboxes and badges follow."""
    try:
        await publish(request.app.state.live.redis, request.app.state.settings, user_id, event)
    except Exception:  # the change is stored; live badges catch up on the next event or reload
        log.warning("could not publish an inbox state event", extra={"event": event["event"]}, exc_info=True)


def _not_found() -> HTTPException:
    # not found, or another user's: the same answer, so ids reveal nothing
    return HTTPException(404, detail="no such notification")


# -- routes ------------------------------------------------------------------------------
@router.get("", summary="The user's notifications, newest first", response_model=None,
            responses={200: {"model": Page, "description": "a page of notifications"}})
async def list_notifications(
    user_id: str = Depends(current_user),
    limit: int = Query(20, ge=1, le=100, description="page size, at most 100"),
    cursor: str | None = Query(None, description="`next_cursor` of the previous page"),
    status: Annotated[Status | None, Query(description="which notifications: `unread` (not read), `unseen` (neither "
                                           "seen nor read), `archived`, or `all`; by default the inbox: every one "
                                           "not archived")] = None,
    type_: Annotated[str | None, Query(alias="type", min_length=1, max_length=100,
                                       description="only notifications of this type (exact)")] = None,
    unread: bool = Query(False, description="only unread notifications (the same as `status=unread`)"),
) -> dict:
    position = None
    if cursor is not None:
        if not cursor.isdigit():
            raise HTTPException(422, detail=[{"loc": ["query", "cursor"], "type": "value_error",
                                              "msg": "cursor must be a `next_cursor` value from a previous page"}])
        position = int(cursor)
    if unread:
        if status not in (None, "unread"):
            raise HTTPException(422, detail=[{"loc": ["query", "unread"], "type": "value_error",
                                              "msg": f"`unread=true` is `status=unread`: it cannot go with `status={status}`"}])
        status = "unread"
    return await run_in_threadpool(_page, user_id, limit, position, status, type_)


@router.get("/unread-count", summary="How many of the user's notifications are unread", response_model=UnreadCount)
async def get_unread_count(request: Request, user_id: str = Depends(current_user)) -> dict:
    counter = request.app.state.loop_counts  # PostgreSQL: on the event loop, no thread hop (notif.web.loop_count)
    unread = await counter.unread(user_id) if counter is not None else None
    if unread is None:  # SQLite, or every loop connection busy
        unread = await run_in_threadpool(_unread_count, user_id)
    return {"unread": unread}


@router.get("/counts", summary="The user's unread, unseen and total (not archived) counts", response_model=Counts)
async def get_counts(user_id: str = Depends(current_user)) -> dict:
    return await run_in_threadpool(_counts, user_id)


@router.post("/seen", summary="Mark notifications seen (by ids, or all)", response_model=Marked)
async def mark_seen(body: SeenRequest, request: Request, user_id: str = Depends(current_user)) -> dict:
    ids, changed, unread, unseen = await run_in_threadpool(_mark_seen, request.app.state.webhooks, user_id,
                                                           None if body.all else body.ids)
    if changed:
        await _announce(request, user_id, seen_event(ids, unread, unseen))
    return {"marked": changed, "unread": unread, "unseen": unseen}


@router.post("/{notification_id}/read", summary="Mark one notification read (and seen)", response_model=Read,
             responses=NOT_FOUND)
async def mark_read(notification_id: int, request: Request, user_id: str = Depends(current_user)) -> dict:
    result = await run_in_threadpool(_mark_read, request.app.state.webhooks, user_id, notification_id)
    if result is None:
        raise _not_found()
    changed, unread, unseen = result
    if changed:
        await _announce(request, user_id, read_event([notification_id], unread, unseen))
    return {"id": notification_id, "read": True, "unread": unread, "unseen": unseen}


@router.post("/read-all", summary="Mark every notification of the user read (and seen)", response_model=Marked)
async def mark_all_read(request: Request, user_id: str = Depends(current_user)) -> dict:
    result = await run_in_threadpool(_mark_read, request.app.state.webhooks, user_id, None)
    if result is None:  # only a single id can be not found
        raise RuntimeError("marking every notification read returned no counts")
    changed, unread, unseen = result
    if changed:
        await _announce(request, user_id, read_event(None, unread, unseen))
    return {"marked": changed, "unread": unread, "unseen": unseen}


@router.post("/{notification_id}/unread", summary="Mark one notification unread (it leaves the archive too)",
             response_model=Read, responses=NOT_FOUND)
async def mark_unread(notification_id: int, request: Request, user_id: str = Depends(current_user)) -> dict:
    result = await run_in_threadpool(_mark_unread, request.app.state.webhooks, user_id, notification_id)
    if result is None:
        raise _not_found()
    changed, unread, unseen = result
    if changed:
        await _announce(request, user_id, unread_event(notification_id, unread, unseen))
    return {"id": notification_id, "read": False, "unread": unread, "unseen": unseen}


async def _set_archived(request: Request, user_id: str, notification_id: int, archived: bool) -> dict:
    result = await run_in_threadpool(_archive, request.app.state.webhooks, user_id, notification_id, archived)
    if result is None:
        raise _not_found()
    changed, counted = result
    if changed:
        await _announce(request, user_id, archived_event(notification_id, archived, counted))
    return {"id": notification_id, "archived": archived, **counted}


@router.post("/{notification_id}/archive", summary="Archive one notification (it is read and seen too)",
             response_model=Archived, responses=NOT_FOUND)
async def archive(notification_id: int, request: Request, user_id: str = Depends(current_user)) -> dict:
    return await _set_archived(request, user_id, notification_id, True)


@router.delete("/{notification_id}/archive", summary="Bring one notification back from the archive (still read)",
               response_model=Archived, responses=NOT_FOUND)
async def unarchive(notification_id: int, request: Request, user_id: str = Depends(current_user)) -> dict:
    return await _set_archived(request, user_id, notification_id, False)
