"""Auth: the host application signs a JWT (HS256, ``sub`` = user id, ``exp`` required)."""
from __future__ import annotations

import time

import jwt

ALGORITHM = "HS256"
SERVICE_SCOPE = "service"  # a token with `"scope": "service"` speaks for the host application, not a user


class AuthError(Exception):
    """The token is missing or unacceptable; the message is the reason shown to the client."""


def make_token(secret: str, user_id: str, ttl_seconds: int = 3600, service: bool = False) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if service:
        claims["scope"] = SERVICE_SCOPE
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str | None, service: bool = False) -> str:
    """The user id (or, with ``service``, the service name) the token speaks for, or AuthError.

    A user's token never passes as a service token, nor a service token as a user's.
    """
    if not token:
        raise AuthError("missing token: send `Authorization: Bearer <jwt>` or `?token=<jwt>`")
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidSignatureError:
        raise AuthError("token signature is invalid") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"token lacks the `{exc.claim}` claim") from None
    except jwt.InvalidAlgorithmError:
        raise AuthError(f"token algorithm not allowed: only {ALGORITHM}") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"token is malformed: {exc}") from None
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub:
        raise AuthError("token `sub` must be a non-empty string (the user id)")
    is_service = claims.get("scope") == SERVICE_SCOPE
    if service and not is_service:
        raise AuthError('this route needs a service token (`"scope": "service"`; `notif token --service NAME`)')
    if is_service and not service:
        raise AuthError("a service token does not speak for a user")
    return sub
