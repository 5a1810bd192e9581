"""What a process holds once it has started: settings, database, Redis, SQS, channels, templates."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import redis

from .channels import Channel, ChannelContext
from .config import Settings
from .db import init_database
from .plugins import channels_for, manager_for, template_dirs
from .sqs import client_for
from .templates import TemplateStore


def make_redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.require("redis_url"),
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=30,
        retry_on_timeout=True,
    )


@dataclass
class Runtime:
    settings: Settings
    redis: redis.Redis
    channels: dict[str, Channel]
    templates: TemplateStore
    _limiter: object = field(default=None, repr=False)

    @classmethod
    def start(cls, settings: Settings) -> "Runtime":
        init_database(settings.database_url)
        pm = manager_for(settings)
        return cls(
            settings=settings,
            redis=make_redis(settings),
            channels=channels_for(settings),
            templates=TemplateStore.from_settings(settings, template_dirs(pm, settings)),
        )

    @property
    def sqs(self):
        return client_for(self.settings)

    @property
    def limiter(self):
        if self._limiter is None:
            from .ratelimit import RateLimiter
            self._limiter = RateLimiter(self.redis, self.settings.redis_prefix, self.settings.rate_limits)
        return self._limiter

    def channel_context(self, log: logging.Logger) -> ChannelContext:
        return ChannelContext(settings=self.settings, redis=self.redis, log=log)
