"""A lean SSE load client: one process's share of the streams, driven by its parent over stdin.

``python -m bench.sse_client HOST PORT SOURCE_IP FIRST COUNT MODE SECRET USERS`` holds streams
``FIRST`` … ``FIRST+COUNT-1``, stream i for user ``u{i % USERS}``, its sockets bound to ``SOURCE_IP`` (a
127.0.0.x of its own, so that ephemeral ports do not run out across processes). ``MODE`` is
``notif`` (``/events?token=…``, a replay ends with ``event: counts``) or ``naive`` (the
sse-starlette baseline: no replay). One JSON line answers each command read from stdin:

- ``connect K``: open streams until K are open here → ``{"open", "errors", "seconds"}``
- ``mark``: forget the arrivals so far; ``arrivals`` then waits until every open stream has had
  an ``event: notification`` since → ``{"received", "first", "last"}`` (``time.time()``)
- ``drop``: close every stream → ``{"dropped"}``
- ``storm``: reopen every stream at once with ``Last-Event-ID`` (its last id seen) and read
  until the replay is done → ``{"done", "errors", "start", "last", "replayed", "min_replayed"}``
"""
from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Callable

EVENT = b"event: notification"
ID = re.compile(rb"(?:^|\n)id: (\d+)\r?\n")
OPEN_TIMEOUT = 60.0  # seconds for one stream to open (and replay): past it, it counts as an error
CONNECT_AT_ONCE = 200  # per process, while filling up (a storm opens every stream at once)


class Stream:
    __slots__ = ("user", "token", "writer", "last_id", "arrived", "task", "replayed")

    def __init__(self, user: str, token: str) -> None:
        self.user, self.token = user, token
        self.writer: asyncio.StreamWriter | None = None
        self.last_id: int | None = None
        self.arrived: float | None = None
        self.task: asyncio.Task | None = None
        self.replayed = 0


