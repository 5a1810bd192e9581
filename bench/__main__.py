"""`python -m bench` (make bench): every benchmark, one summary. Progress goes to stderr."""
from __future__ import annotations

import json
import os
import time

from . import e2e_latency, sse_fanout
from .common import machine, say


def main() -> None:
    started = time.time()
    results = {"machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    results["e2e_latency"] = e2e_latency.main(float(os.environ.get("BENCH_RATE", "100")),
                                              float(os.environ.get("BENCH_SECONDS", "30")))
    results["sse_fanout"] = sse_fanout.main(int(os.environ.get("BENCH_SSE_CLIENTS", "10000")))
    lat, fan = results["e2e_latency"], results["sse_fanout"]
    say("")
    say(f"summary ({time.time() - started:.0f} s)")
    say(f"  e2e latency @ {lat['rate_per_s']:g}/s   notif p50 {lat['notif_ms']['p50']} ms, p99 {lat['notif_ms']['p99']} ms"
        f"   (SQS alone p50 {lat['baseline_sqs_ms']['p50']} ms, p99 {lat['baseline_sqs_ms']['p99']} ms)")
    say(f"  SSE, {fan['notif']['clients']} clients  notif {fan['notif']['kib_per_connection']} KiB/conn, "
        f"fan-out {fan['notif']['fanout_ms']} ms   (sse-starlette {fan['baseline']['kib_per_connection']} KiB/conn, "
        f"{fan['baseline']['fanout_ms']} ms; ratios {fan['ratio_memory']} and {fan['ratio_fanout']})")
    print(json.dumps(results, indent=2))


main()
