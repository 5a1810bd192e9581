"""The hub: one Redis pub/sub connection per web process, fanned out to its SSE streams.

Each connected stream registers a :class:`Listener` for its user. The first listener of a
user subscribes the process to that user's channel; the last one to leave unsubscribes, so
Redis only sends a process the events of users it serves. ``subscribe`` returns once Redis
has confirmed the subscription — a stream subscribes *before* it replays from the
database, so nothing published in between is missed.

A listener's queue is bounded: a client that stops reading is closed rather than allowed
to grow the process (it reconnects with Last-Event-ID and replays from the database). When
the Redis connection drops and comes back, every listener is told to resynchronise from
the database, since events published meanwhile were lost.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from ..keys import user_channel

log = logging.getLogger(__name__)

RESYNC = object()  # put in a listener's queue: events may have been missed
CLOSE = object()  # put in a listener's queue: stop the stream


@dataclass(eq=False)
class Listener:
    user_id: str
    queue: asyncio.Queue = field(repr=False)
    dropped: bool = False


class Hub:
    def __init__(self, settings, client: aioredis.Redis, queue_size: int = 256) -> None:
        self.settings = settings
        self.client = client
        self.queue_size = queue_size
        self.pubsub = client.pubsub()
        self.listeners: dict[str, set[Listener]] = {}
        self.confirmed: dict[str, asyncio.Event] = {}
        self.control = f"{settings.redis_prefix}:hub"
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self.confirmed[self.control] = asyncio.Event()
        await self.pubsub.subscribe(self.control)  # opens the connection the reader waits on
        self._task = asyncio.create_task(self._read(), name="notif-hub")
        await asyncio.wait_for(self.confirmed[self.control].wait(), 10)

    async def stop(self) -> None:
        for listeners in self.listeners.values():
            for listener in listeners:
                self._put(listener, CLOSE)
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.pubsub.aclose()

    @property
    def connections(self) -> int:
        return sum(len(v) for v in self.listeners.values())

    async def subscribe(self, user_id: str) -> Listener:
        channel = user_channel(self.settings, user_id)
        listener = Listener(user_id, asyncio.Queue(self.queue_size))
        self.listeners.setdefault(channel, set()).add(listener)
        confirmed = self.confirmed.get(channel)
        if confirmed is None:
            confirmed = self.confirmed[channel] = asyncio.Event()
            try:
                await self.pubsub.subscribe(channel)
            except Exception:
                await self.unsubscribe(listener)
                raise
        try:
            await asyncio.wait_for(confirmed.wait(), 10)
        except Exception:
            await self.unsubscribe(listener)
            raise
        return listener

    async def unsubscribe(self, listener: Listener) -> None:
        channel = user_channel(self.settings, listener.user_id)
        listeners = self.listeners.get(channel)
        if listeners is None:
            return
        listeners.discard(listener)
        if not listeners:
            del self.listeners[channel]
            self.confirmed.pop(channel, None)
            try:
                await self.pubsub.unsubscribe(channel)
            except Exception:  # the connection is down; it resubscribes only what is listed
                log.warning("could not unsubscribe", extra={"channel": channel}, exc_info=True)

    def _put(self, listener: Listener, item) -> None:
        if listener.dropped:
            return
        try:
            listener.queue.put_nowait(item)
        except asyncio.QueueFull:
            # The client is not reading: drop it; it replays from the database on reconnect.
            listener.dropped = True
            while not listener.queue.empty():
                listener.queue.get_nowait()
            listener.queue.put_nowait(CLOSE)
            log.warning("slow SSE client dropped", extra={"user_id": listener.user_id})

    def _dispatch(self, message: dict) -> None:
        channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
        kind = message["type"]
        if kind == "subscribe":
            event = self.confirmed.get(channel)
            if event is not None:
                event.set()
            return
        if kind != "message" or channel == self.control:
            return
        listeners = self.listeners.get(channel)
        if not listeners:
            return
        try:
            payload = json.loads(message["data"])
        except ValueError:
            log.error("unreadable event on a user channel", extra={"channel": channel})
            return
        for listener in tuple(listeners):
            self._put(listener, payload)

    async def _read(self) -> None:
        failures = 0
        while True:
            try:
                message = await self.pubsub.get_message(timeout=1.0)
                if failures:
                    log.info("Redis pub/sub is back; streams resynchronise from the database")
                    for listeners in self.listeners.values():
                        for listener in listeners:
                            self._put(listener, RESYNC)
                    failures = 0
                if message is not None:
                    self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.warning("Redis pub/sub read failed; retrying", exc_info=failures == 1)
                await asyncio.sleep(min(5.0, 0.1 * 2 ** failures))
