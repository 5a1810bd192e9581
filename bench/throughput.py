"""Throughput and memory: notif's worker against the ceilings measured in the same run.

Ceilings, on the same Redis and PostgreSQL:
- a no-op Dramatiq actor (`bench/noop_actors.py`), same --processes/--threads as notif's
  worker, draining N pre-filled messages of the same size as an ingest batch;
- PostgreSQL: the same notification rows inserted 10 per transaction from one connection.

notif, from a pre-filled Dramatiq queue onward (moto's SQS cannot hold 100,000 messages
and stay fast, see docs/benchmarks.md):
- ingest: N messages in batches of 10 on `notif.normal`, a worker on that queue only
  (`bench/ingest_actors.py`: notif.actors with the SQS delete made a no-op) → notifications
  committed per second, and the worker's RSS at every 10 % of the run;
- deliver: the in-app deliveries that ingest queued, a worker on `notif.deliver.normal`
  only → deliveries marked sent per second;
and through moto's SQS at a paced rate, the whole path (poller + one worker doing both).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from .common import REDIS_URL, Procs, database, moto_sqs, notif_env, process_tree, say, sqs_client, sqs_env, wait_for

THREADS = 8
USERS = 1000


def _received(i: int, tag: str, now_ms: int) -> dict:
    body = {"user_id": f"u{i % USERS}", "title": "bench", "message": f"message {i}", "data": {"i": i}}
    return {"message_id": f"{tag}-{i}", "receipt_handle": "bench", "body": json.dumps(body), "priority": "normal",
            "sent_ms": now_ms, "receives": 1, "correlation_id": uuid.uuid4().hex, "original_id": None}


def _fill(namespace: str, queue: str, actor: str, batches) -> None:
    """Put messages on a Dramatiq queue in Redis, as `actor.send` would, pipelined."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker
    broker = RedisBroker(url=REDIS_URL, namespace=namespace)
    broker.declare_queue(queue)
    count = 0
    for batch in batches:
        broker.enqueue(dramatiq.Message(queue_name=queue, actor_name=actor, args=(batch,), kwargs={}, options={}))
        count += 1
        if count % 2000 == 0:
            say(f"    queued {count} batches")
    broker.close()


def _pending(namespace: str, queue: str) -> int:
    import redis
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return client.hlen(f"{namespace}:{queue}.msgs")
    finally:
        client.close()


def _tree_rss_kib(pid: int) -> tuple[int, int]:
    """(RSS of the process and its children, RSS of the largest one): the worker forks."""
    pids = process_tree(pid)
    sizes = []
    for p in pids:
        try:
            sizes.append(next(int(line.split()[1]) for line in Path(f"/proc/{p}/status").read_text().splitlines()
                              if line.startswith("VmRSS:")))
        except (OSError, StopIteration):
            pass
    return sum(sizes), max(sizes, default=0)


def noop_ceiling(n_batches: int, logdir: Path) -> dict:
    namespace = f"bench-noop-{uuid.uuid4().hex[:6]}"
    now_ms = int(time.time() * 1000)
    payload = [[_received(b * 10 + i, "noop", now_ms) for i in range(10)] for b in range(n_batches)]
    say(f"  ceiling: a no-op Dramatiq actor, {n_batches} messages, 1 process × {THREADS} threads")
    _fill(namespace, "bench.noop", "noop", payload)
    env = {"REDIS_URL": REDIS_URL, "BENCH_NAMESPACE": namespace, "PYTHONPATH": str(Path(__file__).parent.parent)}
    with Procs(env, logdir) as procs:
        procs.start("noop-worker", [sys.executable, "-m", "dramatiq", "bench.noop_actors", "--processes", "1",
                                    "--threads", str(THREADS)])
        wait_for(lambda: _pending(namespace, "bench.noop") < n_batches, 60, "the no-op worker to start")
        started = time.monotonic()
        wait_for(lambda: _pending(namespace, "bench.noop") == 0, 600, "the no-op worker to drain", 0.05)
        seconds = time.monotonic() - started
    rate = n_batches / seconds
    say(f"    {rate:,.0f} messages/s")
    return {"messages": n_batches, "seconds": round(seconds, 2), "messages_per_s": round(rate)}


