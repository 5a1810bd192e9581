"""SSE capacity of one web process up to its open-file limit: memory per stream, one event to all, a reconnect storm.

One server process (its open-file limit is the machine's hard limit, 20,000 here) holds
``BENCH_SSE_CLIENTS`` streams (default: the limit less ``RESERVED`` files for the server's
own use), opened by several client processes (bench.sse_fleet), one user per stream by
default (``BENCH_SSE_USERS``: fewer users, several streams each). Measured:

- RSS growth per stream at 2,000 streams and at the maximum (and the slope between them);
- one event to every stream: each user's event published to its channel in one Redis
  pipeline (as a topic announcement reaches its online members), time from the first
  publish to the last arrival;
- a reconnect storm: every client drops; once the server has closed them, a few
  notifications are stored for every user, then every client reconnects at once with
  ``Last-Event-ID``: time until the last has replayed (its ``counts`` event), errors, and the
  replay statements the server ran (``notif_sse_replay_queries_total``).

Baseline in the same run, under the same clients: the straightforward Starlette +
sse-starlette server (bench/naive_sse.py; one Redis channel, so one publish reaches all; no
replay, so its storm is reconnecting alone). It may stop earlier: ``open`` says where.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from .common import REDIS_URL, SECRET, Procs, database, free_port, port_open, rss_kib, say, wait_for
from .sse_fleet import Fleet

RESERVED = 500  # open files the server keeps for itself: listening socket, Redis, PostgreSQL, logs, headroom
SMALL = 2_000  # the first memory reading
MISSED = 2  # notifications stored per user while its client is away


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=120).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def store(db_url: str, users: int, title: str) -> dict[str, int]:
    """One notification per user (u0 … u{users-1}), in one statement; user → its id."""
    import psycopg2
    conn = psycopg2.connect(db_url)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO notif_notification (user_id, key, title, message, priority, correlation_id, "
                    "created_at) SELECT 'u' || g, %s || g, %s, 'm', 'normal', 'bench', now() "
                    "FROM generate_series(0, %s - 1) g RETURNING user_id, id", (uuid.uuid4().hex, title, users))
        rows = dict(cur.fetchall())
    conn.close()
    return rows


def run(mode: str, n: int, users: int, logdir: Path, db_url: str | None = None) -> dict:
    """Serve ``n`` streams with ``mode`` (notif or naive) and measure; returns the figures."""
    import redis
    port, tag = free_port(), uuid.uuid4().hex[:6]
    per_user = -(-n // users)
    env = {"REDIS_URL": REDIS_URL, "NAIVE_CHANNEL": f"naive-{tag}", "DATABASE_URL": db_url or "",
           "NOTIF_REDIS_PREFIX": f"bench-{tag}", "NOTIF_JWT_SECRET": SECRET, "NOTIF_STATE_DIR": "/nonexistent",
           "NOTIF_LOG_LEVEL": "WARNING", "NOTIF_SSE_MAX_STREAMS": str(n), "NOTIF_SSE_MAX_PER_USER": str(max(5, per_user))}
    command = ([sys.executable, "-m", "notif.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
               if mode == "notif" else
               [sys.executable, "-m", "uvicorn", "bench.naive_sse:app", "--port", str(port), "--log-level", "warning"])
    r = redis.Redis.from_url(REDIS_URL)
    with Procs(env, logdir) as procs:
        server = procs.start(mode, command)
        wait_for(lambda: port_open(port), 30, mode)
        fleet = Fleet(port, n, mode, logdir, users)
        try:
            time.sleep(1.0)
            out: dict = {"server": mode, "streams_asked": n, "users": users, "rss_start_kib": rss_kib(server.pid)}
            for step, target in (("small", min(SMALL, n)), ("max", n)):
                started = time.monotonic()
                got = fleet.connect(target)
                seconds = time.monotonic() - started
                time.sleep(1.0)  # let allocations settle
                out[step] = {"open": got["open"], "errors": got["errors"], "error_kinds": got["error_kinds"],
                             "connect_s": round(seconds, 1), "rss_kib": rss_kib(server.pid),
                             "kib_per_stream": round((rss_kib(server.pid) - out["rss_start_kib"]) / max(1, got["open"]), 1)}
                say(f"    {got['open']:>6} streams open ({got['errors']} errors) in {seconds:.1f} s: "
                    f"{out[step]['kib_per_stream']} KiB/stream")
            out["open"] = out["max"]["open"]
            big, small = out["max"], out["small"]
            if big["open"] > small["open"]:
                out["kib_per_stream_slope"] = round((big["rss_kib"] - small["rss_kib"]) / (big["open"] - small["open"]), 1)

            # one event to every stream
            if mode == "notif":
                ids = store(db_url or "", users, "hello")
                pipe = r.pipeline(transaction=False)
                for user, nid in ids.items():
                    pipe.publish(f"bench-{tag}:user:{user}", json.dumps({
                        "event": "notification", "unread": 1,
                        "notification": {"id": nid, "title": "hello", "message": "everyone"}}))
            fleet.ask("mark")
            published = time.time()
            if mode == "notif":
                pipe.execute()
            else:
                r.publish(env["NAIVE_CHANNEL"], json.dumps({"id": 1, "title": "hello", "message": "everyone"}))
            arrivals = fleet.ask("arrivals")
            out["fanout_ms"] = round((max(a["last"] for a in arrivals) - published) * 1000, 1)
            out["fanout_first_ms"] = round((min(a["first"] for a in arrivals) - published) * 1000, 1)
            say(f"    one event to all {out['open']}: {out['fanout_ms']} ms")

            # the reconnect storm
            files = open_files(server.pid)
            fleet.ask("drop")
            started = time.monotonic()
            wait_for(lambda: open_files(server.pid) <= files - out["open"] + 50, 60, "the server to close the streams")
            out["drop_s"] = round(time.monotonic() - started, 2)
            if mode == "notif":
                for k in range(MISSED):
                    store(db_url or "", users, f"missed #{k}")
                queries = metric(port, "notif_sse_replay_queries_total")
            answers = fleet.ask("storm")
            storm = {"done": sum(a["done"] for a in answers), "errors": sum(a["errors"] for a in answers),
                     "error_kinds": sorted({k for a in answers for k in a["error_kinds"]})[:5],
                     "seconds": round(max(a["last"] for a in answers) - min(a["start"] for a in answers), 2),
                     "replayed": sum(a["replayed"] for a in answers),
                     "min_replayed": min(a["min_replayed"] for a in answers),
                     "p50_p90_p99_per_client": [a["p50_p90_p99"] for a in answers]}
            if mode == "notif":
                storm["replay_queries"] = metric(port, "notif_sse_replay_queries_total") - queries
            out["storm"] = storm
            say(f"    reconnect storm: {storm['done']} back in {storm['seconds']} s, {storm['errors']} errors, "
                f"{storm['replayed']} replayed (min {storm['min_replayed']}/stream), {storm['error_kinds']}, "
                f"{storm.get('replay_queries', '-')} replay statements; p50/p90/p99 s {storm['p50_p90_p99_per_client']}")
            return out
        finally:
            fleet.close()


def project(ours: dict, streams: int) -> dict:
    """Linear projection from the measured slopes (memory: the slope between 2,000 and the maximum)."""
    n = ours["open"]
    slope = ours.get("kib_per_stream_slope", ours["max"]["kib_per_stream"])
    return {"streams": streams, "rss_mib": round((ours["rss_start_kib"] + slope * streams) / 1024),
            "fanout_ms": round(ours["fanout_ms"] * streams / n), "storm_s": round(ours["storm"]["seconds"] * streams / n, 1),
            "ulimit_n": streams + 1_000}


def default_streams() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1] - RESERVED


def main(n: int | None = None, users: int | None = None) -> dict:
    n = n or int(os.environ.get("BENCH_SSE_CLIENTS") or default_streams())
    users = users or int(os.environ.get("BENCH_SSE_USERS") or n)
    logdir = Path(tempfile.mkdtemp(prefix="notif-bench-"))
    say(f"SSE to the file limit: {n} streams ({users} users) on one web process (logs in {logdir})")
    say("  baseline: Starlette + sse-starlette")
    base = run("naive", n, users, logdir)
    say("  notif serve")
    with database() as db_url:
        ours = run("notif", n, users, logdir, db_url)
    return {"baseline": base, "notif": ours, "load_average": os.getloadavg(), "kernel": _accept_queue(),
            "ratio_memory": round(ours["max"]["kib_per_stream"] / base["max"]["kib_per_stream"], 2),
            "ratio_fanout": round(ours["fanout_ms"] / base["fanout_ms"], 2),
            "ratio_storm": round(ours["storm"]["seconds"] / base["storm"]["seconds"], 2),
            "projection": [project(ours, 50_000), project(ours, 100_000)]}


def _accept_queue() -> dict[str, int | None]:
    """The kernel's caps on a listening socket's queues: a reconnect storm overflows them (SYN retries at 1, 3, 7 s)."""
    caps: dict[str, int | None] = {}
    for name, path in (("somaxconn", "/proc/sys/net/core/somaxconn"),
                       ("tcp_max_syn_backlog", "/proc/sys/net/ipv4/tcp_max_syn_backlog")):
        try:
            caps[name] = int(Path(path).read_text())
        except (OSError, ValueError):
            caps[name] = None
    return caps


def summary(result: dict) -> list[str]:
    ours, base = result["notif"], result["baseline"]
    kernel = result.get("kernel", {})
    lines = [
        f"  SSE, {ours['open']} streams  notif {ours['small']['kib_per_stream']} KiB/stream at {ours['small']['open']}, "
        f"{ours['max']['kib_per_stream']} at {ours['open']} (sse-starlette {base['max']['kib_per_stream']} at "
        f"{base['open']}; ratio {result['ratio_memory']})",
        f"  SSE fan-out  notif {ours['fanout_ms']} ms to all {ours['open']} (sse-starlette {base['fanout_ms']} ms; "
        f"ratio {result['ratio_fanout']})",
        f"  SSE storm    notif {ours['storm']['done']} back and replayed in {ours['storm']['seconds']} s, "
        f"{ours['storm']['errors']} errors, {ours['storm']['replay_queries']:.0f} replay statements "
        f"(sse-starlette reconnect only: {base['storm']['seconds']} s, {base['storm']['errors']} errors; "
        f"ratio {result['ratio_storm']}; net.core.somaxconn {kernel.get('somaxconn')}, "
        f"tcp_max_syn_backlog {kernel.get('tcp_max_syn_backlog')})",
    ]
    for p in result["projection"]:
        lines.append(f"  SSE at {p['streams']}: ~{p['rss_mib']} MiB, fan-out ~{p['fanout_ms']} ms, storm ~{p['storm_s']} s; "
                     f"ulimit -n {p['ulimit_n']}")
    return lines


if __name__ == "__main__":
    figures = main()
    for line in summary(figures):
        say(line)
    print(json.dumps(figures, indent=2))
