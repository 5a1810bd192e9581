"""Request dependencies shared by the routes: settings, the current user, a DB connection."""
from __future__ import annotations

import hmac

from fastapi import Request

from ..auth import AuthError, verify_token, verify_token_expiry
from ..config import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    token = None
    if header:
        scheme, _, value = header.partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else None
        if token is None:
            raise AuthError("Authorization header must be `Bearer <jwt>`")
    return token or request.query_params.get("token")


def verify(settings: Settings, token: str | None, service: bool = False) -> str:
    """Who ``token`` speaks for, checked against NOTIF_JWT_SECRET (``create_app`` refuses to start
    without one), NOTIF_JWT_AUDIENCE and NOTIF_JWT_ISSUER; AuthError otherwise."""
    return verify_token(settings.require("jwt_secret"), token, service=service,
                        audience=settings.jwt_audience, issuer=settings.jwt_issuer)


def verify_expiry(settings: Settings, token: str | None) -> tuple[str, int]:
    """The user ``token`` speaks for (as :func:`verify`) and until when: its ``exp``."""
    return verify_token_expiry(settings.require("jwt_secret"), token, audience=settings.jwt_audience,
                               issuer=settings.jwt_issuer)


async def current_user(request: Request) -> str:
    """The user the request's JWT speaks for (``Authorization: Bearer`` or ``?token=``).

    ``async`` (a check of a few microseconds, a remembered token's less: notif.auth) so that
    FastAPI runs it on the event loop, not in a worker thread: a thread hop per request."""
    return verify(get_settings(request), _token(request))


async def current_service(request: Request) -> str:
    """The host application, by a service token (``"scope": "service"``), for service routes (``async``:
    as current_user)."""
    return verify(get_settings(request), _token(request), service=True)


def operator_access(request: Request) -> bool:
    """May this request see operators' details (/metrics, /readyz's checks)? Yes when
    NOTIF_METRICS_TOKEN is unset, else only with ``Authorization: Bearer <NOTIF_METRICS_TOKEN>``."""
    expected = get_settings(request).metrics_token
    if not expected:
        return True
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), expected.encode())
