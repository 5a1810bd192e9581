"""The baseline for the fan-out benchmark: the straightforward Starlette + sse-starlette server.

One Redis subscription for the process (so it is only the per-connection SSE machinery that
differs from notif's): each connection is an sse-starlette ``EventSourceResponse`` over an
async generator reading its own ``asyncio.Queue``. Run: ``uvicorn bench.naive_sse:app``.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os

import redis.asyncio as aioredis
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.routing import Route

CHANNEL = os.environ.get("NAIVE_CHANNEL", "naive-sse")
queues: set[asyncio.Queue] = set()


async def events(request):
    queue: asyncio.Queue = asyncio.Queue()
    queues.add(queue)

    async def stream():
        try:
            yield {"comment": "connected"}
            while True:
                payload = await queue.get()
                yield {"event": "notification", "id": str(payload["id"]), "data": json.dumps(payload)}
        finally:
            queues.discard(queue)

    return EventSourceResponse(stream(), ping=15)


async def relay():
    client = aioredis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    pubsub = client.pubsub()
    await pubsub.subscribe(CHANNEL)
    async for message in pubsub.listen():
        if message["type"] == "message":
            payload = json.loads(message["data"])
            for queue in tuple(queues):
                queue.put_nowait(payload)


@contextlib.asynccontextmanager
async def lifespan(app):
    task = asyncio.create_task(relay())
    yield
    task.cancel()


app = Starlette(routes=[Route("/events", events)], lifespan=lifespan)
