"""Shadow mode's report: what notif would have sent, to hold against the old worker's output.

With ``NOTIF_SHADOW=on`` notif consumes a copy of the traffic (e.g. a second SQS queue fed
by the same SNS topic), stores every notification and records each delivery as
``shadow`` instead of sending it. ``notif shadow report`` counts them over a time range,
per type and channel, per channel, and per user and channel; deliveries notif would not
make (a preference, a channel turned off) are counted as ``skipped`` beside them.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, cast

import peewee

from . import delivery_states as states
from .models import Delivery, Notification, isoformat, utcnow


def report(since: dt.datetime, until: dt.datetime, top: int = 20) -> dict:
    """Counts over notifications created in [since, until) (naive UTC)."""
    in_range = (Notification.created_at >= since) & (Notification.created_at < until)
    counted = Delivery.status.in_([states.SHADOW, states.SENT, states.SKIPPED])
    would = peewee.fn.SUM(peewee.Case(None, [(Delivery.status.in_([states.SHADOW, states.SENT]), 1)], 0))
    skipped = peewee.fn.SUM(peewee.Case(None, [(Delivery.status == states.SKIPPED, 1)], 0))
    base = Delivery.select().join(Notification).where(in_range & counted)
    # (peewee's stubs type a .tuples() query's rows as model instances: the casts say what they are)
    type_rows = cast("list[tuple[str | None, str, int, int]]", list(
        base.select(Notification.type, Delivery.channel, would, skipped)
        .group_by(Notification.type, Delivery.channel).order_by(Notification.type, Delivery.channel).tuples()))
    by_type: list[dict[str, Any]] = [{"type": t or "", "channel": c, "would_send": int(w), "skipped": int(s)}
                                     for t, c, w, s in type_rows]
    user_rows = cast("list[tuple[str, str, int]]", list(
        base.select(Notification.user_id, Delivery.channel, would)
        .group_by(Notification.user_id, Delivery.channel).order_by(Notification.user_id, Delivery.channel).tuples()))
    by_user: list[dict[str, Any]] = [{"user_id": u, "channel": c, "would_send": int(w)} for u, c, w in user_rows]
    by_channel: dict[str, int] = {}
    for row in by_type:
        by_channel[row["channel"]] = by_channel.get(row["channel"], 0) + row["would_send"]
    notifications = Notification.select().where(in_range & Notification.digest_id.is_null()).count()
    return {"since": isoformat(since), "until": isoformat(until), "notifications": notifications,
            "by_type_and_channel": by_type, "by_channel": by_channel, "by_user_and_channel": by_user,
            "users": len({r["user_id"] for r in by_user}), "top": top}


def parse_time(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """ISO 8601 (a zone, else UTC) or a duration back from now: ``90m``, ``24h``, ``7d``."""
    now = now or utcnow()
    units = {"m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units and text[:-1].isdigit():
        return now - dt.timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither an ISO 8601 time nor a duration like 90m, 24h or 7d") from None
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def render(data: dict) -> str:
    lines = [f"shadow report  {data['since']} .. {data['until']}",
             f"{data['notifications']} notifications stored, for {data['users']} users", "",
             f"{'TYPE':<28}{'CHANNEL':<12}{'would send':>11}{'skipped':>9}"]
    for row in data["by_type_and_channel"]:
        lines.append(f"{row['type'] or '(none)':<28}{row['channel']:<12}{row['would_send']:>11}{row['skipped']:>9}")
    lines += ["", "BY CHANNEL  " + "  ".join(f"{c} {n}" for c, n in sorted(data["by_channel"].items())), ""]
    totals: dict[str, dict[str, int]] = {}
    for row in data["by_user_and_channel"]:
        totals.setdefault(row["user_id"], {})[row["channel"]] = row["would_send"]
    ranked = sorted(totals.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:data["top"]]
    lines.append(f"BY USER (top {len(ranked)} of {len(totals)}; --json lists all)")
    for user, channels in ranked:
        lines.append(f"  {user:<30}" + "  ".join(f"{c} {n}" for c, n in sorted(channels.items())))
    return "\n".join(lines)
