"""`python -m bench` (make bench): every benchmark, one summary. Progress goes to stderr.

`BENCH_ONLY=throughput,priorities` runs a subset (names: throughput, e2e, priorities, sse, inbox, topic).
The inbox at scale takes ``BENCH_INBOX_ROWS`` (default 10,000,000), ``BENCH_INBOX_USERS``,
``BENCH_INBOX_SMALL``, ``BENCH_INBOX_REQUESTS`` and ``BENCH_INBOX_BASELINE`` (a checkout to compare with).
`python -m bench topic --subscribers 100000` runs the topic fan-out alone, at that size
(default 1,000,000; env BENCH_TOPIC_SUBSCRIBERS).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from . import e2e_latency, inbox_scale, priorities, sse_fanout, throughput, topic_fanout
from .common import machine, say


def main() -> None:
    started = time.time()
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("only", nargs="*", help="benchmarks to run (default: BENCH_ONLY, else all)")
    parser.add_argument("--subscribers", type=int, default=int(os.environ.get("BENCH_TOPIC_SUBSCRIBERS", "1000000")),
                        help="the topic benchmark's subscribers")
    args = parser.parse_args(sys.argv[1:])
    only = set(args.only) or {n.strip() for n in os.environ.get("BENCH_ONLY", "throughput,e2e,priorities,sse,inbox,topic")
                              .split(",") if n.strip()}
    results = {"machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if "throughput" in only:
        results["throughput"] = throughput.main(int(os.environ.get("BENCH_MESSAGES", "100000")),
                                                float(os.environ.get("BENCH_SQS_RATE", "100")))
    if "e2e" in only:
        results["e2e_latency"] = e2e_latency.main(float(os.environ.get("BENCH_RATE", "100")),
                                                  float(os.environ.get("BENCH_SECONDS", "30")))
    if "priorities" in only:
        results["priorities"] = priorities.main(float(os.environ.get("BENCH_HIGH_RATE", "10")),
                                                float(os.environ.get("BENCH_LOW_RATE", "40")))
    if "sse" in only:
        results["sse_fanout"] = sse_fanout.main(int(os.environ.get("BENCH_SSE_CLIENTS", "10000")))
    if "inbox" in only:
        results["inbox_scale"] = inbox_scale.main(int(os.environ.get("BENCH_INBOX_ROWS", "10000000")),
                                                  int(os.environ.get("BENCH_INBOX_USERS", "100000")),
                                                  int(os.environ.get("BENCH_INBOX_SMALL", "10000")),
                                                  int(os.environ.get("BENCH_INBOX_REQUESTS", "2000")),
                                                  os.environ.get("BENCH_INBOX_BASELINE"))
    if "topic" in only:
        results["topic_fanout"] = topic_fanout.main(args.subscribers)
    say("")
    say(f"summary ({time.time() - started:.0f} s)")
    if "throughput" in results:
        t = results["throughput"]
        say(f"  ingest        notif {t['ingest']['per_s']:,} notifications/s in batches of {t['batch']} "
            f"({t['ingest_batches_of_10']['per_s']:,}/s in batches of 10, ratio {t['ratio_ingest_of_10_to_noop']})   "
            f"no-op Dramatiq "
            f"{t['noop_dramatiq']['messages_per_s']:,} messages/s (ratio {t['ratio_ingest_to_noop']})   "
            f"PostgreSQL {t['postgres_ceiling']['rows_per_s']:,} rows/s (ratio {t['ratio_ingest_to_postgres']})")
        say(f"  deliver       in-app: made by ingest, batch by batch; one Dramatiq message each: {t['deliver']['per_s']:,}/s")
        say(f"  through SQS   {t['through_sqs']['rate_per_s']:g} msg/s paced: all committed "
            f"{t['through_sqs']['lag_after_last_send_s']} s after the last send")
        say(f"  worker RSS    {t['ingest']['rss'][0]['rss_mib']} MiB at {t['ingest']['rss'][0]['at']:,}, "
            f"{t['ingest']['rss'][-1]['rss_mib']} MiB at {t['ingest']['rss'][-1]['at']:,} "
            f"(growth {t['worker_rss_growth'] * 100:.1f} %)")
    if "e2e_latency" in results:
        lat = results["e2e_latency"]
        say(f"  e2e latency @ {lat['rate_per_s']:g}/s   notif p50 {lat['notif_ms']['p50']} ms, p99 {lat['notif_ms']['p99']} ms"
            f"   (SQS alone p50 {lat['baseline_sqs_ms']['p50']} ms, p99 {lat['baseline_sqs_ms']['p99']} ms)")
    if "priorities" in results:
        for label, p in (("one worker", results["priorities"]["one_worker"]),
                         ("+ HIGH lane", results["priorities"]["with_high_lane"])):
            say(f"  HIGH under LOW flood, {label:<11}  p99 {p['high_under_flood_ms']['p99']} ms vs "
                f"{p['high_idle_ms']['p99']} ms idle (ratio {p['ratio_p99']}); LOW delivered "
                f"{p['low_deliveries_during_flood']:,} meanwhile")
    if "sse_fanout" in results:
        fan = results["sse_fanout"]
        say(f"  SSE, {fan['notif']['clients']} clients  notif {fan['notif']['kib_per_connection']} KiB/conn, "
            f"fan-out {fan['notif']['fanout_ms']} ms   (sse-starlette {fan['baseline']['kib_per_connection']} KiB/conn, "
            f"{fan['baseline']['fanout_ms']} ms; ratios {fan['ratio_memory']} and {fan['ratio_fanout']})")
    if "inbox_scale" in results:
        box = results["inbox_scale"]
        for name in ("inbox_page", "unread_count", "mark_read"):
            large, small = box["large"]["ms"][name], box["small"]["ms"][name]
            say(f"  inbox {name:<13} at {box['large']['generated']['rows']:,} rows p50 {large['p50']} ms, "
                f"p99 {large['p99']} ms   (at {box['small']['generated']['rows']:,}: p50 {small['p50']} ms, "
                f"p99 {small['p99']} ms)")
            if "baseline_ms" in box["large"]:
                before = box["large"]["baseline_ms"][name]
                say(f"    baseline ({box['baseline']}), same run: p50 {before['p50']} ms, p99 {before['p99']} ms")
    if "topic_fanout" in results:
        top = results["topic_fanout"]
        fan, hi = top["fanout"], top["high_during_fanout"]
        say(f"  topic of {fan['subscribers']:,}   every row committed in {fan['stored_s']} s, delivered in-app in "
            f"{fan['delivered_s']} s: {fan['recipients_per_s']:,} recipients/s   (PostgreSQL COPY "
            f"{top['postgres_copy']['rows_per_s']:,} rows/s; ratio {fan['ratio_to_copy']})")
        say(f"  HIGH during it  p99 {hi['high_under_fanout_ms']['p99']} ms vs {hi['high_idle_ms']['p99']} ms idle "
            f"(ratio {hi['ratio_p99']})")
    print(json.dumps(results, indent=2))


main()
