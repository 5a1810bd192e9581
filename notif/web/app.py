"""The ASGI application: built once per process from Settings."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..auth import AuthError
from ..config import Settings
from ..db import init_database
from . import health, inbox


log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    if len(settings.require("jwt_secret").encode()) < 32:
        log.warning("NOTIF_JWT_SECRET is shorter than 32 bytes; HS256 wants at least 32 random bytes "
                    "(python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    init_database(settings.database_url)

    app = FastAPI(title="notif", version="0.1.0",
                  description="Notifications: inbox API, live events, health.")
    app.state.settings = settings

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, exc: AuthError) -> JSONResponse:
        return JSONResponse({"error": "unauthorized", "reason": str(exc)}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})

    app.include_router(health.router)
    app.include_router(inbox.router)
    return app
