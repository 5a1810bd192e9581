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
from notif.live import notification_event, publish, unread_count


class InAppChannel(Channel):
    name = "in_app"

    def send(self, notification, delivery, ctx: ChannelContext) -> None:
        if not ctx.settings.feature("sse"):
            return  # live events are off: the stored notification is the delivery
        event = notification_event(notification, unread_count(notification.user_id))
        try:
            publish(ctx.redis, ctx.settings, notification.user_id, event)
        except redis.RedisError as exc:
            raise TransientError(f"could not publish to Redis: {exc}") from exc


@hookimpl
def notif_channels(settings):
    return [InAppChannel()]
