"""HIGH under a LOW flood: does HIGH keep its latency, and does LOW still progress?

One stack (`notif poll`, `dramatiq notif.actors` 1 process × 8 threads, `notif serve`),
10 SSE clients for the HIGH users. First HIGH alone at a steady rate (the baseline, same
run); then the same HIGH traffic while LOW messages with many recipients each ask for far
more deliveries per second than the worker can make. Reported: HIGH's latency both times
and their ratio, and how many LOW deliveries were made during the flood (no starvation).
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

from .common import Procs, database, free_port, moto_sqs, notif_env, percentiles, say, sqs_client, sqs_env, wait_for
from .e2e_latency import USERS, paced_send, sse_clients
from .throughput import _count

FLOOD_RECIPIENTS = 200


def _ms(values: list[float]) -> dict:
    return {k: round(v * 1000, 1) if k != "n" else v for k, v in percentiles(values).items()}


def main(high_rate: float = 10, low_rate: float = 40, seconds: float = 20, warmup: float = 3) -> dict:
    say("HIGH under a LOW flood")
    return {"one_worker": run(high_rate, low_rate, seconds, warmup, high_lane=False),
            "with_high_lane": run(high_rate, low_rate, seconds, warmup, high_lane=True)}


def run(high_rate: float, low_rate: float, seconds: float, warmup: float, high_lane: bool) -> dict:
    logdir = Path(tempfile.mkdtemp(prefix="notif-bench-"))
    say(f" {'worker + a HIGH lane (worker-high: --queues notif.high notif.deliver.high)' if high_lane else 'one worker'}"
        f" (logs in {logdir})")
    with moto_sqs() as endpoint:
        sqs = sqs_client(endpoint)
        tag = uuid.uuid4().hex[:6]
        queues = sqs_env(sqs, endpoint, tag)
        urls = {"high": queues["AWS_SQS_HIGH_PRIORITY_QUEUE_URL"], "low": queues["AWS_SQS_LOW_PRIORITY_QUEUE_URL"]}
        with database() as db_url:
            port = free_port()
            with Procs(notif_env(db_url, tag, queues), logdir) as procs:
                # with a HIGH lane the general worker leaves HIGH's queues to it: a worker that also
                # consumes them prefetches HIGH messages that then wait for one of its busy threads
                procs.worker(queues=["notif.normal", "notif.low", "notif.deliver.normal", "notif.deliver.low"]
                             if high_lane else None)
                if high_lane:
                    procs.worker(4, ["notif.high", "notif.deliver.high"], name="worker-high")
                procs.pipeline(port)
                arrivals: list = []
                ready, done = threading.Event(), threading.Event()
                client = threading.Thread(target=lambda: asyncio.run(sse_clients(port, arrivals, ready, done)))
                client.start()
                ready.wait(30)

                def high(offset: int):
                    return lambda i: {"user_id": f"lat-{i % USERS}", "title": "high", "message": str(i),
                                      "data": {"i": offset + i, "t": time.time()}}

                try:
                    say(f"  baseline: HIGH alone, {high_rate:g} msg/s for {seconds:g} s")
                    n = paced_send(sqs, urls["high"], high_rate, seconds, high(0))
                    wait_for(lambda: len(arrivals) >= n, 60, "the baseline HIGH notifications")
                    idle = [lat for i, lat in arrivals if warmup * high_rate <= i < n]

                    say(f"  flood: LOW {low_rate:g} msg/s × {FLOOD_RECIPIENTS} recipients "
                        f"({low_rate * FLOOD_RECIPIENTS:,.0f} deliveries/s asked) + HIGH {high_rate:g} msg/s")
                    low_sql = ("SELECT count(*) FROM notif_delivery d JOIN notif_notification n ON n.id = d.notification_id "
                               "WHERE n.priority = 'low' AND d.status = 'sent'")
                    flood = threading.Thread(target=paced_send, args=(sqs_client(endpoint), urls["low"], low_rate,
                                                                      seconds + warmup, lambda i: {
                        "recipients": [f"lo-{r}" for r in range(FLOOD_RECIPIENTS)], "title": "low", "message": str(i),
                        "id": f"low-{i}"}))
                    flood.start()
                    time.sleep(warmup)  # pacing: let the flood build before HIGH is measured
                    low_before = _count(db_url, low_sql)
                    m = paced_send(sqs, urls["high"], high_rate, seconds, high(1_000_000))
                    wait_for(lambda: len(arrivals) >= n + m, 120, "the HIGH notifications under the flood")
                    low_during = _count(db_url, low_sql) - low_before
                    flood.join()
                    backlog = int(low_rate * (seconds + warmup)) * FLOOD_RECIPIENTS - _count(db_url, low_sql)
                    under = [lat for i, lat in arrivals if i >= 1_000_000]
                finally:
                    done.set()
                    client.join(10)
    idle_ms, flood_ms = _ms(idle), _ms(under)
    result = {"high_lane": high_lane, "high_rate_per_s": high_rate, "low_rate_per_s": low_rate,
              "low_recipients": FLOOD_RECIPIENTS,
              "high_idle_ms": idle_ms, "high_under_flood_ms": flood_ms,
              "ratio_p99": round(flood_ms["p99"] / idle_ms["p99"], 2),
              "ratio_p50": round(flood_ms["p50"] / idle_ms["p50"], 2),
              "low_deliveries_during_flood": low_during, "low_deliveries_still_owed_at_end": backlog}
    say(f"    HIGH p50/p99 idle {idle_ms['p50']}/{idle_ms['p99']} ms, under the flood "
        f"{flood_ms['p50']}/{flood_ms['p99']} ms (p99 ratio {result['ratio_p99']}); "
        f"LOW delivered {low_during:,} meanwhile, {backlog:,} still owed")
    return result


if __name__ == "__main__":
    print(json.dumps(main(float(os.environ.get("BENCH_HIGH_RATE", "10")), float(os.environ.get("BENCH_LOW_RATE", "40"))),
                     indent=2))
