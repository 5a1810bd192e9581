"""``GET /``: the inbox page (plain HTML + JS, no build step), its static files, and
``GET /notif-inbox.js``: the ``<notif-inbox>`` component a host app embeds with one script tag."""
from __future__ import annotations

import functools
import gzip
import hashlib
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response

STATIC = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def inbox_page() -> FileResponse:
    return FileResponse(STATIC / "inbox.html", headers={"Cache-Control": "no-cache"})


@router.get("/sw.js")
async def service_worker() -> FileResponse:
    # served from the root so that it may control the whole origin
    return FileResponse(STATIC / "sw.js", media_type="text/javascript",
                        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"})


@router.get("/static/{name}")
async def static_file(name: str) -> FileResponse:
    path = STATIC / name
    if name not in {p.name for p in STATIC.iterdir()}:  # only the files shipped, no traversal
        raise HTTPException(404)
    return FileResponse(path, headers={"Cache-Control": "no-cache"})


@functools.cache
def component_bundle() -> tuple[bytes, bytes, str]:
    """notif-inbox.js with the link rules it shares with the page's service worker (links.js), in one function
    so that the host page gains only ``NotifClient``, ``NotifInbox`` and the element: (body, body gzipped, ETag)."""
    parts = [(STATIC / name).read_text(encoding="utf-8") for name in ("links.js", "notif-inbox.js")]
    body = ("(() => {\n" + "\n".join(parts) + "\n})();\n").encode()
    return body, gzip.compress(body, mtime=0), '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@router.get("/notif-inbox.js")
async def component(request: Request) -> Response:
    body, compressed, etag = component_bundle()
    # revalidated on each load: a release reaches every host page at once
    headers = {"Cache-Control": "no-cache", "ETag": etag, "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(compressed, media_type="text/javascript; charset=utf-8",
                        headers={**headers, "Content-Encoding": "gzip"})
    return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)
