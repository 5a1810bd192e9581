"""The request body limit (``NOTIF_MAX_BODY``), on every route, as a pure ASGI middleware.

A declared ``Content-Length`` over the limit is refused before a byte of the body is read;
a body without one (``Transfer-Encoding: chunked``) is counted as it arrives and refused
the moment it passes the limit. Either way the client gets ``413`` with a JSON reason, and
the route, if it was reading, sees the client gone. Plain ASGI (not ``BaseHTTPMiddleware``)
so that responses, SSE streams included, pass through untouched.
"""
from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def too_large_body(limit: int) -> bytes:
    return json.dumps({"error": "body_too_large",
                       "reason": f"the request body is over {limit} bytes (NOTIF_MAX_BODY)"}).encode()


async def refuse(send: Send, limit: int) -> None:
    payload = too_large_body(limit)
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": payload})


class BodyLimit:
    """``wider``: (path prefix, bytes) pairs for routes whose bodies are larger by design (a
    topic's 10,000 user ids); each gets the larger of its own and ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int, wider: tuple[tuple[str, int], ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.wider = wider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.max_bytes
        for prefix, larger in self.wider:
            if scope["path"].startswith(prefix):
                limit = max(limit, larger)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > limit):
            return await refuse(send, limit)  # (the server has already refused a malformed length; this is a guard)
        if b"transfer-encoding" not in headers:
            # a declared length within the limit (the server reads no more than it) or no body at all (an SSE
            # stream's GET): nothing to count, and the route's messages go straight through
            return await self.app(scope, receive, send)

        received = 0
        over = False  # the body passed the limit: the route reads no more of it
        answered = False  # ... and this middleware sent the 413: the route's own response goes nowhere
        started = False

        async def counted() -> Message:
            nonlocal received, over, answered
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    if not started:  # (a route that answered before reading it only loses the rest)
                        answered = True
                        await refuse(send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if answered:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted, guarded)
