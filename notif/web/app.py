"""The ASGI application: built once per process from Settings."""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..auth import AuthError, check_secret
from ..config import Settings
from ..db import init_database, is_postgres
from ..errors import ConfigError
from ..monitoring.heartbeat import Heartbeat
from ..plugin_manager import channels_for, manager_for, template_dirs
from ..redis_client import async_client, async_queued_client, sync_client
from ..templates import TemplateStore
from ..webhooks.outbox import WebhookOutbox
from . import events, health, inbox, messages, metrics, page, preferences, push, responses, scheduled, topics
from .body_limit import BodyLimit
from .cors import CORS
from .front import NotifApp
from .headers import SecurityHeaders
from .hub import Hub
from .loop_count import LoopCounts
from .replay import ReplayBatcher
from .storable import RefuseUnstorable
from .stream_slots import StreamSlots

log = logging.getLogger(__name__)

SLOT_CONNECTIONS = 16  # Redis connections for taking and giving back SSE slots; a burst of connects queues for them


class LiveState:
    """The process's async Redis client and its hub, started on first use.

    Lazily, so that the inbox API keeps serving while Redis is down; /events then answers
    503 until Redis is back.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = async_client(settings, live=True)  # the hub's pub/sub and the state events
        self.slots = StreamSlots(settings, async_queued_client(settings, SLOT_CONNECTIONS, timeout=10))
        self.replays = ReplayBatcher()
        self._hub: Hub | None = None
        self._lock = asyncio.Lock()

    async def hub(self) -> Hub:
        async with self._lock:
            if self._hub is None:
                hub = Hub(self.settings, self.redis)
                try:
                    await hub.start()
                except Exception as exc:
                    log.warning("live events unavailable: cannot subscribe to Redis", exc_info=True)
                    raise ConnectionError(f"Redis is unreachable ({exc})") from None
                self._hub = hub
            return self._hub

    def shutting_down(self) -> None:
        """Called from the signal handler: end every stream so the process can exit promptly."""
        if self._hub is not None:
            self._hub.close_all()

    async def close(self) -> None:
        if self._hub is not None:
            await self._hub.stop()
        await self.slots.close()
        await self.redis.aclose()


def create_app(settings: Settings) -> FastAPI:
    try:
        check_secret(settings.require("jwt_secret"))
    except ConfigError as exc:
        if not settings.dev:
            raise
        log.warning("%s", exc)  # notif dev: a short secret of the developer's own is allowed
    init_database(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.live = LiveState(settings)
        heartbeat = Heartbeat(sync_client(settings), settings, "web").start()
        yield
        heartbeat.stop()
        await app.state.live.close()
        if app.state.loop_counts is not None:
            app.state.loop_counts.close()

    app = NotifApp(title="notif", version="0.1.0", lifespan=lifespan, responses=responses.EDGE,
                  description="Notifications: the inbox API, live events (SSE), health.")
    app.state.settings = settings
    app.state.loop_counts = LoopCounts(settings.database_url) if is_postgres() else None  # connects on first use
    # what preferences may name: the channels this deployment loads, the notification types its templates define
    app.state.channels = frozenset(channels_for(settings))
    app.state.templates = TemplateStore.from_settings(settings, template_dirs(manager_for(settings), settings))
    app.state.webhooks = WebhookOutbox(settings)  # the inbox routes report read, seen and archived (notif.webhooks)

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, exc: AuthError) -> JSONResponse:
        return JSONResponse({"error": "unauthorized", "reason": str(exc)}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})

    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(inbox.router, responses=responses.SIGNED_IN)
    app.include_router(push.router, responses=responses.SIGNED_IN)
    app.include_router(preferences.router, responses=responses.SIGNED_IN)
    app.include_router(scheduled.router, responses=responses.SIGNED_IN)
    app.include_router(topics.router, responses=responses.SIGNED_IN)
    app.include_router(messages.router, responses=responses.SIGNED_IN)
    # Starlette routes a class instance as a raw ASGI app; add_route's annotation names request handlers only
    # (taken at the front door, notif.web.front; the route remains for what reads the routes, and OPTIONS)
    app.add_route("/events", events.EventsEndpoint(), methods=["GET"], include_in_schema=False)  # type: ignore[arg-type]
    app.include_router(page.router)
    # outermost last: headers on every answer, the body limit before anything reads a body, and CORS around
    # them all, so that their answers (401, 413, 422, 429, 503) reach a host app's page readable
    app.add_middleware(RefuseUnstorable)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body, wider=(("/api/topics/", topics.TOPIC_BODY),))
    app.add_middleware(SecurityHeaders, public_url=settings.public_url)
    if settings.cors_origins:
        app.add_middleware(CORS, origins=settings.cors_origins)
        app.cors_origins = frozenset(origin.encode("latin-1") for origin in settings.cors_origins)
    return app
