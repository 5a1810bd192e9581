"""The in-app channel: the notification is already stored; tell live browsers about it.

Publishing goes to the user's Redis pub/sub channel, which every web process serving that
user's SSE streams listens to. A browser that misses the publish (not connected, or
between reconnects) catches up from the database with ``Last-Event-ID``.
"""
from __future__ import annotations

import redis

from notif.channels import Channel, ChannelContext
from notif.errors import TransientError
from notif.hookspecs import hookimpl
from notif.live import (
    listening,
    notification_event,
    notification_events,
    publish,
    publish_json,
    unread_count,
    unread_counts,
)


class InAppChannel(Channel):
    name = "in_app"
    batches = True  # one unread-count query and one Redis pipeline for a whole ingest batch
    copies = True  # a fan-out chunk: the same, and the event rendered once

    def send(self, notification, delivery, ctx: ChannelContext) -> None:
        if not ctx.settings.feature("sse"):
            return  # live events are off: the stored notification is the delivery
        event = notification_event(notification, unread_count(notification.user_id))
        try:
            publish(ctx.live(), ctx.settings, notification.user_id, event)
        except redis.RedisError as exc:
            raise TransientError(f"could not publish to Redis: {exc}") from exc

    def send_many(self, items, ctx: ChannelContext) -> None:
        if not ctx.settings.feature("sse"):
            return
        counts = unread_counts({n.user_id for n, _ in items})
        try:
            pipe = ctx.live().pipeline(transaction=False)
            for notification, _ in items:
                publish(pipe, ctx.settings, notification.user_id,
                        notification_event(notification, counts.get(notification.user_id, 0)))
            pipe.execute()
        except redis.RedisError as exc:
            raise TransientError(f"could not publish to Redis: {exc}") from exc

    def send_copies(self, notification, copies, ctx: ChannelContext) -> None:
        if not ctx.settings.feature("sse"):
            return
        try:
            online = listening(ctx.live(), ctx.settings, [user for _, user in copies])
        except redis.RedisError as exc:
            raise TransientError(f"could not reach Redis: {exc}") from exc
        copies = [(notification_id, user) for notification_id, user in copies if user in online]
        if not copies:  # stored is delivered: whoever opens the inbox later reads it from the database
            return
        counts = unread_counts({user for _, user in copies})
        event = notification_events(notification)
        try:
            pipe = ctx.live().pipeline(transaction=False)
            for notification_id, user in copies:
                publish_json(pipe, ctx.settings, user, event(notification_id, counts.get(user, 0)))
            pipe.execute()
        except redis.RedisError as exc:
            raise TransientError(f"could not publish to Redis: {exc}") from exc


@hookimpl
def notif_channels(settings):
    return [InAppChannel()]
