"""``notif trace KEY [--user U] [--limit N] [--cursor C] [--json]``: why didn't user X get Y?

The twin of ``GET /api/messages/{key}``, straight on the database: ``--json`` prints the
same document; without it, a table — the message, the summary, then one line per recipient
and channel (state, attempts, when, and the reason it was not sent) with its attempts
beneath, and the recipient's escalation, if any, after its last line. Exits 1 when nothing is known under KEY.
"""
from __future__ import annotations

import argparse
import json
import sys

from .. import trace as tracing
from ..config import Settings
from ..db import database, init_database

MAX_ERROR = 120  # characters of an attempt's error shown in the table (--json has it whole)


def add_parser(sub) -> None:
    p = sub.add_parser("trace", help="why didn't user X get message Y? a message's recipients, per channel: state, "
                                     "attempts and the reason it was not sent")
    p.add_argument("key", help="the message's id (its idempotency key), else its SQS MessageId")
    p.add_argument("--user", help="this recipient only")
    p.add_argument("--limit", type=int, default=tracing.DEFAULT_PAGE,
                   help=f"recipients per page (1–{tracing.MAX_PAGE}, default {tracing.DEFAULT_PAGE})")
    p.add_argument("--cursor", help="the next page: the previous page's next_cursor")
    p.add_argument("--json", action="store_true", help="the document GET /api/messages/{key} answers")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if not 1 <= args.limit <= tracing.MAX_PAGE:
        print(f"notif: --limit must be 1 to {tracing.MAX_PAGE}", file=sys.stderr)
        return 2
    init_database(settings.database_url)
    with database.connection_context():
        try:
            found = tracing.trace(args.key, args.limit, args.cursor, args.user)
        except ValueError:
            print("notif: --cursor: not a cursor from a previous page", file=sys.stderr)
            return 2
    if found is None:
        print(f"notif: nothing is known under the key {args.key!r} (a message refused at ingest is a dead letter: "
              "notif dlq list --kind input)", file=sys.stderr)
        return 1
    print(json.dumps(found, indent=2, ensure_ascii=False) if args.json else render(found))
    return 0


def _when(value: str | None) -> str:
    return (value or "")[:23]


def _attempt(a: dict, last_error: str | None) -> str:
    """One attempt, beneath its delivery (its error only when the delivery's line does not say it already)."""
    error = a["error"] if a["error"] and a["error"] != last_error else ""
    return (f"    attempt {a['attempt']}  {_when(a['started_at']) or '-':<23} -> {_when(a['finished_at']):<23}  "
            f"{a['outcome']}" + ("" if a["logged"] else " (in bulk: from sent_at)") + f"  {error[:MAX_ERROR]}")


def render(doc: dict) -> str:
    m = doc["message"]
    lines = [f"message    {m['key']}",
             f"type       {m['type'] or '-'}   priority {m['priority'] or '-'}   correlation {m['correlation_id'] or '-'}",
             f"sqs        {m['sqs_message_id'] or '-'}   sent {_when(m['sqs_sent_at']) or '-'}   "
             f"received {_when(m['received_at']) or '-'}"]
    times = [(name, m[field]) for name, field in (("send at", "send_at"), ("expires", "expires_at"),
                                                   ("updated", "updated_at"), ("retracted", "retracted_at"),
                                                   ("cancelled", "cancelled_at")) if m[field]]
    if times:
        lines.append("           " + "   ".join(f"{name} {_when(value)}" for name, value in times))
    if m["topic"]:
        t = m["topic"]
        lines.append(f"topic      {t['name']}: {t['outcome']}, {t['stored']} stored, {t['remaining']} to go"
                     + (f", finished {_when(t['finished_at'])}" if t["finished_at"] else ""))
    if doc["summary"] is not None:
        s = doc["summary"]
        lines.append(f"summary    {s['recipients']} recipient{'s' if s['recipients'] != 1 else ''}"
                     + (f" ({s['held_in_digest']} held in digests)" if s["held_in_digest"] else ""))
        width = max([len(c) for c in s["channels"]] + [0])
        for channel, counts in s["channels"].items():
            lines.append(f"           {channel.ljust(width)}  " + ", ".join(f"{state} {n}" for state, n in counts.items()))
    lines.append("")
    rows = [("USER", "CHANNEL", "STATE", "ATTEMPTS", "WHEN", "REASON")]
    below: dict[int, list[str]] = {}
    for r in doc["recipients"]:
        if r["reason"] is not None or not r["deliveries"]:
            why = r["reason"] or {"code": "-", "text": "no deliveries"}
            rows.append((r["user_id"], "-", "-", "", _when(r["created_at"]), f"{why['code']}: {why['text']}"))
        for d in r["deliveries"]:
            why = d["reason"]
            rows.append((r["user_id"], d["channel"], d["state"], str(d["attempts"]),
                         _when(d["sent_at"] or d["updated_at"]), f"{why['code']}: {why['text']}" if why else ""))
            below[len(rows) - 1] = [_attempt(a, d["last_error"]) for a in d["attempt_log"]]
        if r.get("escalation"):  # beneath the recipient's last line
            below.setdefault(len(rows) - 1, []).append(f"    escalation  {r['escalation']['text']}")
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row[:5])) + "  " + row[5])
        lines.extend(below.get(i, []))
    shown = len(doc["recipients"])
    lines.append(f"{shown} recipient{'s' if shown != 1 else ''} shown"
                 + (f"; more with --cursor {doc['next_cursor']}" if doc["next_cursor"] else ""))
    return "\n".join(line.rstrip() for line in lines)
