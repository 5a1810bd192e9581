"""HIGH under a LOW flood: does HIGH keep its latency, and does LOW still progress?

Two layouts of workers, each on a stack of its own (`notif poll`, `notif serve`, moto, a fresh
database), with 10 SSE clients for the HIGH users:

- ``default``: the workers the Procfile runs (every ``dramatiq notif.actors`` line in it, as
  written: today ``worker`` with its NOTIF_LOW_THREADS cap and the HIGH lane ``worker_high``);
- ``one_worker``, the reference: the old layout, one ``dramatiq notif.actors`` process of 8
  threads on every queue, with no cap (NOTIF_LOW_THREADS=0).

Each: HIGH alone at a steady rate first (its idle baseline, same stack), then the same HIGH
traffic while LOW messages with many recipients each ask for about four times the deliveries
per second the stack can make. Reported: HIGH's latency (SQS send → SSE event) both times and
the p99 ratio (target: ≤ 2), and how many LOW deliveries were made during the flood (LOW is
not starved). ``python -m bench.priorities`` runs it alone (BENCH_HIGH_RATE, BENCH_LOW_RATE,
BENCH_PRIORITIES_SECONDS).
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from .common import ROOT, Procs, database, free_port, moto_sqs, notif_env, percentiles, say, sqs_client, sqs_env, wait_for
from .e2e_latency import USERS, paced_send, sse_clients
from .throughput import _count

FLOOD_RECIPIENTS = 200
REFERENCE = [("worker", ["dramatiq", "notif.actors", "--processes", "1", "--threads", "8"], {"NOTIF_LOW_THREADS": "0"})]
# every sent delivery but HIGH's few: a NOT IN over a hashed list and one scan, whatever the planner's
# statistics say (the join it replaced ran for minutes on tables that grew from empty during the run)
LOW_SENT = ("SELECT count(*) FROM notif_delivery WHERE status = 'sent' AND notification_id NOT IN "
            "(SELECT id FROM notif_notification WHERE priority <> 'low')")


def _ms(values: list[float]) -> dict:
    return {k: round(v * 1000, 1) if k != "n" else v for k, v in percentiles(values).items()}


def procfile_workers(procfile: Path = ROOT / "Procfile", environ=os.environ) -> list[tuple[str, list[str], dict]]:
    """The Procfile's worker processes (its ``dramatiq notif.actors`` lines) as it would run them here:
    ``${VAR:-default}`` expanded from ``environ``, anything before ``dramatiq`` (``nice -n 10``) kept."""
    workers = []
    for line in procfile.read_text().splitlines():
        name, _, command = line.partition(":")
        if "dramatiq notif.actors" not in command:
            continue
        command = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: environ.get(m.group(1)) or m.group(2), command)
        workers.append((name.strip(), shlex.split(command), {}))
    return workers


def batched_send(sqs, url: str, rate: float, seconds: float, body_for) -> int:
    """The LOW flood: ``rate`` msg/s for ``seconds``, ten per SendMessageBatch on an absolute schedule.

    Ten per request, as a bulk producer sends, so that moto (which shares the benchmark's two cores
    and spends milliseconds of CPU on each request) does not eat into the stack being measured."""
    total = int(rate * seconds)
    start = time.monotonic()
    for first in range(0, total, 10):
        delay = start + first / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": json.dumps(body_for(i))} for i in range(first, min(first + 10, total))])
    return total


def _picked_up(db_url: str) -> dict[int, float]:
    """HIGH message number → seconds from its SQS send to a worker making its notification (created_at)."""
    import psycopg2
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT data, EXTRACT(EPOCH FROM created_at) FROM notif_notification WHERE priority = 'high'")
            rows = cur.fetchall()
    finally:
        conn.close()
    picked = {}
    for data, created in rows:
        data = json.loads(data) if isinstance(data, str) else data
        picked[int(data["i"])] = float(created) - float(data["t"])
    return picked


def main(high_rate: float = 10, low_rate: float = 40, seconds: float = 20, warmup: float = 3) -> dict:
    say("HIGH under a LOW flood")
    default = procfile_workers()
    result = {"high_rate_per_s": high_rate, "low_rate_per_s": low_rate, "low_recipients": FLOOD_RECIPIENTS,
              "seconds": seconds, "load_average_before": os.getloadavg()[0],
              "default": {"workers": [" ".join(argv) for _, argv, _ in default],
                          **run(high_rate, low_rate, seconds, warmup, default)},
              "one_worker": {"workers": [" ".join(argv) + " (NOTIF_LOW_THREADS=0)" for _, argv, _ in REFERENCE],
                             **run(high_rate, low_rate, seconds, warmup, REFERENCE)},
              "load_average_after": os.getloadavg()[0]}
    # the layouts against each other: HIGH's p99 under the flood, the reference's over the default's
    result["flood_p99_one_worker_over_default"] = round(result["one_worker"]["high_under_flood_ms"]["p99"]
                                                        / result["default"]["high_under_flood_ms"]["p99"], 2)
    return result


def summary(result: dict) -> list[str]:
    lines = []
    for key, label in (("default", "Procfile's workers"), ("one_worker", "one worker, no cap")):
        p = result[key]
        lines.append(f"  HIGH under LOW flood, {label:<18}  p99 {p['high_under_flood_ms']['p99']} ms vs "
                     f"{p['high_idle_ms']['p99']} ms idle (ratio {p['ratio_p99']}, target <= 2); LOW delivered "
                     f"{p['low_deliveries_during_flood']:,} meanwhile; SQS alone beside it: p99 "
                     f"{p['sqs_alone_flood_ms'].get('p99')} vs {p['sqs_alone_idle_ms'].get('p99')} ms idle "
                     f"(ratio {p['sqs_alone_ratio_p99']})")
    lines.append(f"  (HIGH p99 under the flood: one worker / Procfile's {result['flood_p99_one_worker_over_default']}; "
                 f"load average {result['load_average_before']:.1f} before, {result['load_average_after']:.1f} after)")
    return lines


class SQSProbe:
    """SQS alone, beside notif, on the same moto: a queue of its own, sent to at HIGH's rate and long-polled by one
    bare receive loop; send → receive latencies per phase. What the SQS stand-in alone does under the flood (moto
    scans a whole queue on every call, and the LOW queue grows), against what notif adds on top."""

    def __init__(self, endpoint: str, tag: str) -> None:
        self.sqs = sqs_client(endpoint)
        self.url = self.sqs.create_queue(QueueName=f"probe-{tag}")["QueueUrl"]
        self.latencies: dict[str, list[float]] = {}
        self.stop = threading.Event()

    def run(self, phase: str, rate: float, seconds: float) -> threading.Thread:
        """Send for ``seconds`` at ``rate`` and receive until every one is in; in a thread."""
        got = self.latencies.setdefault(phase, [])

        def receive(total: int) -> None:
            receiver = sqs_client(self.sqs.meta.endpoint_url)
            while len(got) < total and not self.stop.is_set():
                for m in receiver.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                                  WaitTimeSeconds=2).get("Messages", []):
                    got.append(time.time() - json.loads(m["Body"])["t"])
                    receiver.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])

        def send_and_receive() -> None:
            total = int(rate * seconds)
            reader = threading.Thread(target=receive, args=(total,))
            reader.start()
            paced_send(sqs_client(self.sqs.meta.endpoint_url), self.url, rate, seconds, lambda i: {"t": time.time()})
            reader.join(120)

        thread = threading.Thread(target=send_and_receive)
        thread.start()
        return thread

    def ms(self, phase: str) -> dict:
        values = self.latencies.get(phase)
        return _ms(values) if values else {}


def _command(argv: list[str]) -> list[str]:
    i = argv.index("dramatiq")  # this interpreter's dramatiq, whatever comes before it (nice) kept
    return [*argv[:i], sys.executable, "-m", "dramatiq", *argv[i + 1:]]


def run(high_rate: float, low_rate: float, seconds: float, warmup: float, workers) -> dict:
    logdir = Path(tempfile.mkdtemp(prefix="notif-bench-"))
    for name, argv, env in workers:
        say(f" {name}: {' '.join(argv)} {' '.join(f'{k}={v}' for k, v in env.items())}")
    say(f"  (logs in {logdir})")
    with moto_sqs() as endpoint:
        sqs = sqs_client(endpoint)
        tag = uuid.uuid4().hex[:6]
        queues = sqs_env(sqs, endpoint, tag)
        urls = {"high": queues["AWS_SQS_HIGH_PRIORITY_QUEUE_URL"], "low": queues["AWS_SQS_LOW_PRIORITY_QUEUE_URL"]}
        with database() as db_url:
            port = free_port()
            with Procs(notif_env(db_url, tag, queues), logdir) as procs:
                for name, argv, env in workers:
                    procs.start(name, _command(argv), env)
                procs.pipeline(port)
                arrivals: list = []
                ready, done = threading.Event(), threading.Event()
                client = threading.Thread(target=lambda: asyncio.run(sse_clients(port, arrivals, ready, done)))
                client.start()
                ready.wait(30)

                def high(offset: int):
                    return lambda i: {"user_id": f"lat-{i % USERS}", "title": "high", "message": str(i),
                                      "data": {"i": offset + i, "t": time.time()}}

                probe = SQSProbe(endpoint, tag)
                try:
                    say(f"  baseline: HIGH alone, {high_rate:g} msg/s for {seconds:g} s (and SQS alone beside it)")
                    probing = probe.run("idle", high_rate, seconds)
                    n = paced_send(sqs, urls["high"], high_rate, seconds, high(0))
                    probing.join(120)
                    wait_for(lambda: len(arrivals) >= n, 60, "the baseline HIGH notifications")
                    idle = [lat for i, lat in arrivals if warmup * high_rate <= i < n]

                    say(f"  flood: LOW {low_rate:g} msg/s × {FLOOD_RECIPIENTS} recipients "
                        f"({low_rate * FLOOD_RECIPIENTS:,.0f} deliveries/s asked) + HIGH {high_rate:g} msg/s")
                    flood = threading.Thread(target=batched_send, args=(sqs_client(endpoint), urls["low"], low_rate,
                                                                        seconds + warmup, lambda i: {
                        "recipients": [f"lo-{r}" for r in range(FLOOD_RECIPIENTS)], "title": "low", "message": str(i),
                        "id": f"low-{i}"}))
                    flood.start()
                    time.sleep(warmup)  # pacing: let the flood build before HIGH is measured
                    low_before = _count(db_url, LOW_SENT)
                    probing = probe.run("flood", high_rate, seconds)
                    m = paced_send(sqs, urls["high"], high_rate, seconds, high(1_000_000))
                    probing.join(120)
                    wait_for(lambda: len(arrivals) >= n + m, 120, "the HIGH notifications under the flood")
                    low_during = _count(db_url, LOW_SENT) - low_before
                    flood.join()
                    backlog = int(low_rate * (seconds + warmup)) * FLOOD_RECIPIENTS - _count(db_url, LOW_SENT)
                    under = [lat for i, lat in arrivals if i >= 1_000_000]
                    picked = _picked_up(db_url)
                finally:
                    probe.stop.set()
                    done.set()
                    client.join(10)
    idle_ms, flood_ms = _ms(idle), _ms(under)
    # where HIGH's time went: SQS send → a worker starts on it (moto, poller, Redis, the worker's consumer),
    # then → the browser (the ingest transaction, the publish, the web process, the SSE client)
    stages = {}
    for phase, (lo, hi) in {"idle": (warmup * high_rate, n), "flood": (1_000_000, 1_000_000 + m)}.items():
        waits = [picked[i] for i, _ in arrivals if lo <= i < hi and i in picked]
        rest = [lat - picked[i] for i, lat in arrivals if lo <= i < hi and i in picked]
        stages[phase] = {"to_worker_ms": _ms(waits), "worker_to_browser_ms": _ms(rest)}
    sqs_idle, sqs_flood = probe.ms("idle"), probe.ms("flood")
    result = {"high_idle_ms": idle_ms, "high_under_flood_ms": flood_ms, "high_stages": stages,
              "sqs_alone_idle_ms": sqs_idle, "sqs_alone_flood_ms": sqs_flood,
              "sqs_alone_ratio_p99": round(sqs_flood["p99"] / sqs_idle["p99"], 2) if sqs_idle.get("p99") else None,
              "ratio_p99": round(flood_ms["p99"] / idle_ms["p99"], 2),
              "ratio_p50": round(flood_ms["p50"] / idle_ms["p50"], 2),
              "low_deliveries_during_flood": low_during, "low_deliveries_still_owed_at_end": backlog}
    say("    HIGH p50/p99 by stage, idle → flood: to a worker " + " → ".join(
        f"{stages[ph]['to_worker_ms']['p50']}/{stages[ph]['to_worker_ms']['p99']}" for ph in stages)
        + " ms; worker to browser " + " → ".join(
        f"{stages[ph]['worker_to_browser_ms']['p50']}/{stages[ph]['worker_to_browser_ms']['p99']}" for ph in stages)
        + " ms")
    say(f"    HIGH p50/p99 idle {idle_ms['p50']}/{idle_ms['p99']} ms, under the flood "
        f"{flood_ms['p50']}/{flood_ms['p99']} ms (p99 ratio {result['ratio_p99']}); "
        f"LOW delivered {low_during:,} meanwhile, {backlog:,} still owed")
    say(f"    SQS alone (moto) beside it p50/p99 idle {sqs_idle.get('p50')}/{sqs_idle.get('p99')} ms, under the flood "
        f"{sqs_flood.get('p50')}/{sqs_flood.get('p99')} ms (p99 ratio {result['sqs_alone_ratio_p99']})")
    return result


if __name__ == "__main__":
    outcome = main(float(os.environ.get("BENCH_HIGH_RATE", "10")), float(os.environ.get("BENCH_LOW_RATE", "40")),
                   float(os.environ.get("BENCH_PRIORITIES_SECONDS", "20")))
    for text in summary(outcome):
        say(text)
    print(json.dumps(outcome, indent=2))
