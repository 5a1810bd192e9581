"""``GET /events``: a user's live notifications over Server-Sent Events, without gaps.

On connect the stream subscribes to the user's channel first, then — given
``Last-Event-ID`` (header, or ``?last_event_id=``) — replays from the database what the
client missed, then goes on live, dropping live copies of what it just replayed.

"What the client missed" is every notification with a larger id, *and* any older one
whose in-app event was published after the client's last one: two ingest transactions can
commit out of id order, so the last id alone could hide a notification committed late.

After a replay (a reconnect with ``Last-Event-ID``, or catching up after Redis came back) it
sends a ``counts`` event: the user's unread, unseen and total counts now, since state
changes (read, seen, archived) made while the client was away are not replayed.

The stream ends at its token's ``exp`` (the hub's tick): the browser's EventSource then
reconnects, gets 401, and the client resumes with a new token and ``Last-Event-ID``.

This is a plain ASGI endpoint rather than a framework response: a stream is one coroutine,
one small task watching for the disconnect, and a mailbox — measured at a fraction of the
memory per connection of a general-purpose SSE response (docs/benchmarks.md).
"""
from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import parse_qs

from anyio import to_thread

from ..auth import AuthError
from ..monitoring.metrics import SSE_CONNECTIONS
from .deps import verify_expiry
from .hub import CLOSE, Hub, Listener
from .replay import REPLAY_PAGE, ReplayBatcher, missed
from .sse import encode_counts, encode_notification, encode_open
from .stream_slots import StreamsFull

log = logging.getLogger(__name__)


async def _json(send, status: int, body: dict, headers: list | None = None) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": payload})


async def _watch_disconnect(receive, listener: Listener) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    listener.put(CLOSE)


class Stream:
    """One connected client."""

    def __init__(self, hub: Hub, listener: Listener, send, settings, replays: ReplayBatcher) -> None:
        self.hub, self.listener, self.send, self.settings, self.replays = hub, listener, send, settings, replays
        self.sent: set[int] = set()  # ids sent on this connection (a live copy of a replayed one is dropped)

    async def write(self, chunk: bytes) -> None:
        listener = self.listener
        loop = asyncio.get_running_loop()
        listener.sending_since = loop.time()  # the hub's tick cancels a write stuck past the send timeout
        await self.send({"type": "http.response.body", "body": chunk, "more_body": True})
        listener.sending_since = None
        listener.last_write = loop.time()

    async def replay(self, after: int) -> int:
        """Send what the client missed since ``after``, then the counts now; returns the newest id sent.

        The first page comes from the process's batcher (notif.web.replay: a reconnect storm shares its
        queries), any further page from :func:`missed` alone."""
        first = True
        while True:
            if first:
                rows, counted = await self.replays.missed(self.listener.user_id, after)
                rows = [r for r in rows if r["id"] not in self.sent]
                first = False
            else:
                rows, counted = await to_thread.run_sync(missed, self.listener.user_id, after, self.sent)
            for row in rows:
                self.sent.add(row["id"])
                await self.write(encode_notification(row, counted["unread"]))
            newest = max((r["id"] for r in rows), default=after)
            if newest == after or len(rows) < REPLAY_PAGE:
                await self.write(encode_counts(counted["unread"], counted["unseen"], counted["total"]))
                return max(after, newest)
            after = newest

    async def run(self, after: int | None, extra: tuple = ()) -> None:
        await self.send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"), *extra]})
        await self.write(encode_open(self.settings.sse_retry_ms))
        last = await self.replay(after) if after is not None else None
        while True:
            kind, notification_id, chunk = await self.listener.get()
            if kind in ("close", "expired"):
                if kind == "expired":
                    await self.write(chunk)
                await self.send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            if kind == "resync":
                last = await self.replay(last or 0)
                continue
            if notification_id is not None:
                if notification_id in self.sent:
                    continue
                self.sent.add(notification_id)
                last = notification_id if last is None else max(last, notification_id)
            await self.write(chunk)


def _last_event_id(scope, query: dict) -> int | None:
    raw = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"last-event-id"), None) or query.get("last_event_id")
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ValueError(raw)
    return int(raw)


class EventsEndpoint:
    """``GET /events`` as a raw ASGI app (Starlette routes a class instance as one)."""

    async def __call__(self, scope, receive, send) -> None:
        await events(scope, receive, send)


async def events(scope, receive, send, extra: tuple = ()) -> None:
    """The endpoint; ``extra``: headers every answer carries (the front door's security and CORS headers)."""
    app = scope["app"]
    settings = app.state.settings
    query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
    headers = dict(scope["headers"])
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    token = query.get("token")
    try:
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer":
                raise AuthError("Authorization header must be `Bearer <jwt>`")
            token = value.strip()
        user_id, expires = verify_expiry(settings, token)
    except AuthError as exc:
        return await _json(send, 401, {"error": "unauthorized", "reason": str(exc)}, [(b"www-authenticate", b"Bearer"), *extra])
    if not settings.feature("sse"):
        return await _json(send, 404, {"error": "feature_off", "reason": "live events are turned off "
                                       "(NOTIF_FEATURES / NOTIF_FEATURE_SSE); poll GET /api/notifications"}, [*extra])
    try:
        after = _last_event_id(scope, query)
    except ValueError:
        return await _json(send, 422, {"detail": [{"loc": ["query", "last_event_id"], "type": "value_error",
                                                   "msg": "Last-Event-ID must be a notification id (digits)"}]}, [*extra])
    slots = app.state.live.slots
    try:
        slot = await slots.acquire(user_id)  # NOTIF_SSE_MAX_STREAMS and NOTIF_SSE_MAX_PER_USER
    except StreamsFull as exc:
        return await _json(send, 429, {"error": "too_many_streams", "reason": exc.reason},
                           [(b"retry-after", str(exc.retry_after).encode()), *extra])
    except Exception as exc:
        return await _json(send, 503, {"error": "unavailable", "reason": f"live events are unavailable: {exc}"},
                           [(b"retry-after", b"5"), *extra])
    try:
        await _stream(app, settings, user_id, expires, after, receive, send, extra)
    finally:
        await slots.release(slot)


async def _stream(app, settings, user_id: str, expires: int, after: int | None, receive, send, extra: tuple) -> None:
    try:
        hub = await app.state.live.hub()
        listener = await hub.subscribe(user_id, expires)  # before the replay: nothing published meanwhile is lost
    except Exception as exc:
        return await _json(send, 503, {"error": "unavailable", "reason": f"live events are unavailable: {exc}"},
                           [(b"retry-after", b"5"), *extra])
    watcher = asyncio.ensure_future(_watch_disconnect(receive, listener))
    listener.task = asyncio.current_task()
    SSE_CONNECTIONS.inc()
    try:
        await Stream(hub, listener, send, settings, app.state.live.replays).run(after, extra)
    except asyncio.CancelledError:
        if not listener.timed_out:
            raise  # the server is stopping
        log.warning("SSE client dropped: it did not take an event within the send timeout",
                    extra={"user_id": user_id})
    finally:
        SSE_CONNECTIONS.dec()
        watcher.cancel()
        await hub.unsubscribe(listener)