def postgres_ceiling(db_url: str, rows: int = 20000) -> dict:
    """The notification rows themselves, 10 per transaction, from one connection."""
    import psycopg2
    from psycopg2.extras import execute_values
    say(f"  ceiling: PostgreSQL, {rows} notification rows, 10 per transaction")
    conn = psycopg2.connect(db_url)
    started = time.monotonic()
    with conn.cursor() as cur:
        for b in range(rows // 10):
            execute_values(cur, "INSERT INTO notif_notification (user_id, key, title, message, priority, correlation_id,"
                                " created_at) VALUES %s",
                           [(f"u{i % USERS}", f"pg-{b * 10 + i}", "bench", f"message {i}", "normal", uuid.uuid4().hex,
                             "2026-01-01") for i in range(10)])
            conn.commit()
        seconds = time.monotonic() - started
        cur.execute("DELETE FROM notif_notification WHERE key LIKE 'pg-%%'")
    conn.commit()
    conn.close()
    rate = rows / seconds
    say(f"    {rate:,.0f} rows/s")
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rate)}


def _count(db_url: str, sql: str) -> int:
    import psycopg2
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0]
    finally:
        conn.close()


def _profile(pid: int, name: str):
    """With BENCH_PROFILE=DIR and py-spy installed: 20 s of the worker's stacks (all its
    processes), collapsed, in DIR/<phase>.txt (read it with bench/profile_summary.py)."""
    out = os.environ.get("BENCH_PROFILE")
    if not out:
        return None
    import shutil
    if not shutil.which("py-spy"):
        raise SystemExit("BENCH_PROFILE needs py-spy: .venv/bin/pip install py-spy")
    Path(out).mkdir(parents=True, exist_ok=True)
    say(f"    profiling {name} for 20 s with py-spy → {out}/{name}.txt")
    return subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--subprocesses", "--duration", "20", "--rate", "200",
                             "--format", "raw", "--output", f"{out}/{name}.txt"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _run_phase(procs: Procs, name: str, queue: str, db_url: str, count_sql: str, total: int, rss_every: int) -> dict:
    """Start a worker on one queue; time it from its first row to `total`; sample its RSS."""
    worker = procs.start(name, [sys.executable, "-m", "dramatiq", "bench.ingest_actors", "--processes", "1",
                                "--threads", str(THREADS), "--queues", queue])
    base = _count(db_url, count_sql)
    wait_for(lambda: _count(db_url, count_sql) > base, 120, f"{name} to start")
    started = time.monotonic()
    profile = _profile(worker.pid, name)
    samples, next_mark, done = [], rss_every, base
    while done - base < total:
        time.sleep(0.2)
        done = _count(db_url, count_sql)
        while done - base >= next_mark:
            tree, largest = _tree_rss_kib(worker.pid)
            samples.append({"at": next_mark, "rss_mib": round(largest / 1024, 1), "tree_rss_mib": round(tree / 1024, 1)})
            say(f"    {next_mark:>7,} done, {(done - base) / (time.monotonic() - started):,.0f}/s, "
                f"worker RSS {largest / 1024:.1f} MiB")
            next_mark += rss_every
        if time.monotonic() - started > 1800:
            raise RuntimeError(f"{name}: only {done - base} of {total} after 30 min")
    seconds = time.monotonic() - started
    errors = Path(procs.logdir / f"{name}.log").read_text().count('"level": "ERROR"')
    if errors:
        raise RuntimeError(f"{name} logged {errors} errors (see {procs.logdir}/{name}.log): the figures would be wrong")
    if profile is not None:
        profile.wait(120)
    worker.terminate()
    worker.wait(60)
    return {"count": total, "seconds": round(seconds, 2), "per_s": round(total / seconds), "rss": samples}


