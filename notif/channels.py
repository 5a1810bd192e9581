"""Channels: where a stored notification goes (in-app, SSE, push, email, a plugin's).

A channel is an object with a ``name`` and a ``send`` method. ``send`` returns on success
and raises :class:`~notif.errors.TransientError` (retry later) or
:class:`~notif.errors.PermanentError` (give up, with a reason); any other exception counts
as transient for a bounded number of tries.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .outbound import OutboundSession, session
from .retries import DEFAULT, RetryPolicy

if TYPE_CHECKING:
    from .config import Settings
    from .models import Delivery, Notification


@dataclass
class ChannelContext:
    """What a channel may use while sending: settings, the shared Redis client, a logger, and
    the HTTP client for every URL a user or a stored row supplies (:meth:`http`)."""

    settings: Settings
    redis: Any
    log: Any
    outbound: OutboundSession | None = None
    live_redis: Any = None  # NOTIF_LIVE_REDIS_URL's client, when it is set: use :meth:`live`

    def live(self) -> Any:
        """The Redis that live events (SSE) are published on: a Redis of its own when
        NOTIF_LIVE_REDIS_URL is set, else the shared one."""
        return self.live_redis if self.live_redis is not None else self.redis

    def http(self) -> OutboundSession:
        """A ``requests.Session`` that obeys the outbound policy (https only, public addresses
        or NOTIF_OUTBOUND_ALLOW, checked at connect, no redirects): use it for every call to a
        URL that came from a user, a producer or the database. Refusals raise
        :class:`~notif.outbound.OutboundRefused` with the reason."""
        if self.outbound is None:
            self.outbound = session(self.settings)
        return self.outbound


class Channel:
    """Base class for channels; subclasses set ``name`` and implement ``send``."""

    name: str = ""
    retry_policy: RetryPolicy = DEFAULT  # attempts and backoff for transient failures

    #: a channel whose ``send_many`` is cheap enough to run inside ingest (in-app: no network but Redis) sets
    #: this; ingest then delivers its batch's rows of it right after the commit instead of enqueuing them
    batches: bool = False

    def send(self, notification: Notification, delivery: Delivery, ctx: ChannelContext) -> None:
        """Deliver ``notification`` through this channel, or raise a notif error."""
        raise NotImplementedError

    #: a channel that can deliver copies of one notification to many users from one rendering
    #: (``send_copies``) sets this; a topic fan-out's chunk is then delivered without a model per row
    copies: bool = False

    def send_many(self, items: list[tuple[Notification, Delivery]], ctx: ChannelContext) -> list[Exception | None] | None:
        """Deliver several at once; returns each item's outcome, in order: None when it was sent, else the
        exception its ``send`` would have raised (each failure is then recorded and retried on its own).

        The worker calls it with the deliveries of one channel that are ready together (up to
        ``NOTIF_DELIVER_BATCH``): override it when several cost less than one ``send`` each (one
        connection, one query, one pipeline). This default calls ``send`` per item. An override
        may also be all or nothing: return None for "all sent", or raise for "none sent"."""
        outcomes: list[Exception | None] = []
        for notification, delivery in items:
            try:
                self.send(notification, delivery, ctx)
            except Exception as exc:  # (every item gets its own outcome: one failure does not hold back the rest)
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes

    def send_copies(self, notification: Notification, copies: list[tuple[int, str]], ctx: ChannelContext) -> None:
        """Deliver stored copies of ``notification`` (unsaved: every column but ``id`` and
        ``user_id``), given as (notification id, user id); all or nothing, as ``send_many``."""
        raise NotImplementedError
