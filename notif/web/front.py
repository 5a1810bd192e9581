"""The application's front door: ``GET /events`` straight to its endpoint, everything else through FastAPI.

A stream lives for hours and there are thousands of them per process; FastAPI's stack —
eight middleware layers and the router's match over every route — costs each new stream
CPU (a reconnect storm opens thousands at once) and, for as long as it lives, a suspended
frame per layer and a wrapped ``send`` that every event passes through (memory per stream,
and time per event in a fan-out). So the front door hands ``GET /events`` to the endpoint
directly, with the answers' headers the layers would have added computed once per request:
the security headers (notif.web.headers) and, when ``NOTIF_CORS_ORIGINS`` is set, CORS's
(notif.web.cors; a preflight ``OPTIONS`` still goes through CORS). Nothing else on that
path needs the layers: a stream's request has no body, and its own answers are JSON it
writes itself. A request the layers would refuse (a body, which the body limit measures; a
NUL in the query, notif.web.storable) goes through them as before, and is refused there.
"""
from __future__ import annotations

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from .cors import EXPOSE_HEADERS
from .events import events
from .headers import API_POLICY
from .storable import has_body, problem_of

SECURITY = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"), (b"content-security-policy", API_POLICY.encode()))


class NotifApp(FastAPI):
    """FastAPI, with ``GET /events`` taken at the door (``cors_origins``: NOTIF_CORS_ORIGINS, set by create_app)."""

    cors_origins: frozenset[bytes] = frozenset()

    def events_headers(self, scope: Scope) -> tuple:
        if not self.cors_origins:
            return SECURITY
        origin = next((value for name, value in scope["headers"] if name == b"origin"), None)
        if origin is not None and origin in self.cors_origins:
            return (*SECURITY, (b"vary", b"Origin"), (b"access-control-allow-origin", origin),
                    (b"access-control-expose-headers", EXPOSE_HEADERS))
        return (*SECURITY, (b"vary", b"Origin"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["path"] == "/events" and scope["method"] == "GET"
                and not has_body(scope) and problem_of(scope, None) is None):
            scope["app"] = self
            return await events(scope, receive, send, self.events_headers(scope))
        await super().__call__(scope, receive, send)
