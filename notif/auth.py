"""Auth: the host application signs a JWT (HS256, ``sub`` = user id, ``exp`` required).

The algorithm is pinned: a token whose header names any other (``none``, HS512, RS256…)
is refused, whatever its signature. ``NOTIF_JWT_AUDIENCE`` and ``NOTIF_JWT_ISSUER``, when
set, make ``aud`` and ``iss`` required and checked too.
"""
from __future__ import annotations

import time

import jwt

from .errors import ConfigError

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32  # RFC 7518 § 3.2: an HS256 key at least as long as the hash
SERVICE_SCOPE = "service"  # a token with `"scope": "service"` speaks for the host application, not a user


class AuthError(Exception):
    """The token is missing or unacceptable; the message is the reason shown to the client."""


def check_secret(secret: str) -> None:
    """ConfigError, saying how to make a good one, when ``secret`` is too short to sign HS256 safely."""
    size = len(secret.encode())
    if size < MIN_SECRET_BYTES:
        raise ConfigError(
            f"NOTIF_JWT_SECRET is {size} bytes; HS256 needs at least {MIN_SECRET_BYTES} random bytes. Make one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`, set it here and in the host app "
            "that signs the tokens (`notif dev` makes its own)")


def make_token(secret: str, user_id: str, ttl_seconds: int = 3600, service: bool = False,
               audience: str | None = None, issuer: str | None = None) -> str:
    now = int(time.time())
    claims: dict = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if service:
        claims["scope"] = SERVICE_SCOPE
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str | None, service: bool = False,
                 audience: str | None = None, issuer: str | None = None) -> str:
    """The user id (or, with ``service``, the service name) the token speaks for, or AuthError.

    A user's token never passes as a service token, nor a service token as a user's.
    """
    if not token:
        raise AuthError("missing token: send `Authorization: Bearer <jwt>` or `?token=<jwt>`")
    required = ["exp", "sub", *(["aud"] if audience else []), *(["iss"] if issuer else [])]
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], audience=audience or None, issuer=issuer or None,
                            options={"require": required})
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidSignatureError:
        raise AuthError("token signature is invalid") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"token lacks the `{exc.claim}` claim") from None
    except jwt.InvalidAlgorithmError:
        raise AuthError(f"token algorithm not allowed: only {ALGORITHM}") from None
    except jwt.InvalidAudienceError:
        raise AuthError("token audience (`aud`) is not accepted" + (
            f": it must name {audience!r}" if audience else ": this service expects none")) from None
    except jwt.InvalidIssuerError:
        raise AuthError(f"token issuer (`iss`) is not accepted: it must be {issuer!r}") from None
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
