"""Live events: what goes over a user's Redis channel to the SSE streams, in one place.

``notification``: a stored notification plus the user's unread count at publish time.
``read``: notifications marked read (``ids``, or ``all``) and the new unread count, so
every open tab of that user updates its badge.
``updated``: a notification an ``update`` message changed (its new version) and the unread count.
``removed``: a notification retracted (``id``), and the unread count.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import cast

from peewee import fn

from .models import Notification
from .redis_keys import user_channel


def unread_count(user_id: str) -> int:
    return Notification.select().where((Notification.user_id == user_id) & Notification.read_at.is_null()
                                       & Notification.visible()).count()


def unread_counts(user_ids) -> dict[str, int]:
    """Unread counts of several users in one query (absent: 0)."""
    # (peewee's stubs type a .tuples() query's rows as model instances: the cast says what they are)
    rows = cast("list[tuple[str, int]]", list(
        Notification.select(Notification.user_id, fn.COUNT(Notification.id))
        .where(Notification.user_id.in_(list(user_ids)) & Notification.read_at.is_null() & Notification.visible())
        .group_by(Notification.user_id).tuples()))
    return dict(rows)


def notification_event(notification: Notification, unread: int) -> dict:
    return {"event": "notification", "notification": notification.to_dict(), "unread": unread}


def notification_events(notification: Notification) -> Callable[[int, int], str]:
    """The ``notification`` event of copies of one notification (the same but for ``id`` and
    user), rendered once: (id, unread) → the JSON :func:`publish` would send for it."""
    body = notification.to_dict()
    del body["id"]  # (to_dict's first key: put back first below)
    rest = _dumps(body)[1:]
    return lambda notification_id, unread: (
        f'{{"event":"notification","notification":{{"id":{int(notification_id)},{rest},"unread":{int(unread)}}}')


def updated_event(notification: Notification, unread: int) -> dict:
    return {"event": "updated", "notification": notification.to_dict(), "unread": unread}


def removed_event(notification_id: int, unread: int) -> dict:
    return {"event": "removed", "id": notification_id, "unread": unread}


def read_event(ids: list[int] | None, unread: int) -> dict:
    return {"event": "read", "ids": ids or [], "all": ids is None, "unread": unread}


def listening(redis_client, settings, user_ids: Iterable[str]) -> set[str]:
    """Which of ``user_ids`` a web process is subscribed for now (one PUBSUB NUMSUB).

    Publishing to anyone else reaches no one: a stream opened after this subscribes first and
    then replays what is committed, so it finds the notification there. At a topic of a million,
    most members are offline; their events are not built, counted or sent."""
    channels = {user_channel(settings, user): user for user in user_ids}
    if not channels:
        return set()
    counts = redis_client.pubsub_numsub(*channels)
    return {channels[name.decode() if isinstance(name, bytes) else name] for name, count in counts if count}


def publish(redis_client, settings, user_id: str, event: dict):
    """Publish ``event`` to the user's channel (sync or asyncio client: returns what it returns)."""
    return publish_json(redis_client, settings, user_id, _dumps(event))


def publish_json(redis_client, settings, user_id: str, event: str):
    """Publish an event already rendered (:func:`notification_events`)."""
    return redis_client.publish(user_channel(settings, user_id), event)


def _dumps(event: dict) -> str:
    return json.dumps(event, separators=(",", ":"))
