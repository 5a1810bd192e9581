"""SSE capacity of one web process: RSS per connection, and one event's time to reach every client.

Baseline in the same run: the straightforward Starlette + sse-starlette server
(bench/naive_sse.py), same uvicorn (uvloop, httptools), same Redis, same client.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from .common import REDIS_URL, SECRET, Procs, database, free_port, port_open, rss_kib, say, wait_for


def run_clients(port: int, token: str, n: int, server_pid: int, publish) -> dict:
    """Connect n clients, measure the server's RSS growth, publish one event, time its arrival."""
    rss_before = rss_kib(server_pid)
    client = subprocess.Popen([sys.executable, "-m", "bench.sse_client", "127.0.0.1", str(port), token, str(n)],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
    shown = 0
    for line in client.stdout:
        message = json.loads(line)
        if "progress" in message and message["progress"] - shown >= max(1, n // 5):
            shown = message["progress"]
            say(f"    {shown:>6} / {n} connected")
        if "connected" in message:
            break
    time.sleep(1.0)  # let allocations settle
    rss_after = rss_kib(server_pid)
    published = time.time()
    publish()
    result = json.loads(client.stdout.readline())
    client.wait(30)
    return {"clients": n, "rss_before_kib": rss_before, "rss_after_kib": rss_after,
            "kib_per_connection": round((rss_after - rss_before) / n, 1),
            "fanout_ms": round((result["last"] - published) * 1000, 1),
            "first_ms": round((result["first"] - published) * 1000, 1)}


def naive(n: int, logdir: Path) -> dict:
    import redis
    port, channel = free_port(), f"naive-{uuid.uuid4().hex[:6]}"
    with Procs({"REDIS_URL": REDIS_URL, "NAIVE_CHANNEL": channel}, logdir) as procs:
        server = procs.start("naive", [sys.executable, "-m", "uvicorn", "bench.naive_sse:app", "--port", str(port),
                                       "--log-level", "warning"])
        wait_for(lambda: port_open(port), 30, "the baseline server")
        r = redis.Redis.from_url(REDIS_URL)
        payload = json.dumps({"id": 1, "title": "hello", "message": "everyone"})
        return run_clients(port, "x", n, server.pid, lambda: r.publish(channel, payload))


def notif(n: int, logdir: Path, db_url: str) -> dict:
    import redis

    from notif.auth import make_token
    port, prefix = free_port(), f"bench-{uuid.uuid4().hex[:6]}"
    env = {"DATABASE_URL": db_url, "REDIS_URL": REDIS_URL, "NOTIF_REDIS_PREFIX": prefix, "NOTIF_JWT_SECRET": SECRET,
           "NOTIF_STATE_DIR": "/nonexistent", "NOTIF_LOG_LEVEL": "WARNING",
           # every client is one user, on purpose (one event fans out to all): caps raised to n, still counted
           "NOTIF_SSE_MAX_PER_USER": str(n), "NOTIF_SSE_MAX_STREAMS": str(n)}
    with Procs(env, logdir) as procs:
        server = procs.start("web", [sys.executable, "-m", "notif.cli", "serve", "--host", "127.0.0.1",
                                     "--port", str(port)])
        wait_for(lambda: port_open(port), 30, "notif serve")
        r = redis.Redis.from_url(REDIS_URL)
        event = json.dumps({"event": "notification", "unread": 1,
                            "notification": {"id": 1, "title": "hello", "message": "everyone"}})
        return run_clients(port, make_token(SECRET, "everyone"), n, server.pid,
                           lambda: r.publish(f"{prefix}:user:everyone", event))


def main(n: int = 10_000) -> dict:
    logdir = Path(tempfile.mkdtemp(prefix="notif-bench-"))
    say(f"SSE fan-out: {n} clients on one web process (logs in {logdir})")
    say("  baseline: Starlette + sse-starlette")
    base = naive(n, logdir)
    say(f"    {base['kib_per_connection']} KiB/connection, one event to all in {base['fanout_ms']} ms")
    say("  notif serve")
    with database() as db_url:
        ours = notif(n, logdir, db_url)
    say(f"    {ours['kib_per_connection']} KiB/connection, one event to all in {ours['fanout_ms']} ms")
    return {"baseline": base, "notif": ours,
            "ratio_memory": round(ours["kib_per_connection"] / base["kib_per_connection"], 2),
            "ratio_fanout": round(ours["fanout_ms"] / base["fanout_ms"], 2)}


if __name__ == "__main__":
    print(json.dumps(main(int(os.environ.get("BENCH_SSE_CLIENTS", "10000"))), indent=2))