def notif_prefilled(n_messages: int, logdir: Path, batch: int = 50, deliver: bool = False) -> dict:
    """``batch``: messages per ingest transaction — 10 is one SQS receive; under load the
    poller tops receives up to NOTIF_INGEST_BATCH (default 50). The worker delivers each
    batch's in-app rows itself, as notif's does. With ``deliver``, it does not (the
    per-message path: one Dramatiq message per delivery), and a second worker on the
    deliver queue alone is timed over BENCH_DELIVERIES of them."""
    tag = uuid.uuid4().hex[:6]
    namespace = f"bench-{tag}:dramatiq"
    n_batches = n_messages // batch
    with database() as db_url:
        pg = postgres_ceiling(db_url)
        now_ms = int(time.time() * 1000)
        say(f"  notif ingest: {n_messages:,} messages in {n_batches:,} batches of {batch}, pre-filled on notif.normal")
        _fill(namespace, "notif.normal", "ingest_normal",
              ([_received(b * batch + i, tag, now_ms) for i in range(batch)] for b in range(n_batches)))
        # queue URLs name where a batch came from; nothing is sent there (the delete is a no-op)
        unused = {f"AWS_SQS_{q}_URL": f"http://127.0.0.1:9/unused/{q.lower()}" for q in (
            "HIGH_PRIORITY_QUEUE", "NOTIFICATION_QUEUE", "LOW_PRIORITY_QUEUE", "DEAD_LETTER_QUEUE")}
        per_message = {"BENCH_NO_BATCHED_DELIVERY": "1"} if deliver else {}
        with Procs(notif_env(db_url, tag, {**unused, **per_message}), logdir) as procs:
            ingest = _run_phase(procs, "ingest-worker", "notif.normal", db_url,
                                "SELECT count(*) FROM notif_notification", n_messages, max(1000, n_messages // 10))
            say(f"    ingest: {ingest['per_s']:,} notifications committed/s")
            if not deliver:
                in_app = wait_for(lambda: _count(db_url, "SELECT count(*) FROM notif_delivery WHERE status = 'sent'")
                                  >= n_messages, 60, "every in-app delivery (made by ingest) to be marked sent")
                return {"batch": batch, "postgres_ceiling": pg, "ingest": ingest, "in_app_sent_inline": bool(in_app)}
            deliveries = n_messages
            say(f"  notif deliver, one Dramatiq message each: the {deliveries:,} in-app deliveries ingest queued")
            deliver = _run_phase(procs, "deliver-worker", "notif.deliver.normal", db_url,
                                 "SELECT count(*) FROM notif_delivery WHERE status = 'sent'", deliveries,
                                 max(1000, deliveries // 5))
            say(f"    deliver: {deliver['per_s']:,} deliveries sent/s")
    return {"batch": batch, "postgres_ceiling": pg, "ingest": ingest, "deliver": deliver}


def notif_through_sqs(rate: float, seconds: float, logdir: Path) -> dict:
    """The whole path at a paced rate through moto: does ingest keep up?"""
    from .e2e_latency import paced_send
    with moto_sqs() as endpoint:
        sqs = sqs_client(endpoint)
        tag = uuid.uuid4().hex[:6]
        queues = sqs_env(sqs, endpoint, tag)
        normal = queues["AWS_SQS_NOTIFICATION_QUEUE_URL"]
        with database() as db_url:
            with Procs(notif_env(db_url, tag, queues), logdir) as procs:
                procs.start("sqs-worker", [sys.executable, "-m", "dramatiq", "notif.actors", "--processes", "1",
                                           "--threads", str(THREADS)])
                procs.start("sqs-poller", [sys.executable, "-m", "notif.cli", "poll"])
                say(f"  notif through moto's SQS: {rate:g} msg/s for {seconds:g} s (3 senders)")
                started = time.monotonic()
                senders = [threading.Thread(target=paced_send, args=(sqs_client(endpoint), normal, rate / 3,
                                                                      seconds, lambda i, s=s: {
                    "user_id": f"u{i % USERS}", "title": "bench", "message": f"{s}-{i}", "id": f"{s}-{i}"}))
                           for s in range(3)]
                for t in senders:
                    t.start()
                for t in senders:
                    t.join()
                sent = int(rate / 3 * seconds) * 3
                send_seconds = time.monotonic() - started
                wait_for(lambda: _count(db_url, "SELECT count(*) FROM notif_notification") >= sent, 300,
                         "every message committed", 0.2)
                lag = time.monotonic() - started - send_seconds
    result = {"rate_per_s": rate, "messages": sent, "send_seconds": round(send_seconds, 1),
              "committed_per_s": round(sent / (send_seconds + lag)), "lag_after_last_send_s": round(lag, 2)}
    say(f"    sent at {sent / send_seconds:,.0f}/s; all committed {lag:.2f} s after the last send")
    return result


def main(n_messages: int = 100_000, sqs_rate: float = 100, sqs_seconds: float = 20) -> dict:
    logdir = Path(tempfile.mkdtemp(prefix="notif-bench-"))
    say(f"Throughput and worker memory (logs in {logdir})")
    noop = noop_ceiling(max(1000, min(n_messages // 10, 20000)), logdir)
    say("  (one SQS receive per transaction: batches of 10)")
    by_ten = notif_prefilled(min(n_messages, 20000), logdir, batch=10)
    ours = notif_prefilled(n_messages, logdir)
    say("  (the per-message delivery path: push, email, retries, releases)")
    per_message = notif_prefilled(min(n_messages, int(os.environ.get("BENCH_DELIVERIES", "20000"))), logdir,
                                  deliver=True)
    through = notif_through_sqs(sqs_rate, sqs_seconds, logdir)
    ingest_rate = ours["ingest"]["per_s"]
    rss = ours["ingest"]["rss"]
    return {
        "noop_dramatiq": noop, "ingest_batches_of_10": by_ten["ingest"], **ours,
        "deliver": per_message["deliver"], "through_sqs": through,
        "worker_rss_growth": round((rss[-1]["rss_mib"] - rss[0]["rss_mib"]) / rss[0]["rss_mib"], 3),
        "ratio_ingest_to_noop": round(ingest_rate / noop["messages_per_s"], 2),
        "ratio_ingest_of_10_to_noop": round(by_ten["ingest"]["per_s"] / noop["messages_per_s"], 2),
        "ratio_ingest_to_postgres": round(ingest_rate / ours["postgres_ceiling"]["rows_per_s"], 2),
    }


def summary(t: dict) -> list[str]:
    """The lines ``make bench`` prints for this benchmark."""
    return [
        f"ingest        notif {t['ingest']['per_s']:,} notifications/s in batches of {t['batch']} "
        f"({t['ingest_batches_of_10']['per_s']:,}/s in batches of 10, ratio {t['ratio_ingest_of_10_to_noop']})   "
        f"no-op Dramatiq {t['noop_dramatiq']['messages_per_s']:,} messages/s (ratio {t['ratio_ingest_to_noop']})   "
        f"PostgreSQL {t['postgres_ceiling']['rows_per_s']:,} rows/s (ratio {t['ratio_ingest_to_postgres']})",
        f"deliver       in-app: made by ingest, batch by batch; one Dramatiq message each: {t['deliver']['per_s']:,}/s",
        f"through SQS   {t['through_sqs']['rate_per_s']:g} msg/s paced: all committed "
        f"{t['through_sqs']['lag_after_last_send_s']} s after the last send",
        f"worker RSS    {t['ingest']['rss'][0]['rss_mib']} MiB at {t['ingest']['rss'][0]['at']:,}, "
        f"{t['ingest']['rss'][-1]['rss_mib']} MiB at {t['ingest']['rss'][-1]['at']:,} "
        f"(growth {t['worker_rss_growth'] * 100:.1f} %)",
    ]


if __name__ == "__main__":
    print(json.dumps(main(int(os.environ.get("BENCH_MESSAGES", "100000"))), indent=2))
