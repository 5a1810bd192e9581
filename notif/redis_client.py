"""The one place that makes Redis clients: the broker, locks, fan-out, limits, heartbeats.

``REDIS_URL`` may be ``redis://`` or ``rediss://`` (TLS). Hosted Redis plans (Heroku's)
give a ``rediss://`` URL with a self-signed certificate and rotate it, so it cannot carry
options: ``NOTIF_REDIS_TLS_VERIFY=none`` and ``NOTIF_REDIS_TLS_CA`` say how to check the
server instead, and every client notif makes follows them.
"""
from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlparse

import redis
import redis.asyncio as aioredis

from .config import Settings

TIMEOUTS = {"socket_timeout": 10, "socket_connect_timeout": 5}


def url(settings: Settings, live: bool = False) -> str:
    """``REDIS_URL``, or for live events (``live``) ``NOTIF_LIVE_REDIS_URL`` when it is set."""
    return (settings.live_redis_url if live else None) or settings.require("redis_url")


def tls_options(settings: Settings, live: bool = False) -> dict[str, Any]:
    """redis-py's TLS arguments for the URL (none for a plain ``redis://``)."""
    if urlparse(url(settings, live)).scheme != "rediss":
        return {}
    options: dict[str, Any] = {
        "ssl_cert_reqs": ssl.CERT_NONE if settings.redis_tls_verify == "none" else ssl.CERT_REQUIRED}
    if settings.redis_tls_verify == "none":
        options["ssl_check_hostname"] = False
    if settings.redis_tls_ca:
        options["ssl_ca_certs"] = settings.redis_tls_ca
    return options


def connection_options(settings: Settings, live: bool = False, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for a connection (pool) to ``REDIS_URL`` (or the live one): timeouts and TLS."""
    return {**TIMEOUTS, **tls_options(settings, live), **overrides}


def sync_client(settings: Settings, live: bool = False, **overrides: Any) -> redis.Redis:
    """A thread-safe client with its own pool (retries a timed-out command once); ``live``: to the live events'
    Redis."""
    options = {"health_check_interval": 30, "retry_on_timeout": True, **overrides}
    return redis.Redis.from_url(url(settings, live), **connection_options(settings, live, **options))


def async_client(settings: Settings, live: bool = False, **overrides: Any) -> aioredis.Redis:
    """An asyncio client (``live``: the web process's live events)."""
    options = {"health_check_interval": 30, **overrides}
    return aioredis.Redis.from_url(url(settings, live), **connection_options(settings, live, **options))


def async_queued_client(settings: Settings, max_connections: int, timeout: float, **overrides: Any) -> aioredis.Redis:
    """An asyncio client of at most ``max_connections`` connections whose callers wait for a free one
    (up to ``timeout`` seconds) instead of failing: a burst of SSE connects after a deploy."""
    options = connection_options(settings, **{"health_check_interval": 30, **overrides})
    pool = aioredis.BlockingConnectionPool.from_url(settings.require("redis_url"), max_connections=max_connections,
                                                    timeout=timeout, **options)
    return aioredis.Redis.from_pool(pool)
