"""CORS for host apps' pages (``NOTIF_CORS_ORIGINS``), as a pure ASGI middleware (streams pass untouched).

A host app's page on another origin embeds ``<notif-inbox>``: it loads ``/notif-inbox.js`` and
calls ``/api/*`` and ``/events`` with a bearer token. Only those paths, and only for the
origins listed, get CORS headers:

- an actual request from a listed origin: ``Access-Control-Allow-Origin: <that origin>``
  (never ``*``), ``Access-Control-Expose-Headers: Retry-After`` (for 429 and 503);
- a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) from a listed origin is
  answered here, 204, with the methods (``GET, POST, PUT, DELETE``), the request headers
  (``Authorization, Content-Type, Last-Event-ID``) and ``Access-Control-Max-Age: 600``; from
  any other origin, 403 with no CORS headers;
- anything else (an origin not listed, no ``Origin``): no CORS headers at all.

Never ``Access-Control-Allow-Credentials``: the token travels in a header, not a cookie, so
a page of a listed origin can read the user's notifications only with the user's token.
Every answer on these paths says ``Vary: Origin`` (a cache must not hand one origin's answer
to another). Registered outermost (notif.web.app), so the answers of the layers inside it —
401, 413, 422, 429, 503 — carry the headers too: a page must be able to read a 401 to know
its token has expired; an unhandled error's 500 is answered here, with them, too.
"""
from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PATHS = ("/events", "/notif-inbox.js")
PREFIXES = ("/api/",)
ALLOW_METHODS = b"GET, POST, PUT, DELETE"
ALLOW_HEADERS = b"Authorization, Content-Type, Last-Event-ID"
EXPOSE_HEADERS = b"Retry-After"
MAX_AGE = b"600"


def covered(path: str) -> bool:
    """Does CORS apply to this path?"""
    return path in PATHS or path.startswith(PREFIXES)


def _with_vary(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``Origin`` added to ``Vary`` (once)."""
    out, varied = [], False
    for name, value in headers:
        if name.lower() == b"vary":
            fields = [v.strip().lower() for v in value.split(b",")]
            if b"origin" not in fields and b"*" not in fields:
                value = value + b", Origin"
            varied = True
        out.append((name, value))
    if not varied:
        out.append((b"vary", b"Origin"))
    return out


class CORS:
    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        self.app = app
        self.origins = frozenset(origin.encode("latin-1") for origin in origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not covered(scope["path"]):
            return await self.app(scope, receive, send)
        origin = None
        preflight = False
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                preflight = True
        allowed = origin is not None and origin in self.origins
        if preflight and scope["method"] == "OPTIONS" and origin is not None:
            return await self._preflight(send, origin if allowed else None)
        ours = [(b"access-control-allow-origin", origin), (b"access-control-expose-headers", EXPOSE_HEADERS)] \
            if allowed and origin is not None else []

        started = False

        async def with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(n, v) for n, v in message.get("headers", ()) if not n.lower().startswith(b"access-control-")]
                message["headers"] = _with_vary(headers) + ours
            await send(message)

        try:
            await self.app(scope, receive, with_headers)
        except Exception:
            # Starlette answers an unhandled error outside every middleware, so its 500 would carry no CORS
            # headers and a page could not even read its status; answer it here, then let the error go on
            # to be logged (Starlette sends nothing more once a response has started).
            if not started:
                body = json.dumps({"error": "internal_error", "reason": "notif failed to answer; see its logs"}).encode()
                await with_headers({"type": "http.response.start", "status": 500, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                await with_headers({"type": "http.response.body", "body": body})
            raise

    async def _preflight(self, send: Send, origin: bytes | None) -> None:
        if origin is None:
            body = json.dumps({"error": "cors_origin_not_allowed",
                               "reason": "this origin may not call notif from a browser (NOTIF_CORS_ORIGINS)"}).encode()
            await send({"type": "http.response.start", "status": 403, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"vary", b"Origin")]})
            await send({"type": "http.response.body", "body": body})
            return
        await send({"type": "http.response.start", "status": 204, "headers": [
            (b"access-control-allow-origin", origin), (b"access-control-allow-methods", ALLOW_METHODS),
            (b"access-control-allow-headers", ALLOW_HEADERS), (b"access-control-max-age", MAX_AGE),
            (b"vary", b"Origin")]})
        await send({"type": "http.response.body", "body": b""})