class Client:
    def __init__(self, host: str, port: int, source: str, streams: list[Stream], mode: str) -> None:
        self.host, self.port, self.source, self.streams, self.mode = host, port, source, streams, mode
        self.open: list[Stream] = []
        self.opened: Callable[[], None] = lambda: None  # told when a stream is open
        self.waiting = 0  # streams yet to receive an event (arrivals)
        self.arrived = asyncio.Event()

    async def _open(self, stream: Stream, replay: bool) -> asyncio.StreamReader:
        """Connect, send the request, read until connected (and, with ``replay``, until the replay is done)."""
        reader, writer = await asyncio.open_connection(self.host, self.port, local_addr=(self.source, 0), limit=1 << 20)
        path = f"/events?token={stream.token}" if self.mode == "notif" else "/events"
        last = f"Last-Event-ID: {stream.last_id}\r\n" if replay and stream.last_id is not None else ""
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAccept: text/event-stream\r\n{last}\r\n".encode())
        stream.writer = writer
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            writer.close()
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
        until = b"event: counts" if replay and self.mode == "notif" else b": connected"
        buffer = b""
        while until not in buffer:
            chunk = await reader.read(65536)
            if not chunk:
                raise ConnectionError("closed before connected")
            buffer += chunk
        stream.replayed = buffer.count(EVENT)
        stream.arrived = time.time()  # (for a storm: when its replay was done)
        found = ID.findall(buffer)
        if found:
            stream.last_id = int(found[-1])
        return reader

    async def _read(self, stream: Stream, reader: asyncio.StreamReader) -> None:
        tail = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            buffer = tail + chunk
            if EVENT in buffer:
                if stream.arrived is None:
                    stream.arrived = time.time()
                    self.waiting -= 1
                    if self.waiting == 0:
                        self.arrived.set()
                found = ID.findall(buffer)
                if found:
                    stream.last_id = int(found[-1])
                tail = b""  # (seen: not to be counted again)
            else:
                tail = buffer[-64:]

    async def _hold(self, stream: Stream, replay: bool, gate: asyncio.Semaphore | None) -> None:
        if gate is not None:
            async with gate:
                reader = await asyncio.wait_for(self._open(stream, replay), OPEN_TIMEOUT)
        else:
            reader = await asyncio.wait_for(self._open(stream, replay), OPEN_TIMEOUT)
        self.open.append(stream)
        stream.task = asyncio.current_task()
        self.opened()
        await self._read(stream, reader)

    async def _start(self, streams: list[Stream], replay: bool, gate: asyncio.Semaphore | None) -> dict:
        """Open ``streams``; each goes on reading in its task. Waits until every one is open or failed."""
        before = len(self.open)
        errors: list[str] = []
        settled = asyncio.Event()

        def check(task: asyncio.Task | None = None) -> None:
            if task is not None and not task.cancelled() and task.exception() is not None:
                errors.append(str(task.exception()) or type(task.exception()).__name__)
            if len(self.open) - before + len(errors) >= len(streams):
                settled.set()

        self.opened = check
        for stream in streams:
            asyncio.ensure_future(self._hold(stream, replay, gate)).add_done_callback(check)
        check()
        await settled.wait()
        return {"open": len(self.open), "errors": len(errors), "error_kinds": sorted(set(errors))[:5]}

    async def connect(self, k: int) -> dict:
        started = time.monotonic()
        todo = self.streams[len(self.open):k]
        result = await self._start(todo, False, asyncio.Semaphore(CONNECT_AT_ONCE))
        return {**result, "seconds": round(time.monotonic() - started, 2)}

    async def arrivals(self) -> dict:
        if self.waiting:
            await self.arrived.wait()
        times = [s.arrived for s in self.open if s.arrived is not None]
        return {"received": len(times), "first": min(times), "last": max(times)}

    def mark(self) -> dict:
        for stream in self.open:
            stream.arrived = None
        self.waiting = len(self.open)
        self.arrived.clear()
        return {"marked": len(self.open)}

    async def drop(self) -> dict:
        dropped, self.open = self.open, []
        for stream in dropped:
            if stream.task is not None:
                stream.task.cancel()
            if stream.writer is not None:
                stream.writer.close()
        await asyncio.sleep(0)
        return {"dropped": len(dropped)}

    async def storm(self, streams: list[Stream]) -> dict:
        start = time.time()
        result = await self._start(streams, True, None)
        replayed = [s.replayed for s in self.open]
        done = sorted(s.arrived - start for s in self.open if s.arrived is not None)
        pick = [round(done[min(len(done) - 1, int(q * len(done)))], 2) for q in (0.5, 0.9, 0.99)] if done else []
        return {"p50_p90_p99": pick, "done": result["open"], "errors": result["errors"], "error_kinds": result["error_kinds"],
                "start": start, "last": time.time(), "replayed": sum(replayed), "min_replayed": min(replayed, default=0)}


async def serve(client: Client) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    held: list[Stream] = []
    while line := (await reader.readline()).decode().split():
        command = line[0]
        if command == "connect":
            answer = await client.connect(int(line[1]))
        elif command == "mark":
            answer = client.mark()
        elif command == "arrivals":
            answer = await client.arrivals()
        elif command == "drop":
            held = list(client.open)
            answer = await client.drop()
        elif command == "storm":
            answer = await client.storm(held)
        else:
            break
        print(json.dumps(answer), flush=True)


def main() -> None:
    host, port, source, first, count, mode = sys.argv[1:7]
    from notif.auth import make_token
    secret, users = sys.argv[7], int(sys.argv[8])
    tokens: dict[str, str] = {}
    streams = []
    for i in range(int(first), int(first) + int(count)):
        user = f"u{i % users}"
        if user not in tokens:
            tokens[user] = make_token(secret, user) if mode == "notif" else ""
        streams.append(Stream(user, tokens[user]))
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(Client(host, int(port), source, streams, mode)))


if __name__ == "__main__":
    main()
