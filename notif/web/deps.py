"""Request dependencies shared by the routes: settings, the current user, a DB connection."""
from __future__ import annotations

from fastapi import Request

from ..auth import AuthError, verify_token
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


def _secret(request: Request) -> str:
    """NOTIF_JWT_SECRET (``create_app`` refuses to start without it)."""
    secret: str = get_settings(request).require("jwt_secret")
    return secret


def current_user(request: Request) -> str:
    """The user the request's JWT speaks for (``Authorization: Bearer`` or ``?token=``)."""
    return verify_token(_secret(request), _token(request))


def current_service(request: Request) -> str:
    """The host application, by a service token (``"scope": "service"``), for service routes."""
    return verify_token(_secret(request), _token(request), service=True)
