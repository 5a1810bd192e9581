"""The hub: one Redis pub/sub connection per web process, fanned out to its SSE streams.

Each connected stream registers a :class:`Listener` for its user. The first listener of a
user subscribes the process to that user's channel; the last one to leave unsubscribes, so
Redis only sends a process the events of users it serves; the (UN)SUBSCRIBEs of streams
opened or closed in the same moment go out together, one command for hundreds of channels
(a reconnect storm). ``subscribe`` returns once Redis has confirmed the subscription — a
stream subscribes *before* it replays from the database, so nothing published in between
is missed.

An event is parsed and encoded to SSE bytes once, however many streams receive it. A
listener's mailbox is bounded: a client that stops reading is closed rather than allowed
to grow the process (it reconnects with Last-Event-ID and replays from the database). When
the Redis connection drops and comes back, every listener is told to resynchronise from
the database, since events published meanwhile were lost.

A stream lives no longer than the token that opened it: the tick ends it at the token's
``exp`` (the browser reconnects, is refused, and the client fetches a new token).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque

import redis.asyncio as aioredis

from ..redis_keys import hub_control_channel, user_channel
from .sse import PING as PING_BYTES
from .sse import (
    encode_archived,
    encode_expired,
    encode_notification,
    encode_read,
    encode_removed,
    encode_seen,
    encode_unread,
    encode_updated,
)

log = logging.getLogger(__name__)

RESYNC = ("resync", None, b"")  # events may have been missed: catch up from the database
CLOSE = ("close", None, b"")  # stop the stream
PING = ("ping", None, PING_BYTES)  # a heartbeat comment
EXPIRED = ("expired", None, encode_expired())  # the token expired: say so, then stop the stream


CONFIRMED = True  # a channel's subscription Redis has confirmed
SUBSCRIBE_BATCH = 2000  # channels per SUBSCRIBE command


class Listener:
    """One stream's mailbox: (kind, notification id or None, SSE bytes) items, bounded.

    It also carries what the hub's once-a-second tick needs to keep every stream healthy
    without a timer per stream: when the stream last wrote (heartbeats), since when a
    write has been stuck (the send timeout; ``task`` is cancelled when it passes) and when
    its token expires (``expires``, seconds since the epoch; EXPIRED is put then).
    """

    __slots__ = ("user_id", "items", "limit", "waiter", "dropped", "last_write", "sending_since", "task", "timed_out",
                 "expires")

    def __init__(self, user_id: str, limit: int, expires: float | None = None) -> None:
        self.user_id = user_id
        self.items: deque = deque()
        self.limit = limit
        self.waiter: asyncio.Future | None = None
        self.dropped = False
        self.last_write = 0.0
        self.sending_since: float | None = None
        self.task: asyncio.Task | None = None
        self.timed_out = False
        self.expires = expires

    def put(self, item: tuple) -> None:
        if self.dropped:
            return
        if len(self.items) >= self.limit and item is not CLOSE:
            # The client is not reading: drop it; it replays from the database on reconnect.
            self.dropped = True
            self.items.clear()
            item = CLOSE
            log.warning("slow SSE client dropped", extra={"user_id": self.user_id})
        self.items.append(item)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def get(self) -> tuple:
        while not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.items.popleft()


class Hub:
    def __init__(self, settings, client: aioredis.Redis, mailbox_size: int = 256) -> None:
        self.settings = settings
        self.ping_seconds = settings.sse_ping_seconds
        self.send_timeout = settings.sse_send_timeout
        self.client = client
        self.mailbox_size = mailbox_size
        self.pubsub = client.pubsub()
        self.listeners: dict[str, set[Listener]] = {}
        # per channel: a future its first listeners await until Redis confirms the subscription, then CONFIRMED
        self.confirmed: dict[str, asyncio.Future | bool] = {}
        # (SUBSCRIBE or UNSUBSCRIBE, channel, the future a SUBSCRIBE's reply resolves), in order, not yet sent
        self.commands: deque[tuple[str, str, asyncio.Future | None]] = deque()
        # per channel, the futures of the SUBSCRIBEs sent and not yet answered (Redis answers in order): an
        # answer to one sent before an UNSUBSCRIBE does not confirm the SUBSCRIBE queued after it
        self.replies: dict[str, deque[asyncio.Future]] = {}
        self._sender: asyncio.Task | None = None
        self.control = hub_control_channel(settings)
        self._task: asyncio.Task | None = None
        self._ticker: asyncio.Task | None = None

    async def start(self) -> None:
        confirmed = self.confirmed[self.control] = asyncio.get_running_loop().create_future()
        self.replies[self.control] = deque([confirmed])
        await self.pubsub.subscribe(self.control)  # opens the connection the reader waits on
        self._task = asyncio.create_task(self._read(), name="notif-hub")
        self._ticker = asyncio.create_task(self._tick(), name="notif-hub-tick")
        await asyncio.wait_for(confirmed, 10)

    def close_all(self) -> None:
        """Ask every stream to finish (the process is shutting down)."""
        for listeners in self.listeners.values():
            for listener in listeners:
                listener.put(CLOSE)

    async def stop(self) -> None:
        self.close_all()
        for task in (self._task, self._ticker, self._sender):
            if task:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        await self.pubsub.aclose()

    @property
    def connections(self) -> int:
        return sum(len(v) for v in self.listeners.values())

    async def subscribe(self, user_id: str, expires: float | None = None) -> Listener:
        """A listener for the user's events (``expires``: when to end it, seconds since the epoch), once Redis
        has confirmed the process's subscription to the user's channel."""
        channel = user_channel(self.settings, user_id)
        listener = Listener(user_id, self.mailbox_size, expires)
        self.listeners.setdefault(channel, set()).add(listener)
        try:
            confirmed = self.confirmed.get(channel)
            if confirmed is None:
                confirmed = self.confirmed[channel] = asyncio.get_running_loop().create_future()
                self._command("SUBSCRIBE", channel, confirmed)
            if confirmed is not CONFIRMED:
                assert isinstance(confirmed, asyncio.Future)
                await asyncio.wait_for(asyncio.shield(confirmed), 10)
        except BaseException:
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
            confirmed = self.confirmed.pop(channel, None)
            if isinstance(confirmed, asyncio.Future) and not confirmed.done():
                confirmed.cancel()
            self._command("UNSUBSCRIBE", channel)

    def _command(self, command: str, channel: str, confirmed: asyncio.Future | None = None) -> None:
        """Queue a (UN)SUBSCRIBE; the sender sends those queued meanwhile together, one command per run of the
        same kind, in order (a storm's thousands of new users: a few commands, not one each)."""
        self.commands.append((command, channel, confirmed))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_commands(), name="notif-hub-subscribe")

    async def _send_commands(self) -> None:
        await asyncio.sleep(0)  # let the connects of this loop iteration queue theirs too
        while self.commands:
            command = self.commands[0][0]
            run: list[tuple[str, str, asyncio.Future | None]] = []
            while self.commands and self.commands[0][0] == command and len(run) < SUBSCRIBE_BATCH:
                run.append(self.commands.popleft())
            channels = [channel for _, channel, _ in run]
            if command == "SUBSCRIBE":
                for _, channel, confirmed in run:
                    assert confirmed is not None
                    self.replies.setdefault(channel, deque()).append(confirmed)
            try:
                if command == "SUBSCRIBE":
                    await self.pubsub.subscribe(*channels)
                else:
                    await self.pubsub.unsubscribe(*channels)
            except Exception as exc:  # the connection is down; on reconnect only listed channels return
                log.warning("could not %s %d channels", command.lower(), len(channels), exc_info=True)
                for _, channel, confirmed in run if command == "SUBSCRIBE" else ():
                    self._replied(channel)
                    if confirmed is not None and not confirmed.done():
                        confirmed.set_exception(ConnectionError(f"Redis refused the subscription: {exc}"))

    def _replied(self, channel: str) -> asyncio.Future | None:
        """The future of the oldest SUBSCRIBE of ``channel`` not yet answered, now answered."""
        waiting = self.replies.get(channel)
        if not waiting:
            return None
        confirmed = waiting.popleft()
        if not waiting:
            del self.replies[channel]
        return confirmed

    def _dispatch(self, message: dict) -> None:
        channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
        kind = message["type"]
        if kind == "subscribe":
            confirmed = self._replied(channel)  # (None: redis-py subscribing again after a reconnect)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
            if confirmed is not None and self.confirmed.get(channel) is confirmed:
                self.confirmed[channel] = CONFIRMED  # (a future per channel would be kept as long as it lives)
            return
        if kind != "message" or channel == self.control:
            return
        listeners = self.listeners.get(channel)
        if not listeners:
            return
        try:
            payload = json.loads(message["data"])
            if payload["event"] == "notification":
                notification = payload["notification"]
                item = ("notification", notification["id"], encode_notification(notification, payload["unread"]))
            elif payload["event"] == "read":
                item = ("read", None, encode_read(payload["ids"], payload["all"], payload["unread"],
                                                  payload.get("unseen")))
            elif payload["event"] == "seen":
                item = ("seen", None, encode_seen(payload["ids"], payload["all"], payload["unread"], payload["unseen"]))
            elif payload["event"] == "unread":
                item = ("unread", None, encode_unread(payload["ids"], payload["unread"], payload["unseen"]))
            elif payload["event"] == "archived":
                item = ("archived", None, encode_archived(payload["id"], payload["archived"], payload["unread"],
                                                          payload["unseen"], payload["total"]))
            elif payload["event"] == "updated":
                item = ("updated", None, encode_updated(payload["notification"], payload["unread"]))
            elif payload["event"] == "removed":
                item = ("removed", None, encode_removed(payload["id"], payload["unread"]))
            else:
                return
        except (ValueError, KeyError, TypeError):
            log.error("unreadable event on a user channel", extra={"channel": channel})
            return
        for listener in tuple(listeners):
            listener.put(item)

    async def _tick(self) -> None:
        """Once a second: heartbeats for quiet streams, cancel writes stuck too long, end streams whose
        token has expired."""
        loop = asyncio.get_running_loop()
        interval = min(1.0, self.ping_seconds / 2)
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            wall = time.time()
            for listeners in tuple(self.listeners.values()):
                for listener in tuple(listeners):
                    if listener.expires is not None and wall >= listener.expires:
                        listener.expires = None  # (once)
                        listener.put(EXPIRED)
                        continue
                    stuck = listener.sending_since
                    if stuck is not None and now - stuck > self.send_timeout and not listener.timed_out:
                        listener.timed_out = True
                        if listener.task is not None:
                            listener.task.cancel()
                    elif stuck is None and now - listener.last_write >= self.ping_seconds and not listener.items:
                        listener.put(PING)

    async def _read(self) -> None:
        failures = 0
        while True:
            try:
                message = await self.pubsub.get_message(timeout=1.0)
                if failures:
                    log.info("Redis pub/sub is back; streams resynchronise from the database")
                    for listeners in self.listeners.values():
                        for listener in listeners:
                            listener.put(RESYNC)
                    failures = 0
                if message is not None:
                    self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.warning("Redis pub/sub read failed; retrying", exc_info=failures == 1)
                await asyncio.sleep(min(5.0, 0.1 * 2 ** failures))
