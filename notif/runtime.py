"""What a pipeline step works with once its process has started: settings, database,
Redis, SQS, channels, templates, the rate limiter and the recorder of events.

Built by :meth:`Runtime.start` in the process that needs it (a worker, the scheduler);
nothing is made at import.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property

import redis

from .channels import Channel, ChannelContext
from .config import Settings
from .db import init_database
from .monitoring.record import Recorder, RollingCounters
from .outbound import OutboundSession, session
from .plugin_manager import channels_for, manager_for, template_dirs
from .ratelimit import RateLimiter
from .redis_client import sync_client
from .sqs import client_for
from .templates import TemplateStore
from .webhooks.outbox import WebhookOutbox, install

RedisClient = redis.Redis  # (inside Runtime, `redis` is its field)


@dataclass
class Runtime:
    settings: Settings
    redis: redis.Redis | None
    channels: dict[str, Channel]
    templates: TemplateStore
    recorder: Recorder = field(default_factory=lambda: Recorder(None))
    webhooks: WebhookOutbox = field(default_factory=WebhookOutbox.disabled)  # what the host app's webhooks want
    live_redis: RedisClient | None = None  # NOTIF_LIVE_REDIS_URL's client, when it is set

    @property
    def live(self) -> RedisClient | None:
        """The Redis live events are published on: NOTIF_LIVE_REDIS_URL's, else the one Redis."""
        return self.live_redis if self.live_redis is not None else self.redis

    @classmethod
    def start(cls, settings: Settings) -> Runtime:
        """The process's runtime; its webhook outbox becomes the process's (for notif.delivery_states)."""
        init_database(settings.database_url)
        pm = manager_for(settings)
        client = sync_client(settings)
        rt = cls(
            settings=settings,
            redis=client,
            channels=channels_for(settings),
            templates=TemplateStore.from_settings(settings, template_dirs(pm, settings)),
            recorder=Recorder(RollingCounters(client, settings)),
            webhooks=WebhookOutbox(settings),
            live_redis=sync_client(settings, live=True) if settings.live_redis_url else None,
        )
        install(rt.webhooks)
        return rt

    @property
    def sqs(self):
        return client_for(self.settings)

    @cached_property
    def limiter(self) -> RateLimiter:
        if self.redis is None:
            raise RuntimeError("rate limits need Redis")
        return RateLimiter(self.redis, self.settings)

    @cached_property
    def outbound(self) -> OutboundSession:
        """One pooled HTTP client per process for outbound calls (keep-alive to push services)."""
        return session(self.settings)

    def channel_context(self, log: logging.Logger) -> ChannelContext:
        return ChannelContext(settings=self.settings, redis=self.redis, log=log, outbound=self.outbound,
                              live_redis=self.live_redis)
