"""Caps on live SSE streams: per user across every web process, and per process.

``NOTIF_SSE_MAX_STREAMS`` bounds one process's open streams (each is a socket, and the
process's open files are finite); it is counted here, in memory. ``NOTIF_SSE_MAX_PER_USER``
bounds one user's streams wherever they are held, so it lives in Redis: a sorted set per
user (:func:`notif.redis_keys.sse_streams`) of stream ids scored by the time their lease
ends. A stream takes a slot with one Lua script that drops lapsed leases, counts and adds
atomically — two processes cannot both take the last slot. Its process renews the lease
every ``REFRESH_SECONDS`` while the stream lives and removes it when the stream ends; the
slots of a process that dies without a word lapse within ``LEASE_SECONDS``.

Streams opened (or closed) within a few milliseconds of each other share one script call
(or one pipeline of ZREMs): a reconnect storm costs a round trip per few hundred streams,
not one each (notif.web.batching).

A stream refused gets :class:`StreamsFull`: the events route answers 429 with
``Retry-After``.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid

import redis.asyncio as aioredis

from ..config import Settings
from ..redis_keys import sse_streams
from .batching import MicroBatcher

log = logging.getLogger(__name__)

LEASE_SECONDS = 60  # a slot its process stopped renewing is free again after this long
REFRESH_SECONDS = 20.0
PROCESS_RETRY_AFTER = 5  # a full process: another one behind the load balancer, or a stream ending, frees room

# KEYS: each request's user set (a user may come twice); ARGV: now, lease end, cap, key ttl, then each
# request's stream id. Returns, per request in order, 1 and the lease end when the slot is taken, else 0 and
# the earliest lease end held.
TAKE = """
local out = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
  if redis.call('ZCARD', key) >= tonumber(ARGV[3]) then
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    out[#out + 1] = 0
    out[#out + 1] = first[2]
  else
    redis.call('ZADD', key, ARGV[2], ARGV[4 + i])
    redis.call('EXPIRE', key, ARGV[4])
    out[#out + 1] = 1
    out[#out + 1] = ARGV[2]
  end
end
return out
"""
BATCH_WINDOW_MS = 2.0  # a new stream's lease waits this long for others to share the script call (or its release)
BATCH = 500

# KEYS: users' sets; ARGV: lease end, key ttl, then per key the number of its stream ids and the ids.
# XX: a slot released since the caller looked is not brought back.
RENEW = """
local lease_end, ttl, at = ARGV[1], ARGV[2], 3
for _, key in ipairs(KEYS) do
  local count = tonumber(ARGV[at])
  for i = at + 1, at + count do
    redis.call('ZADD', key, 'XX', lease_end, ARGV[i])
  end
  at = at + count + 1
  redis.call('EXPIRE', key, ttl)
end
return 0
"""
RENEW_BATCH = 500  # streams per script call: the event loop runs between calls


class StreamsFull(Exception):
    """No slot for another stream: ``reason`` for the client, ``retry_after`` in seconds."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class StreamSlots:
    """The slots this web process holds: stream id → user id."""

    def __init__(self, settings: Settings, client: aioredis.Redis) -> None:
        self.settings = settings
        self.client = client
        self.per_user = settings.sse_max_per_user
        self.per_process = settings.sse_max_streams
        self.held: dict[str, str] = {}
        self._take = client.register_script(TAKE)
        self._renew_script = client.register_script(RENEW)
        self._renewer: asyncio.Task | None = None
        self._takes: MicroBatcher[tuple[str, str], tuple[int, float]] = MicroBatcher(self._take_many, BATCH_WINDOW_MS, BATCH)
        self._releases: MicroBatcher[tuple[str, str], None] = MicroBatcher(self._release_many, BATCH_WINDOW_MS, BATCH)

    async def acquire(self, user_id: str) -> str:
        """A slot for one more stream of ``user_id`` (its id, for :meth:`release`), or StreamsFull."""
        if self.per_process and len(self.held) >= self.per_process:
            raise StreamsFull(f"this server holds its most live streams ({self.per_process}, NOTIF_SSE_MAX_STREAMS); "
                              "try again shortly", PROCESS_RETRY_AFTER)
        stream_id = uuid.uuid4().hex
        self.held[stream_id] = user_id  # counted at once: concurrent connects cannot overshoot the process cap
        if not self.per_user:
            return stream_id
        try:
            taken, until = await self._takes.ask((user_id, stream_id))
        except BaseException:
            del self.held[stream_id]
            raise
        if not taken:
            del self.held[stream_id]
            retry_after = min(LEASE_SECONDS, max(1, math.ceil(until - time.time())))
            raise StreamsFull(f"this user has {self.per_user} live streams open already (NOTIF_SSE_MAX_PER_USER); "
                              "close one (another tab or device) or try again later", retry_after)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew(), name="notif-sse-slots")
        return stream_id

    async def _take_many(self, requests: list[tuple[str, str]]) -> list[tuple[int, float]]:
        now = time.time()
        out = await self._take(keys=[sse_streams(self.settings, user_id) for user_id, _ in requests],
                               args=[now, now + LEASE_SECONDS, self.per_user, LEASE_SECONDS * 2,
                                     *(stream_id for _, stream_id in requests)])
        return [(int(out[i]), float(out[i + 1])) for i in range(0, len(out), 2)]

    async def _release_many(self, requests: list[tuple[str, str]]) -> list[None]:
        async with self.client.pipeline(transaction=False) as pipe:
            for user_id, stream_id in requests:
                pipe.zrem(sse_streams(self.settings, user_id), stream_id)
            await pipe.execute()
        return [None] * len(requests)

    async def release(self, stream_id: str) -> None:
        user_id = self.held.pop(stream_id, None)
        if user_id is None or not self.per_user:
            return
        try:
            await self._releases.ask((user_id, stream_id))
        except Exception:  # Redis is down: the lease lapses by itself
            log.warning("could not release an SSE stream's slot; it lapses within %s s", LEASE_SECONDS,
                        extra={"user_id": user_id}, exc_info=True)

    async def renew(self) -> None:
        """Push every held slot's lease forward, a few hundred per round trip, sparing slots released meanwhile."""
        if not self.held or not self.per_user:
            return
        by_user: dict[str, list[str]] = {}
        for stream_id, user_id in list(self.held.items()):
            by_user.setdefault(user_id, []).append(stream_id)
        lease_end = time.time() + LEASE_SECONDS
        keys: list[str] = []
        args: list = [lease_end, LEASE_SECONDS * 2]
        for user_id, stream_ids in by_user.items():
            keys.append(sse_streams(self.settings, user_id))
            args += [len(stream_ids), *stream_ids]
            if len(args) - 2 - len(keys) >= RENEW_BATCH:
                await self._renew_script(keys=keys, args=args)
                keys, args = [], [lease_end, LEASE_SECONDS * 2]
        if keys:
            await self._renew_script(keys=keys, args=args)

    async def _renew(self) -> None:
        while self.held:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.renew()
            except Exception:
                log.warning("could not renew SSE stream slots; retrying", exc_info=True)

    async def close(self) -> None:
        """Give back every slot this process holds (it is stopping), in one round trip, and close the client."""
        if self._renewer is not None:
            self._renewer.cancel()
            try:
                await self._renewer
            except asyncio.CancelledError:
                pass
        held, self.held = list(self.held.items()), {}
        try:
            if held and self.per_user:
                async with self.client.pipeline(transaction=False) as pipe:
                    for stream_id, user_id in held:
                        pipe.zrem(sse_streams(self.settings, user_id), stream_id)
                    await pipe.execute()
        except Exception:
            log.warning("could not give back %d SSE slots; they lapse within %s s", len(held), LEASE_SECONDS,
                        exc_info=True)
        finally:
            await self.client.aclose()
