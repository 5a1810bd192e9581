"""The trace of one message: what notif received, and for each recipient and channel what became of it and why.

``GET /api/messages/{key}`` (:mod:`notif.web.messages`) and ``notif trace KEY``
(:mod:`notif.cli.trace`) answer the same document, :func:`trace`'s. ``key`` is the message's
idempotency key (its ``id``, else its SQS MessageId); a digest's grouped notification has
the key ``digest-<window id>``. The document has four parts:

- ``message``: as received (type, priority, correlation id, SQS message id and sent time,
  when it was stored, ``send_at``/``expires_at``, when it was updated, retracted or
  cancelled) and, for a topic message, the fan-out's progress;
- ``summary``: the whole message's deliveries counted by channel and state (one GROUP BY,
  by the ``notif_notification_key`` index: the message's rows only), its recipients and those
  held in digests — on the first page only (no ``cursor``), so paging a million costs it once;
- ``recipients``: a page of them in notification id order (a topic's: subscription order),
  each with its deliveries (state, attempts, each logged attempt, and the ``reason`` when it
  was not sent: a :data:`notif.reasons.CODES` code with a sentence and what the code needs)
  and its ``escalation`` (:func:`notif.escalations.describe`: due, made, or not needed);
- ``next_cursor``: the next page's, or null.

Nothing here writes. Cancelled notifications are deleted by their cancel, so a cancelled
message is known by its remembered cancel (7 days: :class:`~notif.models.Cancellation`).
"""
from __future__ import annotations

import datetime as dt
from typing import Any, cast

import peewee
from peewee import fn

from . import attempts as attempt_log
from . import delivery_states as states
from . import reasons
from .escalations import describe as describe_escalation
from .fanout import RUNNING, restored
from .models import Amendment, Cancellation, Delivery, Digest, Escalation, Fanout, Notification, TopicMember, isoformat, utcnow
from .topics import decode_cursor, encode_cursor

DEFAULT_PAGE = 100
MAX_PAGE = 1000

_COLUMNS = (Notification.id, Notification.user_id, Notification.type, Notification.created_at, Notification.read_at,
            Notification.seen_at, Notification.archived_at, Notification.send_at, Notification.digest_id,
            Notification.expires_at, Notification.retracted_at)


