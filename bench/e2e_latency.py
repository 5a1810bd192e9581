"""End-to-end latency: SQS send → poller → ingest (PostgreSQL) → deliver → Redis → web → SSE client.

Messages go out at a fixed rate (default 300/s, about what moto's SQS server sustains here,
for 30 s) with their send time inside; the SSE clients (one per user) note when each
arrives. Baseline in the same run, at the same rate, on the same moto server: SQS alone
(send → long-poll receive → delete), the floor under anything built on this transport.

At 300/s the benchmark's own parts would otherwise distort what it measures: one boto3 call
costs about a millisecond of CPU, so the sends are spread over several threads on one
absolute schedule (``BENCH_E2E_SENDERS``, default one per 100 msg/s), and the SSE clients
run in a process of their own (:func:`sse_process`) so their arrival stamps do not wait for
the senders' GIL. moto scans the whole queue on every call, so the queue must stay near
empty: ``BENCH_E2E_POLLERS`` runs that many ``notif poll`` processes (default 1).
"""
from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import NamedTuple

from .common import (
    SECRET,
    Procs,
    database,
    free_port,
    moto_sqs,
    notif_env,
    percentiles,
    say,
    sqs_client,
    sqs_env,
    wait_for,
)

USERS = 10
#: messages waiting on moto's queue past which a paced run gives up (see :class:`FellBehind`)
MAX_DEPTH = 1500


class FellBehind(RuntimeError):
    """moto scans its whole queue on every call, so once consumers fall behind each call gets
    slower and they never catch up (13 msg/s at 2,000 queued): a run that got there measures
    moto, not notif, and would take many minutes; it stops instead."""


def paced_send(sqs, url: str, rate: float, seconds: float, body_for) -> int:
    """Send rate×seconds messages on an absolute schedule (no drift); returns how many."""
    total = int(rate * seconds)
    start = time.monotonic()
    for i in range(total):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body_for(i)))
        if i and i % int(rate * 5) == 0:
            say(f"    sent {i} / {total}")
    return total


def paced_senders(endpoint: str, url: str, rate: float, seconds: float, body_for, senders: int) -> int:
    """:func:`paced_send` from ``senders`` threads, each its own boto3 client, sharing one
    absolute schedule (thread k sends messages k, k+senders, …): the rate holds although one
    boto3 call costs about as much CPU as the gap between two sends at 300/s."""
    total = int(rate * seconds)
    start = time.monotonic()

    def run(k: int) -> None:
        sqs = sqs_client(endpoint)
        for i in range(k, total, senders):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body_for(i)))
            if k == 0 and i and i % int(rate * 5) < senders:
                say(f"    sent {i} / {total}")

    threads = [threading.Thread(target=run, args=(k,)) for k in range(senders)]
    for t in threads:
        t.start()
    watch = sqs_client(endpoint)
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(2.0)
        depth = int(watch.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
                    ["Attributes"]["ApproximateNumberOfMessages"])
        if depth > MAX_DEPTH:  # moto's calls cost O(queue depth): past this it only gets slower
            raise FellBehind(f"{depth} messages waiting on moto's queue at {rate:g}/s: the consumers fell behind "
                             f"(machine load average {os.getloadavg()[0]:.1f}); try a lower BENCH_RATE or more "
                             "BENCH_E2E_POLLERS")
    return total


