"""Topics: named sets of user ids kept in the database, which a message names instead of recipients.

Shared by the service API (:mod:`notif.web.topics`) and ``notif topics``. Members are
added with one multi-row ``INSERT … ON CONFLICT DO NOTHING`` per few hundred ids, and the
topic's ``subscribers`` count moves in the same transaction, by what was really inserted
and deleted. A topic exists from its first ``change`` (even with no one in it) until
:func:`delete`.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass
from typing import cast

from .db import database
from .models import Topic, TopicMember, isoformat, utcnow
from .outbox import chunks

MAX_IDS = 10_000  # user ids one change may add and remove, together
MAX_PAGE = 1000
ROWS = 300  # members per INSERT statement (SQLite caps bound variables per statement)
DELETE_BATCH = 10_000  # members deleted per transaction when a topic goes


@dataclass(frozen=True)
class Page:
    items: list[dict]
    next_cursor: str | None


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The value a cursor carries; ValueError for one this module did not make."""
    try:
        return base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("not a cursor from a previous page") from None


def change(name: str, add: list[str], remove: list[str]) -> int:
    """Add and remove members of topic ``name`` (created if new); returns its subscriber count."""
    now = utcnow()
    with database.atomic():
        # an upsert: it (re)creates the topic and locks its row, so a DELETE of it waits for this change
        [(topic_id,)] = cast("list[tuple[int]]", list(
            Topic.insert(name=name, subscribers=0, created_at=now, updated_at=now)
            .on_conflict(conflict_target=[Topic.name], update={Topic.updated_at: now})
            .returning(Topic.id).tuples().execute()))
        added = removed = 0
        for part in chunks(list(dict.fromkeys(add)), ROWS):
            rows = [{"topic": topic_id, "user_id": user_id, "created_at": now} for user_id in part]
            added += len(list(TopicMember.insert_many(rows).on_conflict_ignore().returning(TopicMember.id)
                              .tuples().execute()))
        for part in chunks(list(dict.fromkeys(remove)), ROWS):
            removed += TopicMember.delete().where((TopicMember.topic == topic_id)
                                                  & TopicMember.user_id.in_(part)).execute()
        [(count,)] = cast("list[tuple[int]]", list(
            Topic.update(subscribers=Topic.subscribers + added - removed, updated_at=now)
            .where(Topic.id == topic_id).returning(Topic.subscribers).tuples().execute()))
        return count


def members(name: str, limit: int = 100, cursor: str | None = None) -> Page | None:
    """A page of a topic's members by user id (None: no such topic)."""
    topic = Topic.get_or_none(Topic.name == name)
    if topic is None:
        return None
    query = TopicMember.select(TopicMember.user_id, TopicMember.created_at).where(TopicMember.topic == topic.id)
    if cursor is not None:
        query = query.where(TopicMember.user_id > decode_cursor(cursor))
    # (peewee's stubs type a .tuples() query's rows as model instances: the cast says what they are)
    rows = cast("list[tuple[str, dt.datetime]]", list(query.order_by(TopicMember.user_id).limit(limit + 1).tuples()))
    items = [{"user_id": user_id, "subscribed_at": isoformat(created)} for user_id, created in rows[:limit]]
    return Page(items, encode_cursor(rows[limit - 1][0]) if len(rows) > limit else None)


def topics(limit: int = 100, cursor: str | None = None) -> Page:
    """A page of topics by name, each with its subscriber count."""
    query = Topic.select()
    if cursor is not None:
        query = query.where(Topic.name > decode_cursor(cursor))
    rows = list(query.order_by(Topic.name).limit(limit + 1))
    items = [{"topic": t.name, "subscribers": t.subscribers, "created_at": isoformat(t.created_at),
              "updated_at": isoformat(t.updated_at)} for t in rows[:limit]]
    return Page(items, encode_cursor(rows[limit - 1].name) if len(rows) > limit else None)


def delete(name: str) -> int | None:
    """Delete a topic and its members (in batches, each its own transaction); returns how many
    members it had (None: no such topic). A fan-out still running for it stops."""
    topic = Topic.get_or_none(Topic.name == name)
    if topic is None:
        return None
    gone = 0
    while True:
        with database.atomic():
            batch = TopicMember.select(TopicMember.id).where(TopicMember.topic == topic.id).limit(DELETE_BATCH)
            n = TopicMember.delete().where(TopicMember.id.in_(batch)).execute()
        gone += n
        if n < DELETE_BATCH:
            break
    with database.atomic():
        Topic.delete().where(Topic.id == topic.id).execute()  # members added meanwhile go with it (cascade)
    return gone