def trace(key: str, limit: int = DEFAULT_PAGE, cursor: str | None = None, user: str | None = None,
          now: dt.datetime | None = None) -> dict | None:
    """The trace of the message ``key`` (None: nothing of it is known). ``cursor`` is a previous
    page's ``next_cursor`` (ValueError when it is not one); ``user`` keeps that recipient only."""
    now = now or utcnow()
    after = int(decode_cursor(cursor)) if cursor is not None else 0
    if not 0 <= after < 2**63:
        raise ValueError("not a cursor from a previous page")
    mine = Notification.key == key
    first = Notification.select().where(mine).order_by(Notification.id).first()
    fanout = Fanout.get_or_none(Fanout.key == key)
    cancelled = Cancellation.get_or_none(Cancellation.key == key)
    amendments = list(Amendment.select().where(Amendment.target == key).order_by(Amendment.created_at))
    if first is None and fanout is None and cancelled is None and not amendments:
        return None
    message = _message(key, first, fanout, cancelled, amendments)
    query = Notification.select(*_COLUMNS).where(mine & (Notification.id > after))
    if user is not None:
        query = query.where(Notification.user_id == user)
    rows = list(query.order_by(Notification.id).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    recipients = _recipients(rows, now)
    if user is not None and not recipients and after == 0:
        recipients = [_absent(user, message, fanout)]
    return {"key": key, "message": message, "summary": None if cursor is not None else _summary(key),
            "recipients": recipients, "next_cursor": encode_cursor(str(rows[-1].id)) if more else None}


def _message(key: str, first: Notification | None, fanout: Fanout | None, cancelled: Cancellation | None,
             amendments: list[Amendment]) -> dict:
    """What was received, from a stored notification, else the fan-out's row, else only what amended it."""
    source: dict[str, Any] = {}
    if fanout is not None:
        source = {name: restored(name, value) for name, value in fanout.row.items()}
    if first is not None:
        source = {name: getattr(first, name) for name in
                  ("type", "priority", "correlation_id", "sqs_message_id", "sqs_sent_at", "created_at", "send_at",
                   "expires_at", "updated_at", "retracted_at")}
    retracts = [a.created_at for a in amendments if a.kind == "retract"]
    updates = [a.created_at for a in amendments if a.kind == "update"]
    return {
        "key": key, "type": source.get("type"), "priority": source.get("priority"),
        "correlation_id": source.get("correlation_id"), "sqs_message_id": source.get("sqs_message_id"),
        "sqs_sent_at": isoformat(source.get("sqs_sent_at")),
        "received_at": isoformat(fanout.created_at if fanout is not None else source.get("created_at")),
        "send_at": isoformat(source.get("send_at")), "expires_at": isoformat(source.get("expires_at")),
        "updated_at": isoformat(source.get("updated_at") or (updates[-1] if updates else None)),
        "retracted_at": isoformat(source.get("retracted_at") or (retracts[0] if retracts else None)),
        "cancelled_at": isoformat(cancelled.created_at if cancelled is not None else None),
        "topic": None if fanout is None else _progress(fanout),
    }


def _progress(fanout: Fanout) -> dict:
    remaining = 0
    if fanout.outcome == RUNNING and fanout.topic_id is not None:
        remaining = TopicMember.select().where((TopicMember.topic == fanout.topic_id) & (TopicMember.id > fanout.cursor)
                                               & (TopicMember.id <= fanout.upto)).count()
    return {"name": fanout.topic, "outcome": fanout.outcome, "stored": fanout.stored, "remaining": remaining,
            "started_at": isoformat(fanout.created_at), "updated_at": isoformat(fanout.updated_at),
            "finished_at": isoformat(fanout.finished_at)}


def summary_query(key: str) -> peewee.SelectQuery:
    """The message's deliveries counted by channel and state: one GROUP BY over its rows only (by the
    ``notif_notification_key`` index to its notifications, by the notification's to their deliveries)."""
    return (Delivery.select(Delivery.channel, Delivery.status, fn.COUNT(Delivery.id)).join(Notification)
            .where(Notification.key == key).group_by(Delivery.channel, Delivery.status))


def _summary(key: str) -> dict:
    channels: dict[str, dict[str, int]] = {}
    for channel, status, count in cast("list[tuple[str, str, int]]", list(summary_query(key).tuples())):
        channels.setdefault(channel, {})[status] = int(count)
    recipients, held = cast("tuple[int, int]", Notification.select(fn.COUNT(Notification.id),
                                                                    fn.COUNT(Notification.digest_id))
                            .where(Notification.key == key).tuples().get())
    return {"recipients": int(recipients), "held_in_digest": int(held),
            "channels": {channel: dict(sorted(counts.items())) for channel, counts in sorted(channels.items())}}


def _recipients(rows: list[Notification], now: dt.datetime) -> list[dict]:
    digests = {d.id: d for d in Digest.select().where(Digest.id.in_({n.digest_id for n in rows if n.digest_id}))} \
        if any(n.digest_id for n in rows) else {}
    # a digest item has no deliveries of its own: its digest's grouped notification has them
    grouped = {d.notification_id: d for d in digests.values() if d.notification_id is not None}
    owners = [n.id for n in rows] + list(grouped)
    deliveries: dict[int, list[Delivery]] = {}
    if owners:
        for d in Delivery.select().where(Delivery.notification.in_(owners)).order_by(Delivery.notification, Delivery.channel):
            deliveries.setdefault(d.notification_id, []).append(d)
    logged = attempt_log.of([d.id for ds in deliveries.values() for d in ds])
    escalated = {e.notification_id: e for e in Escalation.select().where(Escalation.notification.in_(owners))} \
        if owners else {}
    out = []
    for n in rows:
        digest = digests.get(n.digest_id) if n.digest_id else None
        owner, type_ = (digest.notification_id or 0, digest.type) if digest is not None else (n.id, n.type)
        out.append({
            "user_id": n.user_id, "notification_id": n.id, "created_at": isoformat(n.created_at),
            "read_at": isoformat(n.read_at), "seen_at": isoformat(n.seen_at or n.read_at),  # (read implies seen)
            "archived_at": isoformat(n.archived_at), "reason": _held(n, digest) or _lapsed(n, now),
            "digest": None if digest is None else {
                "id": digest.id, "batch_key": digest.batch_key, "closes_at": isoformat(digest.closes_at),
                "closed_at": isoformat(digest.closed_at), "notification_id": digest.notification_id},
            "deliveries": [_delivery(d, n, type_, logged.get(d.id, []), now) for d in deliveries.get(owner, [])],
            # a digest item escalates as its digest's notification (its own row only says it is held)
            "escalation": describe_escalation(escalated.get(owner) if owner != n.id and owner else escalated.get(n.id),
                                              n.read_at if owner == n.id else None),
        })
    return out


def _held(n: Notification, digest: Digest | None) -> dict | None:
    if n.digest_id is None:
        return None
    base = {"code": "held_in_digest", "digest_id": n.digest_id,
            "digest_notification_id": digest.notification_id if digest is not None else None}
    if digest is None:
        return {**base, "text": f"held in digest {n.digest_id}"}
    if digest.notification_id is None:
        return {**base, "until": isoformat(digest.closes_at),
                "text": f"held in digest {digest.id} ({digest.batch_key}) until it closes at {isoformat(digest.closes_at)}"}
    return {**base, "text": f"sent as digest {digest.id} ({digest.batch_key}): notification {digest.notification_id}, "
                            f"closed at {isoformat(digest.closed_at)}"}


def _lapsed(n: Notification, now: dt.datetime) -> dict | None:
    """The notification's own reason: retracted, expired, or scheduled for later."""
    if n.retracted_at is not None:
        return {"code": "retracted", "at": isoformat(n.retracted_at),
                "text": f"retracted by its producer at {isoformat(n.retracted_at)}"}
    if n.expires_at is not None and n.expires_at <= now:
        return {"code": "expired", "at": isoformat(n.expires_at), "text": f"expired at {isoformat(n.expires_at)}"}
    if n.send_at is not None and n.send_at > now:
        return {"code": "scheduled", "until": isoformat(n.send_at), "text": f"scheduled for {isoformat(n.send_at)}"}
    return None


def _delivery(d: Delivery, n: Notification, type_: str | None, logged: list[dict], now: dt.datetime) -> dict:
    return {
        "id": d.id, "notification_id": d.notification_id, "channel": d.channel, "state": d.status,
        "attempts": d.attempts, "created_at": isoformat(d.created_at), "updated_at": isoformat(d.updated_at),
        "sent_at": isoformat(d.sent_at), "next_attempt_at": isoformat(d.next_attempt_at),
        "deferred_until": isoformat(d.deferred_until), "last_error": d.last_error,
        "reason": reason(d, n, type_, now), "attempt_log": attempt_log.derived(d, logged),
    }


def reason(d: Delivery, n: Notification, type_: str | None, now: dt.datetime) -> dict | None:
    """Why delivery ``d`` (of notification ``n``, or of its digest's) was not sent, or is not yet; None once sent."""
    status, error = d.status, d.last_error
    if status == states.SENT:
        return None
    if status in states.OWED - {states.SENDING} and n.digest_id is None:
        lapsed = _lapsed(n, now)  # (retracted ones are withdrawn at once; expired ones when a worker looks)
        if lapsed is not None and lapsed["code"] != "scheduled":
            return {**lapsed, "text": lapsed["text"] + "; it will not be sent"}
    if status == states.SKIPPED:
        return _skipped(d, type_)
    if status == states.WITHDRAWN:
        retracted = (error or "").startswith("retracted") or n.retracted_at is not None
        at = n.retracted_at if retracted else n.expires_at
        return {"code": "retracted" if retracted else "expired", "at": isoformat(at), "text": error or ""}
    if status == states.FAILED:
        return {"code": "failed", "error": error, "dead_letter": f"delivery:{d.id}",
                "text": f"{error} (a dead letter: notif dlq replay delivery:{d.id} sends it again)"}
    if status == states.DISCARDED:
        return {"code": "discarded", "error": error, "text": f"purged from the dead letters; it had failed: {error}"}
    if status == states.SHADOW:
        return {"code": "shadow", "at": isoformat(d.sent_at),
                "text": f"shadow mode (NOTIF_SHADOW): recorded at {isoformat(d.sent_at)} as would-be-sent, not sent"}
    if status == states.SCHEDULED:
        until = d.next_attempt_at or n.send_at
        return {"code": "scheduled", "until": isoformat(until), "text": f"scheduled for {isoformat(until)}"}
    if status == states.DEFERRED:
        until = d.deferred_until or d.next_attempt_at
        return {"code": "rate_limited", "until": isoformat(until), "text": error or f"rate limited until {isoformat(until)}"}
    if status == states.SENDING:
        return {"code": "sending", "since": isoformat(d.updated_at), "text": f"a worker took it at {isoformat(d.updated_at)}"}
    if d.attempts and error:
        return {"code": "retrying", "until": isoformat(d.next_attempt_at), "error": error,
                "text": f"attempt {d.attempts} failed: {error}; next attempt {isoformat(d.next_attempt_at) or 'soon'}"}
    return {"code": "queued", "text": "waiting for a worker"}


def _skipped(d: Delivery, type_: str | None) -> dict:
    kind = reasons.preference_of(d.reason_code)
    text = d.last_error or "skipped"
    if kind is not None or d.reason_code == reasons.OPTED_OUT:
        setting = {"channel": f"channels.{d.channel}", "type": f"types.{type_}",
                   "type_channel": f"type_channels.{type_}.{d.channel}"}.get(kind or "")
        return {"code": "opted_out", "preference": kind, "setting": setting, "text": text}
    return {"code": d.reason_code or reasons.SKIPPED, "text": text}


def _absent(user: str, message: dict, fanout: Fanout | None) -> dict:
    """``?user=`` names someone with no notification under the key: why."""
    if message["cancelled_at"]:
        why = {"code": "cancelled", "at": message["cancelled_at"],
               "text": f"the message was cancelled at {message['cancelled_at']} before it went out"}
    elif message["retracted_at"]:
        why = {"code": "retracted", "at": message["retracted_at"],
               "text": f"the message was retracted at {message['retracted_at']} before it was stored"}
    elif fanout is not None:
        member = cast("tuple[int] | None", TopicMember.select(TopicMember.id).where(
            (TopicMember.topic == fanout.topic_id) & (TopicMember.user_id == user)).tuples().first())
        if member is not None and fanout.outcome == RUNNING and fanout.cursor < member[0] <= fanout.upto:
            why = {"code": "fanning_out", "text": f"topic {fanout.topic}: the fan-out has not reached this subscriber yet"}
        elif member is not None and member[0] > fanout.upto:
            why = {"code": "not_a_recipient",
                   "text": f"subscribed to topic {fanout.topic} after the message was ingested"}
        else:
            why = {"code": "not_a_recipient", "text": f"not subscribed to topic {fanout.topic} when the message was "
                                                      f"ingested ({fanout.outcome})"}
    else:
        why = {"code": "not_a_recipient", "text": "not among the message's recipients"}
    return {"user_id": user, "notification_id": None, "created_at": None, "read_at": None, "seen_at": None,
            "archived_at": None, "reason": why,
            "digest": None, "deliveries": [], "escalation": None}
