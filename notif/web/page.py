"""``GET /``: the inbox page (plain HTML + JS, no build step) and its static files."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

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
