"""``notif stats [--watch [SECONDS]] [--json]``: is it healthy, how far behind, what failed."""
from __future__ import annotations

import json
import time

from ..config import PRIORITIES, Settings
from ..db import init_database
from ..monitoring.snapshot import snapshot
from ..redis_client import sync_client


def add_parser(sub) -> None:
    p = sub.add_parser("stats", help="queue depths, rates, errors, dead letters, SLA breaches, live processes")
    p.add_argument("--json", action="store_true", help="one JSON object (with --watch: one per refresh)")
    p.add_argument("--watch", nargs="?", type=float, const=2.0, metavar="SECONDS",
                   help="refresh every SECONDS (default 2) until Ctrl-C")
    p.set_defaults(func=run)


def _n(value) -> str:
    return "?" if value is None else str(value)


def render(snap: dict) -> str:
    lines = [f"notif stats  {snap['at']}", "", f"{'QUEUES':<16}{'visible':>9}{'in flight':>11}{'redis ingest':>14}{'deliver':>9}"]
    for p in PRIORITIES:
        sqs = snap["sqs"].get(p) or {}
        lines.append(f"  {p:<14}{_n(sqs.get('visible')):>9}{_n(sqs.get('in_flight')):>11}"
                     f"{_n(snap['dramatiq'].get(f'notif.{p}')):>14}{_n(snap['dramatiq'].get(f'notif.deliver.{p}')):>9}")
    dlq = snap["sqs"].get("dead_letter") or {}
    lines.append(f"  {'dead letter':<14}{_n(dlq.get('visible')):>9}{_n(dlq.get('in_flight')):>11}")
    rates = snap["rates"]
    lines += ["", f"{'RATES':<22}{'1 min':>8}{'5 min':>8}{'15 min':>8}"]
    for key, label in (("received", "received"), ("stored", "stored"), ("duplicate", "duplicates"),
                       ("dead_lettered", "dead-lettered"), ("ingest_retry", "ingest retries"),
                       ("sent", "delivered"), ("delivery_failed", "deliveries failed"),
                       ("delivery_retry", "delivery retries"), ("deferred", "deferred (limits)"),
                       ("digested", "folded into digests"), ("shadow", "shadow (not sent)")):
        lines.append(f"  {label:<20}" + "".join(f"{rates[w][key]:>8}" for w in ("1m", "5m", "15m")))
    lines.append(f"  {'error rate':<20}" + "".join(f"{rates[w]['error_rate'] * 100:>7.1f}%" for w in ("1m", "5m", "15m")))
    lines.append("")
    lines.append("SLA BREACHES (15 min)  " + "  ".join(f"{p} {rates['15m'][f'sla_breach_{p}']}" for p in PRIORITIES))
    dead = snap["dead_letters"]
    lines.append(f"DEAD LETTERS           inputs {_n(dead['input'])}, deliveries {_n(dead['delivery'])}, "
                 f"webhook events {_n(dead.get('webhook'))}"
                 + ("   (see `notif dlq list`)" if (dead["input"] or dead["delivery"] or dead.get("webhook")) else ""))
    held = snap.get("held")
    if held is not None:
        lines.append(f"HELD                   scheduled {held['scheduled']}, deferred {held['deferred']}, "
                     f"digest windows open {held['digest_windows']} ({held['digest_items']} items)")
    if "features" in snap:
        lines.append("FEATURES               " + "  ".join(f"{name} {'on' if on else 'OFF'}"
                                                             for name, on in snap["features"].items()))
    if snap.get("shadow"):
        lines.append("SHADOW MODE            on: nothing is delivered (see `notif shadow report`)")
    lines += ["", "PROCESSES"]
    if not snap["processes"]:
        lines.append("  none has reported a heartbeat")
    for proc in snap["processes"]:
        state = "alive" if proc["alive"] else "STOPPED?"
        up = time.time() - proc["started_at"]
        lines.append(f"  {proc['kind']:<10}{proc['host']}:{proc['pid']:<8}  {state:<9}"
                     f"last seen {proc['age_seconds']:.0f} s ago, up {up / 60:.0f} min")
    return "\n".join(lines)


def run(args, settings: Settings) -> int:
    init_database(settings.database_url)
    redis_client = sync_client(settings)
    while True:
        snap = snapshot(settings, redis_client)
        if args.json:
            print(json.dumps(snap), flush=True)
        else:
            if args.watch:
                print("\033[2J\033[H", end="")
            print(render(snap), flush=True)
        if not args.watch:
            return 0
        time.sleep(args.watch)
