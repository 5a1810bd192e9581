"""Checking docs/scaling.md's model: the whole path with ONE of each process, then TWO of each.

Each size gets its own database, Redis prefix and moto queues, and runs ``n`` pollers, ``n``
workers (1 process × 8 threads, as the Procfile), ``n`` schedulers and ``n`` web processes,
with the SSE clients (one stream per user) split across the web processes. Two phases:

1. **Through SQS**, paced (``BENCH_SCALING_RATE``, default 100 msg/s for
   ``BENCH_SCALING_SECONDS``, 10): SQS send → SSE arrival latency, with ``n`` pollers
   sharing the queue. Kept under moto's own ceiling (~300 msg/s on an idle machine), which
   would otherwise be what is measured.
2. **Worker tier at capacity**: ``BENCH_SCALING_MESSAGES`` (default 20,000) ingest batches of
   50 put straight into Dramatiq's ``notif.normal`` queue, as bench/throughput.py does (moto
   cannot hold that many and stay fast), drained by the ``n`` workers: notifications committed
   per second, and in-app events arrived at the SSE clients per second.

Every message of both phases must reach the SSE clients exactly once (and be stored once):
the run reports duplicates and losses. The model's prediction for two of each is one
worker's measured rate times two, capped by the CPU: this machine has 2 cores, shared with
PostgreSQL, Redis, moto, the SSE clients and whatever else runs, so it predicts
``min(2 × X1, X1 × cores / busy1)``, where ``busy1`` is how many cores the whole machine was
busy (``/proc/stat``) while one of each ran at capacity.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import NamedTuple

from .common import Procs, database, free_port, moto_sqs, notif_env, port_open, process_tree, say, sqs_client, sqs_env, wait_for
from .e2e_latency import Arrival, SSEProcess, _ms, paced_senders
from .throughput import _count, _fill

USERS = 20
BATCH = 50


class CpuSample(NamedTuple):
    busy: int   # jiffies not idle/iowait, all CPUs
    total: int  # all jiffies, all CPUs


def cpu_sample() -> CpuSample:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return CpuSample(sum(fields) - idle, sum(fields))


def busy_cores(before: CpuSample, after: CpuSample) -> float:
    """Cores busy on average between two samples (whole machine, every process)."""
    return (after.busy - before.busy) / max(1, after.total - before.total) * (os.cpu_count() or 1)


def connections(procs: Procs) -> dict:
    """Established connections to Redis (6379) and PostgreSQL (5432) held by each kind of
    process (its forks included), as ``ss`` sees them: the figures the sizing's connection
    arithmetic uses."""
    import re
    import subprocess
    owner = {}
    for proc in procs.procs:
        kind = _kind(proc)
        for pid in process_tree(proc.pid):
            owner[pid] = (kind, proc.pid)
    counts: dict = {}
    for port, service in ((6379, "redis"), (5432, "postgres")):
        out = subprocess.run(["ss", "-tnpH", "state", "established", f"( dport = :{port} )"], capture_output=True,
                             text=True).stdout
        for line in out.splitlines():  # one socket a line; a fork sharing it is listed on the same line
            pid = next((int(m) for m in re.findall(r"pid=(\d+)", line) if int(m) in owner), None)
            if pid is not None:
                kind, root = owner[pid]
                counts.setdefault(service, {}).setdefault(kind, {}).setdefault(root, 0)
                counts[service][kind][root] += 1
    return {service: {kind: max(per.values()) for kind, per in kinds.items()} for service, kinds in counts.items()}


def _kind(proc) -> str:
    args = proc.args
    return "web" if "serve" in args else "poller" if "poll" in args else "scheduler" if "scheduler" in args else "worker"


def _cpu_of(pids) -> float:
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def stack_cpu(procs: Procs) -> dict:
    """CPU seconds used so far by each kind of notif process (forks included), and by every
    PostgreSQL and Redis server process (those are shared with anything else on the machine)."""
    by_kind: dict[str, float] = {}
    for proc in procs.procs:
        by_kind[_kind(proc)] = by_kind.get(_kind(proc), 0.0) + _cpu_of(process_tree(proc.pid))
    servers = {"postgres": [], "redis": []}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            for name in servers:
                if comm.startswith(name):
                    servers[name].append(int(entry.name))
    return {**by_kind, **{name: _cpu_of(pids) for name, pids in servers.items()}}


def _body(i: int) -> dict:
    return {"user_id": f"sc-{i % USERS}", "title": "bench", "message": f"message {i}",
            "data": {"i": i, "t": time.time()}}


def _batches(tag: str, start: int, count: int):
    now_ms = int(time.time() * 1000)
    for b in range(start, start + count, BATCH):
        yield [{"message_id": f"{tag}-{i}", "receipt_handle": "bench", "body": json.dumps(_body(i)),
                "priority": "normal", "sent_ms": now_ms, "receives": 1, "correlation_id": uuid.uuid4().hex,
                "original_id": None} for i in range(b, min(b + BATCH, start + count))]


def _start_stack(procs: Procs, n: int, ports: list[int]) -> None:
    for k in range(n):
        procs.start(f"n{n}-worker-{k}", [sys.executable, "-m", "dramatiq", "bench.scaling_actors", "--processes", "1",
                                         "--threads", "8"])
        procs.start(f"n{n}-poller-{k}", [sys.executable, "-m", "notif.cli", "poll"])
        procs.start(f"n{n}-scheduler-{k}", [sys.executable, "-m", "notif.cli", "scheduler"])
        procs.start(f"n{n}-web-{k}", [sys.executable, "-m", "notif.cli", "serve", "--host", "127.0.0.1", "--port",
                                      str(ports[k])])
    for port in ports:
        wait_for(lambda port=port: port_open(port), 30, "notif serve")


def _exactly_once(arrivals: list[Arrival], expected: int) -> dict:
    seen: dict[int, int] = {}
    for a in arrivals:
        seen[a.i] = seen.get(a.i, 0) + 1
    wrong_user = sum(1 for a in arrivals if a.user != f"sc-{a.i % USERS}")
    return {"expected": expected, "arrived": len(arrivals), "duplicates": sum(c - 1 for c in seen.values()),
            "missing": sum(1 for i in range(expected) if i not in seen), "wrong_stream": wrong_user}


def run_size(n: int, endpoint: str, rate: float, seconds: float, messages: int, logdir: Path) -> dict:
    sqs = sqs_client(endpoint)
    tag = uuid.uuid4().hex[:6]
    queues = sqs_env(sqs, endpoint, tag)
    paced = int(rate * seconds)
    expected = paced + messages
    say(f"  {n} of each: {n} poller(s), {n} worker(s), {n} scheduler(s), {n} web process(es), "
        f"{USERS} SSE streams across them")
    with database() as db_url:
        ports = [free_port() for _ in range(n)]
        with Procs(notif_env(db_url, tag, queues), logdir) as procs:
            _start_stack(procs, n, ports)
            clients = SSEProcess(ports, [f"sc-{u}" for u in range(USERS)], expected).start()
            clients.go()
            say(f"    through SQS: {rate:g} msg/s for {seconds:g} s")
            paced_senders(endpoint, queues["AWS_SQS_NOTIFICATION_QUEUE_URL"], rate, seconds, _body,
                          max(1, round(rate / 100)))
            wait_for(lambda: _count(db_url, "SELECT count(*) FROM notif_notification") >= paced, 120,
                     "the paced messages stored", 0.2)
            say(f"    worker tier: {messages:,} messages pre-filled on notif.normal in batches of {BATCH}")
            sent_sql = "SELECT count(*) FROM notif_delivery WHERE status = 'sent'"
            wait_for(lambda: _count(db_url, sent_sql) >= paced, 60, "the paced deliveries sent", 0.2)
            before_cpu, load_before, before_stack = cpu_sample(), os.getloadavg()[0], stack_cpu(procs)
            started = time.monotonic()
            _fill(f"bench-{tag}:dramatiq", "notif.normal", "ingest_normal", _batches(tag, paced, messages))
            count_sql = "SELECT count(*) FROM notif_notification"
            first = wait_for(lambda: (_count(db_url, count_sql) > paced) and time.monotonic(), 60, "the first commit",
                             0.05)
            wait_for(lambda: _count(db_url, count_sql) >= expected, 600, "every pre-filled message stored", 0.05)
            last = time.monotonic()
            after_cpu, after_stack = cpu_sample(), stack_cpu(procs)
            held = connections(procs)
            wait_for(lambda: _count(db_url, sent_sql) >= expected, 120, "every in-app delivery sent", 0.2)
            stored = _count(db_url, count_sql)
            time.sleep(2.0)  # an event still on its way (or a duplicate) gets its chance to arrive
            clients.stop()
            arrivals = clients.arrivals()
            errors = sum(Path(procs.logdir / f"n{n}-{p}-{k}.log").read_text().count('"level": "ERROR"')
                         for p in ("worker", "poller", "scheduler", "web") for k in range(n))
    committed_per_s = messages / max(1e-6, last - first)
    arrive_at = sorted(a.at for a in arrivals if a.i >= paced)
    sse_per_s = (len(arrive_at) - 1) / max(1e-6, arrive_at[-1] - arrive_at[0]) if len(arrive_at) > 1 else 0.0
    result = {
        "n": n, "through_sqs": {"rate_per_s": rate, "messages": paced,
                                "latency_ms": _ms([a.latency_s for a in arrivals if 2 * rate <= a.i < paced])},
        "worker_tier": {"messages": messages, "committed_per_s": round(committed_per_s),
                        "sse_arrivals_per_s": round(sse_per_s), "seconds": round(last - first, 2),
                        "busy_cores": round(busy_cores(before_cpu, after_cpu), 2),
                        "load_average": round(max(load_before, os.getloadavg()[0]), 2),
                        "since_fill_s": round(last - started, 2)},
        "exactly_once": {**_exactly_once(arrivals, expected), "stored": stored}, "errors_logged": errors,
        "connections_per_process": held,
        "cpu_ms_per_notification": {k: round((after_stack[k] - before_stack.get(k, 0.0)) * 1000 / messages, 3)
                                    for k in after_stack},
        "cores_used": {k: round((after_stack[k] - before_stack.get(k, 0.0)) / max(1e-6, last - started), 2)
                       for k in after_stack},
    }
    lat, tier = result["through_sqs"]["latency_ms"], result["worker_tier"]
    say(f"    SQS → SSE p50 {lat['p50']} ms, p99 {lat['p99']} ms; worker tier {tier['committed_per_s']:,} committed/s, "
        f"{tier['sse_arrivals_per_s']:,} SSE events/s, {tier['busy_cores']} cores busy; "
        f"exactly once: {result['exactly_once']}")
    return result


def main(rate: float = 100, seconds: float = 10, messages: int = 20000) -> dict:
    logdir = Path(tempfile.mkdtemp(prefix="notif-bench-"))
    cores = os.cpu_count() or 1
    say(f"Scaling: one of each, then two of each (logs in {logdir}; {cores} cores; load average "
        f"{os.getloadavg()[0]:.2f})")
    with moto_sqs() as endpoint:
        one = run_size(1, endpoint, rate, seconds, messages, logdir)
        two = run_size(2, endpoint, rate, seconds, messages, logdir)
    x1, busy1 = one["worker_tier"]["committed_per_s"], one["worker_tier"]["busy_cores"]
    naive = 2 * x1
    predicted = round(min(naive, x1 * cores / max(busy1, 0.01)))
    # the same model on the stack's own CPU: ms of CPU per notification, everything notif needs
    # (its processes, PostgreSQL, Redis), and the cores' worth that leaves on an otherwise idle machine
    own_ms = sum(one["cpu_ms_per_notification"].values())
    own_ceiling = round(cores * 1000 / max(own_ms, 1e-6))
    x2 = two["worker_tier"]["committed_per_s"]
    clean = all(r["exactly_once"]["duplicates"] == 0 and r["exactly_once"]["missing"] == 0
                and r["exactly_once"]["wrong_stream"] == 0 and r["exactly_once"]["stored"] == r["exactly_once"]["expected"]
                for r in (one, two))
    return {"cores": cores, "one": one, "two": two,
            "model": {"one_worker_per_s": x1, "two_without_cpu_limit_per_s": naive, "busy_cores_one": busy1,
                      "two_predicted_per_s": predicted, "two_measured_per_s": x2,
                      "measured_to_predicted": round(x2 / max(predicted, 1), 2),
                      "stack_cpu_ms_per_notification_one": round(own_ms, 3),
                      "two_predicted_if_cores_were_ours_per_s": min(naive, own_ceiling),
                      "two_to_one": round(x2 / max(x1, 1), 2)},
            "exactly_once_both": clean}


def summary(result: dict) -> list[str]:
    m, one, two = result["model"], result["one"], result["two"]
    lines = [f"  scaling, worker tier   one of each {m['one_worker_per_s']:,} committed/s ({one['worker_tier']['busy_cores']} "
             f"of {result['cores']} cores busy)   two of each {m['two_measured_per_s']:,}/s (ratio {m['two_to_one']}); "
             f"model: {m['two_without_cpu_limit_per_s']:,} uncapped, {m['two_predicted_per_s']:,} on {result['cores']} "
             f"cores (measured/predicted {m['measured_to_predicted']}); the stack's own CPU "
             f"{m['stack_cpu_ms_per_notification_one']} ms/notification → "
             f"{m['two_predicted_if_cores_were_ours_per_s']:,}/s for two if the cores were all ours"]
    for r in (one, two):
        lat, once = r["through_sqs"]["latency_ms"], r["exactly_once"]
        lines.append(f"  scaling, {r['n']} of each   SQS → SSE @ {r['through_sqs']['rate_per_s']:g}/s p50 {lat['p50']} ms, "
                     f"p99 {lat['p99']} ms   SSE events {r['worker_tier']['sse_arrivals_per_s']:,}/s   "
                     f"{once['arrived']:,} of {once['expected']:,} arrived, {once['duplicates']} duplicates, "
                     f"{once['missing']} missing")
    return lines


if __name__ == "__main__":
    out = main(float(os.environ.get("BENCH_SCALING_RATE", "100")), float(os.environ.get("BENCH_SCALING_SECONDS", "10")),
               int(os.environ.get("BENCH_SCALING_MESSAGES", "20000")))
    for line in summary(out):
        say(line)
    print(json.dumps(out, indent=2))
