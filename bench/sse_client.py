"""A lean SSE load client: N raw asyncio connections to /events, timing one event's arrival.

Run as a separate process (``python bench/sse_client.py HOST PORT TOKEN N``); it prints one
JSON line per phase on stdout: {"connected": N} once every stream has said ``: connected``,
then {"received": N, "times": [...]} with each client's arrival time (time.time()) of the
first ``event: notification`` after that.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time


async def client(host: str, port: int, path: str, connected: asyncio.Event, counter: list, arrivals: list,
                 ready: asyncio.Event, batch: asyncio.Semaphore) -> None:
    async with batch:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
        await writer.drain()
        buffer = b""
        while b": connected" not in buffer:
            chunk = await reader.read(4096)
            if not chunk:
                raise ConnectionError("closed before connected")
            buffer += chunk
    counter[0] += 1
    if counter[0] == counter[1]:
        connected.set()
    buffer = b""
    while b"event: notification" not in buffer:
        chunk = await reader.read(65536)
        if not chunk:
            return
        buffer += chunk
        buffer = buffer[-256:]
    arrivals.append(time.time())
    if len(arrivals) == counter[1]:
        ready.set()
    await ready.wait()
    writer.close()


async def main(host: str, port: int, token: str, n: int) -> None:
    connected, ready = asyncio.Event(), asyncio.Event()
    counter, arrivals = [0, n], []
    batch = asyncio.Semaphore(200)  # connect 200 at a time
    path = f"/events?token={token}"
    tasks = [asyncio.create_task(client(host, port, path, connected, counter, arrivals, ready, batch)) for _ in range(n)]
    last = -1
    while not connected.is_set():
        await asyncio.sleep(0.5)
        failed = [t for t in tasks if t.done() and t.exception()]
        if failed:
            raise failed[0].exception()
        if counter[0] != last:
            print(json.dumps({"progress": counter[0]}), flush=True)
            last = counter[0]
    print(json.dumps({"connected": n}), flush=True)
    await ready.wait()
    print(json.dumps({"received": len(arrivals), "first": min(arrivals), "last": max(arrivals)}), flush=True)
    for t in tasks:
        t.cancel()


if __name__ == "__main__":
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    host, port, token, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    asyncio.run(main(host, port, token, n))
