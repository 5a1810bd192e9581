"""End-to-end latency: SQS send → poller → ingest (PostgreSQL) → deliver → Redis → web → SSE client.

Messages go out at a fixed rate (default 100/s for 30 s) with their send time inside; the
SSE clients (one per user) note when each arrives. Baseline in the same run, at the same
rate, on the same moto server: SQS alone (send → long-poll receive → delete), the floor
under anything built on this transport.
"""
from __future__ import annotations

import asyncio
import json
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

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


def sqs_alone(endpoint: str, rate: float, seconds: float, warmup: float) -> dict:
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

    thread = threading.Thread(target=consume)
    thread.start()
    total = paced_send(sqs, url, rate, seconds, lambda i: {"i": i, "t": time.time()})
    wait_for(lambda: len(latencies) >= total - int(warmup * rate), 60, "the SQS-only messages")
    stop.set()
    thread.join()
    return {k: round(v * 1000, 1) if k != "n" else v for k, v in percentiles(latencies).items()}


async def sse_clients(port: int, arrivals: list, ready: threading.Event, done: threading.Event) -> None:
    from notif.auth import make_token

    async def one(user: str, connected: asyncio.Event):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /events?token={make_token(SECRET, user)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        buffer = b""
        while not done.is_set():
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
                    # chunked transfer encoding interleaves size lines; the data line is whole
                    if line.startswith(b"data: "):
                        payload = json.loads(line[6:])
                        arrivals.append((payload["data"]["i"], now - payload["data"]["t"]))

    events = [asyncio.Event() for _ in range(USERS)]
    tasks = [asyncio.create_task(one(f"lat-{u}", events[u])) for u in range(USERS)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 30)
    ready.set()
    while not done.is_set():
        await asyncio.sleep(0.2)
    for t in tasks:
        t.cancel()


def notif_pipeline(endpoint: str, rate: float, seconds: float, warmup: float, logdir: Path) -> dict:
    sqs = sqs_client(endpoint)
    tag = uuid.uuid4().hex[:6]
    queues = sqs_env(sqs, endpoint, tag)
    with database() as db_url:
        port = free_port()
        with Procs(notif_env(db_url, tag, queues), logdir) as procs:
            procs.worker()
            procs.pipeline(port)
            arrivals: list = []
            ready, done = threading.Event(), threading.Event()
            client = threading.Thread(target=lambda: asyncio.run(sse_clients(port, arrivals, ready, done)))
            client.start()
            ready.wait(30)
            total = paced_send(sqs, queues["AWS_SQS_NOTIFICATION_QUEUE_URL"], rate, seconds, lambda i: {
                "user_id": f"lat-{i % USERS}", "title": "bench", "message": f"message {i}",
                "data": {"i": i, "t": time.time()}})
            try:
                wait_for(lambda: len(arrivals) >= total, 120, "every notification at the SSE clients")
            finally:
                done.set()
                client.join(10)
    latencies = [lat for i, lat in arrivals if i >= warmup * rate]
    return {k: round(v * 1000, 1) if k != "n" else v for k, v in percentiles(latencies).items()}


def main(rate: float = 100, seconds: float = 30, warmup: float = 3) -> dict:
    logdir = Path(tempfile.mkdtemp(prefix="notif-bench-"))
    say(f"End-to-end latency at {rate:g} msg/s for {seconds:g} s (first {warmup:g} s not counted; logs in {logdir})")
    with moto_sqs() as endpoint:
        say("  baseline: SQS alone (send → long-poll receive)")
        floor = sqs_alone(endpoint, rate, seconds, warmup)
        say(f"    p50 {floor['p50']} ms, p99 {floor['p99']} ms")
        say("  notif: SQS → poller → worker → PostgreSQL → Redis → web → SSE")
        ours = notif_pipeline(endpoint, rate, seconds, warmup, logdir)
        say(f"    p50 {ours['p50']} ms, p99 {ours['p99']} ms")
    return {"rate_per_s": rate, "seconds": seconds, "baseline_sqs_ms": floor, "notif_ms": ours,
            "added_p50_ms": round(ours["p50"] - floor["p50"], 1), "added_p99_ms": round(ours["p99"] - floor["p99"], 1)}


if __name__ == "__main__":
    print(json.dumps(main(float(os.environ.get("BENCH_RATE", "100")), float(os.environ.get("BENCH_SECONDS", "30"))),
                     indent=2))
