"""``notif dlq list | show ID | replay [--all | ID …] | purge [--all | ID …]``."""
from __future__ import annotations

import argparse
import json
import sys

from ..config import Settings
from ..db import database, init_database
from ..dlq import DeadLetters
from ..worker.tasks import Tasks, producer


def add_parser(sub) -> None:
    p = sub.add_parser("dlq", help="dead letters: poison inputs (SQS DLQ), failed deliveries and webhook events")
    dsub = p.add_subparsers(dest="action", required=True)
    for name, text in (("list", "list dead letters"), ("show", "show one dead letter"),
                       ("replay", "send dead letters back through the normal path"),
                       ("purge", "delete input dead letters; mark failed deliveries and webhook events discarded")):
        q = dsub.add_parser(name, help=text)
        q.add_argument("--json", action="store_true", help="machine-readable output")
        q.add_argument("--kind", choices=("input", "delivery", "webhook"), help="only this kind")
        if name == "show":
            q.add_argument("id", help="sqs:<MessageId>, delivery:<id> or webhook:<id>, as `notif dlq list` shows")
        elif name in ("replay", "purge"):
            q.add_argument("ids", nargs="*", metavar="ID")
            q.add_argument("--all", action="store_true", help="every dead letter (of --kind)")
            if name == "purge":
                q.add_argument("--yes", action="store_true", help="really delete")
    p.set_defaults(func=run)


def _table(letters) -> str:
    if not letters:
        return "no dead letters"
    rows = [("ID", "KIND", "WHEN", "PRIORITY", "WHERE", "REASON")]
    for letter in letters:
        reason = letter.reason if len(letter.reason) <= 70 else letter.reason[:67] + "..."
        rows.append((letter.id, letter.kind, (letter.when or "")[:19], letter.priority or "", letter.where, reason))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(widths[i]) if i < 5 else cell for i, cell in enumerate(row)) for row in rows]
    return "\n".join(lines) + f"\n{len(letters)} dead letter{'s' if len(letters) != 1 else ''}"


def run(args: argparse.Namespace, settings: Settings) -> int:
    init_database(settings.database_url)
    tasks: list[Tasks] = []  # the broker is made only when a delivery is replayed

    def broker() -> Tasks:
        if not tasks:
            tasks.append(producer(settings))
        return tasks[0]

    letters = DeadLetters(settings, lambda work: broker().enqueue_deliveries(work),
                          lambda events: broker().enqueue_webhooks(events))
    with database.connection_context():
        try:
            return _act(args, letters)
        finally:
            letters.release()


def _select(args, letters):
    pool = letters.of_kind(args.kind)
    if getattr(args, "all", False):
        if args.ids:
            raise SystemExit("notif: give IDs or --all, not both")
        return pool, []
    if not args.ids:
        raise SystemExit(f"notif: {args.action} needs IDs (see `notif dlq list`) or --all")
    chosen, missing = letters.find(args.ids)
    return chosen, missing


def _act(args, letters) -> int:
    if args.action == "list":
        pool = letters.of_kind(args.kind)
        print(json.dumps([x.public() for x in pool], indent=2) if args.json else _table(pool))
        return 0
    if args.action == "show":
        chosen, missing = letters.find([args.id])
        if missing:
            print(f"notif: no dead letter {args.id}; `notif dlq list` shows their ids", file=sys.stderr)
            return 1
        letter = chosen[0].public()
        if args.json:
            print(json.dumps(letter, indent=2))
        else:
            details = letter.pop("details")
            for key, value in {**letter, **details}.items():
                print(f"{key:>18}: {value}")
        return 0
    chosen, missing = _select(args, letters)
    for m in missing:
        print(f"notif: no dead letter {m}", file=sys.stderr)
    if args.action == "purge" and not args.yes:
        print(f"notif: purge would remove {len(chosen)} dead letter(s); add --yes to do it", file=sys.stderr)
        return 1
    done = letters.replay(chosen) if args.action == "replay" else letters.purge(chosen)
    verb = "replayed" if args.action == "replay" else "purged"
    if args.json:
        print(json.dumps({verb: done, "missing": missing}))
    else:
        print(f"{verb} {done} dead letter{'s' if done != 1 else ''}" + (f"; {len(missing)} not found" if missing else ""))
    return 1 if missing else 0