def sqs_alone(endpoint: str, rate: float, seconds: float, warmup: float, senders: int = 1,
              consumers: int = 1) -> dict:
    sqs = sqs_client(endpoint)
    url = sqs.create_queue(QueueName=f"bench-floor-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    latencies, stop = [], threading.Event()

    def consume():
        consumer = sqs_client(endpoint)
        while not stop.is_set():
            batch = consumer.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
            now = time.time()
            for m in batch:
                body = json.loads(m["Body"])
                if body["i"] >= warmup * rate:
                    latencies.append(now - body["t"])
            if batch:
                consumer.delete_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])

    threads = [threading.Thread(target=consume) for _ in range(consumers)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    total = paced_senders(endpoint, url, rate, seconds, lambda i: {"i": i, "t": time.time()}, senders)
    sent_per_s = total / (time.monotonic() - started)
    try:
        wait_for(lambda: len(latencies) >= total - int(warmup * rate), 60, "the SQS-only messages")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return {**_ms(latencies), "sent_per_s": round(sent_per_s)}


async def open_stream(port: int, token: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``GET /events`` with ``token`` on a raw socket (as many as needed, none of an HTTP client's weight).
    Keep the writer as long as the stream: a collected writer closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /events?token={token} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


async def read_events(reader: asyncio.StreamReader, connected: asyncio.Event, on_data) -> None:
    """Read one SSE stream until it ends: ``connected`` set at its ``: connected`` comment, ``on_data(payload,
    arrival time)`` for each ``data:`` line (chunked encoding interleaves size lines; a data line is whole)."""
    buffer = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            return
        now = time.time()
        buffer += chunk
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            if b": connected" in block:
                connected.set()
            for line in block.split(b"\n"):
                if line.startswith(b"data: "):
                    on_data(json.loads(line[6:]), now)


async def sse_clients(port: int, arrivals: list, ready: threading.Event, done: threading.Event) -> None:
    from notif.auth import make_token

    async def one(user: str, connected: asyncio.Event):
        reader, _writer = await open_stream(port, make_token(SECRET, user))
        await read_events(reader, connected, lambda payload, now: arrivals.append(
            (payload["data"]["i"], now - payload["data"]["t"])))

    events = [asyncio.Event() for _ in range(USERS)]
    tasks = [asyncio.create_task(one(f"lat-{u}", events[u])) for u in range(USERS)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 30)
    ready.set()
    while not done.is_set():
        await asyncio.sleep(0.2)
    for t in tasks:
        t.cancel()


class Arrival(NamedTuple):
    i: int            # the message's number (``data.i``)
    latency_s: float  # arrival time − send time (both time.time(), one machine)
    user: str         # the stream it arrived on
    at: float         # arrival time (time.time())


async def _streams(ports: list[int], users: list[str], expected: int, timeout: float, conn) -> list[Arrival]:
    """One SSE stream per user, user k on ``ports[k % len(ports)]``; until ``expected``
    notification events have arrived (or ``timeout`` after the first send)."""
    from notif.auth import make_token
    arrivals: list[Arrival] = []
    enough = asyncio.Event()

    async def one(k: int, user: str, connected: asyncio.Event):
        reader, _writer = await open_stream(ports[k % len(ports)], make_token(SECRET, user))

        def arrived(payload: dict, now: float) -> None:
            data = payload["data"]
            if "i" in data:
                arrivals.append(Arrival(data["i"], now - data["t"], user, now))
                if len(arrivals) >= expected:
                    enough.set()

        await read_events(reader, connected, arrived)

    events = [asyncio.Event() for _ in users]
    tasks = [asyncio.create_task(one(k, u, events[k])) for k, u in enumerate(users)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 30)
    conn.send("ready")
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "go": the first send
    deadline = time.monotonic() + timeout
    while not enough.is_set() and not conn.poll() and time.monotonic() < deadline:  # or "stop"
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # anything extra (a duplicate) still on its way
    for t in tasks:
        t.cancel()
    return arrivals


def _stream_main(ports: list[int], users: list[str], expected: int, timeout: float, conn) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    conn.send([tuple(a) for a in asyncio.run(_streams(ports, users, expected, timeout, conn))])


class SSEProcess:
    """The SSE clients in a process of their own (spawned): connected when :meth:`start`
    returns; :meth:`go` when the first message is sent; :meth:`arrivals` when done."""

    def __init__(self, ports: list[int], users: list[str], expected: int, timeout: float = 3600):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_stream_main, args=(ports, users, expected, timeout, child), daemon=True)

    def start(self) -> SSEProcess:
        self.proc.start()
        if not self.conn.poll(60) or self.conn.recv() != "ready":
            raise RuntimeError("the SSE clients did not connect")
        return self

    def go(self) -> None:
        self.conn.send("go")

    def stop(self) -> None:
        """End before ``expected`` arrivals (the caller knows nothing more is coming)."""
        try:
            self.conn.send("stop")
        except OSError:  # the clients already ended: everything expected had arrived
            pass

    def arrivals(self, wait: float = 120) -> list[Arrival]:
        """What arrived, once ``expected`` have, or ``wait`` seconds from now (a loaded
        machine may still be sending long after the schedule said; count from the last send)."""
        if not self.conn.poll(wait):
            self.stop()
        if not self.conn.poll(60):
            raise RuntimeError("the SSE clients did not report")
        result = [Arrival(*a) for a in self.conn.recv()]
        self.proc.join(10)
        return result


def _ms(latencies: list[float]) -> dict:
    return {k: round(v * 1000, 1) if k != "n" else v for k, v in percentiles(latencies).items()}


def notif_pipeline(endpoint: str, rate: float, seconds: float, warmup: float, logdir: Path, senders: int = 1,
                   pollers: int = 1) -> dict:
    sqs = sqs_client(endpoint)
    tag = uuid.uuid4().hex[:6]
    queues = sqs_env(sqs, endpoint, tag)
    total = int(rate * seconds)
    with database() as db_url:
        port = free_port()
        with Procs(notif_env(db_url, tag, queues), logdir) as procs:
            procs.worker()
            procs.pipeline(port)
            for n in range(1, pollers):
                procs.start(f"poller-{n + 1}", [sys.executable, "-m", "notif.cli", "poll"])
            clients = SSEProcess([port], [f"lat-{u}" for u in range(USERS)], total).start()
            clients.go()
            started = time.monotonic()
            paced_senders(endpoint, queues["AWS_SQS_NOTIFICATION_QUEUE_URL"], rate, seconds, lambda i: {
                "user_id": f"lat-{i % USERS}", "title": "bench", "message": f"message {i}",
                "data": {"i": i, "t": time.time()}}, senders)
            sent_per_s = total / (time.monotonic() - started)
            arrivals = clients.arrivals()
    if len({a.i for a in arrivals}) < total:
        raise RuntimeError(f"only {len({a.i for a in arrivals})} of {total} notifications reached the SSE clients")
    return {**_ms([a.latency_s for a in arrivals if a.i >= warmup * rate]), "sent_per_s": round(sent_per_s)}


def main(rate: float = 300, seconds: float = 30, warmup: float = 3, senders: int | None = None,
         pollers: int | None = None) -> dict:
    senders = senders or int(os.environ.get("BENCH_E2E_SENDERS", "0")) or max(1, math.ceil(rate / 100))
    pollers = pollers or int(os.environ.get("BENCH_E2E_POLLERS", "1"))
    logdir = Path(tempfile.mkdtemp(prefix="notif-bench-"))
    say(f"End-to-end latency at {rate:g} msg/s for {seconds:g} s, {senders} sender threads, {pollers} poller(s) "
        f"(first {warmup:g} s not counted; logs in {logdir}; load average {os.getloadavg()[0]:.2f})")
    with moto_sqs() as endpoint:
        say("  baseline: SQS alone (send → long-poll receive)")
        floor = sqs_alone(endpoint, rate, seconds, warmup, senders, pollers)
        say(f"    p50 {floor['p50']} ms, p99 {floor['p99']} ms")
        say("  notif: SQS → poller → worker → PostgreSQL → Redis → web → SSE")
        ours = notif_pipeline(endpoint, rate, seconds, warmup, logdir, senders, pollers)
        say(f"    p50 {ours['p50']} ms, p99 {ours['p99']} ms")
    return {"rate_per_s": rate, "seconds": seconds, "senders": senders, "pollers": pollers,
            "load_average": round(os.getloadavg()[0], 2), "baseline_sqs_ms": floor, "notif_ms": ours,
            "added_p50_ms": round(ours["p50"] - floor["p50"], 1), "added_p99_ms": round(ours["p99"] - floor["p99"], 1),
            "ratio_p99": round(ours["p99"] / floor["p99"], 2), "target_p99_ms": 100, "met": ours["p99"] < 100}


def summary(result: dict) -> list[str]:
    ours, floor = result["notif_ms"], result["baseline_sqs_ms"]
    return [f"  e2e latency @ {result['rate_per_s']:g}/s   notif p50 {ours['p50']} ms, p99 {ours['p99']} ms "
            f"(target < 100: {'met' if result['met'] else 'missed'})   (SQS alone p50 {floor['p50']} ms, "
            f"p99 {floor['p99']} ms; ratio {result['ratio_p99']}; sent at {ours['sent_per_s']:,}/s, load average "
            f"{result['load_average']})"]


if __name__ == "__main__":
    out = main(float(os.environ.get("BENCH_RATE", "300")), float(os.environ.get("BENCH_SECONDS", "30")))
    for line in summary(out):
        say(line)
    print(json.dumps(out, indent=2))
