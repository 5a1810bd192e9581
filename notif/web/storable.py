"""Strings the store cannot hold stop at the web edge: 422 naming the field, on every route.

A NUL character (PostgreSQL's text cannot hold it) or a lone surrogate (UTF-8 cannot) in
a query parameter, a path parameter, or anywhere in a JSON body — values and keys, at any
depth — is refused before a route runs, with the body FastAPI gives any invalid request:
``{"detail": [{"loc": ["body", "endpoint"], "msg": "…", "type": "value_error"}]}``. The
rule is :func:`notif.inputs.unstorable`, the one SQS messages pass too. A pure ASGI
middleware, so every route present and future is covered and streams pass untouched.

A body is read whole before the route sees it (``NOTIF_MAX_BODY`` bounds it). A JSON body
that is not UTF-8 or nests too deep for the parser is a 422 too (FastAPI would answer 400,
which no route documents); any other malformed body is left for the route to refuse.
"""
from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..inputs import unstorable


def _loc(where: str, path: str) -> list[Any]:
    """``unstorable``'s dotted path (``items.3.name``; ``body`` at the top) as a FastAPI ``loc``."""
    if path == "body":
        return [where]
    return [where, *(int(part) if part.isdigit() else part for part in path.split("."))]


Problem = tuple[list[Any], str, str]  # loc, message, type


def problem_of(scope: Scope, body: bytes | None) -> Problem | None:
    """The first unstorable field of the request (or a JSON body the parser cannot read)."""
    for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
        for part, what in ((key, "its name"), (value, "its value")):
            found = unstorable(part)
            if found:
                return ["query", key], f"query parameter: {what} {found[1]}", "value_error"
    found = unstorable(scope.get("path", ""))
    if found:
        return _path_param(scope) or ["path"], f"path {found[1]}", "value_error"
    if body:
        try:
            document = json.loads(body)
        except UnicodeDecodeError:
            return (["body"], "JSON body is not UTF-8 text", "json_invalid") if _json_declared(scope) else None
        except RecursionError:
            return (["body"], "JSON body nests too deep", "json_invalid") if _json_declared(scope) else None
        except ValueError:
            return None  # malformed JSON, or not JSON at all: the route refuses it as it would
        found = unstorable(document)
        if found:
            return _loc("body", found[0]), found[1], "value_error"
    return None


def _json_declared(scope: Scope) -> bool:
    """Would FastAPI read this body as JSON (no Content-Type, ``application/json`` or ``application/*+json``)?"""
    kind = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip().lower()
    return not kind or kind == b"application/json" or (kind.startswith(b"application/") and kind.endswith(b"+json"))


def _path_param(scope: Scope) -> list[Any] | None:
    """``["path", name]`` for the path parameter holding the character, found by the routes' templates in
    the app's OpenAPI document (``/api/scheduled/{key}``); None when no documented route has one there."""
    openapi = getattr(scope.get("app"), "openapi", None)
    if openapi is None:
        return None
    for template in openapi().get("paths", {}):
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]*)", re.escape(template))
        match = re.fullmatch(pattern, scope.get("path", ""))
        for name, value in (match.groupdict() if match else {}).items():
            if unstorable(value):
                return ["path", name]
    return None


async def refuse(send: Send, loc: list[Any], msg: str, kind: str) -> None:
    # ensure_ascii: a query parameter's name may itself hold the lone surrogate
    payload = json.dumps({"detail": [{"loc": loc, "msg": msg, "type": kind}]}).encode()
    await send({"type": "http.response.start", "status": 422, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def has_body(scope: Scope) -> bool:
    headers = dict(scope["headers"])
    return headers.get(b"content-length", b"0").strip() not in (b"", b"0") or b"transfer-encoding" in headers


class RefuseUnstorable:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body: bytes | None = None
        if has_body(scope):  # (a request without one, e.g. an SSE stream's, keeps its receive untouched)
            chunks = []
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client left, or the body limit has answered already
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
        problem = problem_of(scope, body)
        if problem is not None:
            return await refuse(send, *problem)
        if body is None:
            return await self.app(scope, receive, send)

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
