"""Auth: the host application signs a JWT (HS256, ``sub`` = user id, ``exp`` required).

The algorithm is pinned: a token whose header names any other (``none``, HS512, RS256…)
is refused, whatever its signature. ``NOTIF_JWT_AUDIENCE`` and ``NOTIF_JWT_ISSUER``, when
set, make ``aud`` and ``iss`` required and checked too.

A token that passed is remembered (:func:`_checked`, an LRU of ``VERIFIED_TOKENS``
entries keyed by the token, the secret and the expected audience and issuer), so a client's
next request with the same token skips the HMAC and the JSON: the web process's
per-request floor (docs/benchmarks.md › The inbox at 10 million rows). Only successes are
remembered, and ``exp`` is checked again on every use, so a remembered token is refused
the moment it expires; a different secret, audience or issuer is a different entry.
(``nbf`` and ``iat`` only ever become more acceptable with time.)
"""
from __future__ import annotations

import functools
import time

import jwt

from .errors import ConfigError

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32  # RFC 7518 § 3.2: an HS256 key at least as long as the hash
SERVICE_SCOPE = "service"  # a token with `"scope": "service"` speaks for the host application, not a user
# tokens remembered as verified, per process (a few hundred bytes each): more than one web process holds streams
# (20,000), so that a reconnect storm, every stream's token again at once, finds them all (docs/benchmarks.md)
VERIFIED_TOKENS = 32768


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
    return verify_token_expiry(secret, token, service, audience, issuer)[0]


def verify_token_expiry(secret: str, token: str | None, service: bool = False,
                        audience: str | None = None, issuer: str | None = None) -> tuple[str, int]:
    """As :func:`verify_token`, with the token's ``exp`` (seconds since the epoch): what speaks
    for the user only until then, such as an SSE stream, ends at it."""
    if not token:
        raise AuthError("missing token: send `Authorization: Bearer <jwt>` or `?token=<jwt>`")
    sub, is_service, expires = _checked(token, secret, audience or None, issuer or None)
    if time.time() >= expires:  # as PyJWT decides it: expired once `exp` is not in the future
        raise AuthError("token expired")
    if service and not is_service:
        raise AuthError('this route needs a service token (`"scope": "service"`; `notif token --service NAME`)')
    if is_service and not service:
        raise AuthError("a service token does not speak for a user")
    return sub, expires


@functools.lru_cache(maxsize=VERIFIED_TOKENS)
def _checked(token: str, secret: str, audience: str | None, issuer: str | None) -> tuple[str, bool, int]:
    """(``sub``, is it a service token, ``exp``) of a token whose signature and claims pass; AuthError
    otherwise (not remembered: lru_cache keeps return values only)."""
    required = ["exp", "sub", *(["aud"] if audience else []), *(["iss"] if issuer else [])]
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], audience=audience, issuer=issuer,
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
    return sub, claims.get("scope") == SERVICE_SCOPE, int(claims["exp"])
