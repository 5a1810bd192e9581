"""``/api/topics``: the host application keeps topics (named sets of user ids) that messages name.

Service auth, as ``DELETE /api/scheduled/{id}``: a JWT with ``"scope": "service"``; a user's
token gets 401. Every input is bounded: a topic name matches :data:`notif.inputs.TOPIC_NAME`,
a user id is 1–255 characters, one change carries at most 10,000 ids.
"""
from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from .. import topics as store
from ..db import database
from ..inputs import MAX_USER_ID, TOPIC_NAME
from .deps import current_service
from .responses import Problem

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/topics", tags=["topics"])

#: the largest body a change can need: 10,000 ids of 255 characters, quoted, with commas
TOPIC_BODY = store.MAX_IDS * (MAX_USER_ID + 3) + 1024

UserId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_USER_ID)]
TopicName = Annotated[str, Path(pattern=TOPIC_NAME, max_length=128,
                                description="letters, digits and `_ . : -`, at most 128, starting with a letter or digit")]
Cursor = Annotated[str | None, Query(max_length=1000, description="the previous page's `next_cursor`")]
Limit = Annotated[int, Query(ge=1, le=store.MAX_PAGE)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "no such topic"}}


class Change(BaseModel):
    """Users to subscribe and to unsubscribe, at most 10,000 ids in all; an id in both is refused."""

    model_config = ConfigDict(extra="forbid")
    add: list[UserId] = Field(default_factory=list, max_length=store.MAX_IDS)
    remove: list[UserId] = Field(default_factory=list, max_length=store.MAX_IDS)

    @model_validator(mode="after")
    def _bounded(self) -> Change:
        if len(self.add) + len(self.remove) > store.MAX_IDS:
            raise ValueError(f"at most {store.MAX_IDS} user ids in `add` and `remove` together")
        both = set(self.add) & set(self.remove)
        if both:
            raise ValueError(f"user id {sorted(both)[0]!r} is in both `add` and `remove`")
        return self


class Subscribers(BaseModel):
    topic: str
    subscribers: int


class Member(BaseModel):
    user_id: str
    subscribed_at: str | None


class MemberPage(BaseModel):
    items: list[Member]
    next_cursor: str | None


class TopicInfo(BaseModel):
    topic: str
    subscribers: int
    created_at: str | None
    updated_at: str | None


class TopicPage(BaseModel):
    items: list[TopicInfo]
    next_cursor: str | None


class Deleted(BaseModel):
    topic: str
    deleted: bool
    subscribers: int


def _db(fn, *args):
    with database.connection_context():
        return fn(*args)


def _bad_cursor() -> JSONResponse:
    return JSONResponse({"error": "bad_cursor", "reason": "cursor: not a cursor from a previous page"}, status_code=400)


BAD_CURSOR: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "the cursor is not one a previous page gave"}}


@router.put("/{topic}/subscribers", response_model=Subscribers,
            summary="Subscribe and unsubscribe users (creates the topic); at most 10,000 ids a call")
async def change(topic: TopicName, body: Change, service: str = Depends(current_service)):
    count = await run_in_threadpool(_db, store.change, topic, body.add, body.remove)
    log.info("topic changed", extra={"topic": topic, "service": service, "added": len(body.add),
                                     "removed": len(body.remove), "subscribers": count})
    return {"topic": topic, "subscribers": count}


@router.get("/{topic}/subscribers", response_model=MemberPage, responses={**NOT_FOUND, **BAD_CURSOR},
            summary="A topic's subscribers by user id, a page at a time")
async def subscribers(topic: TopicName, limit: Limit = 100, cursor: Cursor = None,
                      service: str = Depends(current_service)):
    try:
        page = await run_in_threadpool(_db, store.members, topic, limit, cursor)
    except ValueError:
        return _bad_cursor()
    if page is None:
        return JSONResponse({"error": "not_found", "reason": f"no topic {topic!r}"}, status_code=404)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get("", response_model=TopicPage, responses=BAD_CURSOR, summary="Every topic with its subscriber count, by name")
async def list_topics(limit: Limit = 100, cursor: Cursor = None, service: str = Depends(current_service)):
    try:
        page = await run_in_threadpool(_db, store.topics, limit, cursor)
    except ValueError:
        return _bad_cursor()
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.delete("/{topic}", response_model=Deleted, responses=NOT_FOUND,
               summary="Delete a topic and its subscriptions (a fan-out still running for it stops)")
async def delete(topic: TopicName, service: str = Depends(current_service)):
    gone = await run_in_threadpool(_db, store.delete, topic)
    if gone is None:
        return JSONResponse({"error": "not_found", "reason": f"no topic {topic!r}"}, status_code=404)
    log.info("topic deleted", extra={"topic": topic, "service": service, "subscribers": gone})
    return {"topic": topic, "deleted": True, "subscribers": gone}
