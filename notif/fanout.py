"""Fan-out: a message for a topic, stored chunk by chunk, each chunk its own short transaction.

1. Ingest writes a :class:`~notif.models.Fanout` row in its batch transaction
   (:func:`begin`): the notification every member gets, and ``upto``, the largest member
   id at that moment, so exactly those subscribed when the message was ingested receive it.
   Its ``key`` is unique: a redelivered SQS message makes no second fan-out.
2. A ``fanout_<priority>`` actor stores one chunk (:func:`step`): with the fan-out row
   locked, the next ``NOTIF_FANOUT_CHUNK`` members' notifications (one ``INSERT … SELECT``
   from the member table, duplicates ignored), their outbox rows (on PostgreSQL one
   ``INSERT … SELECT FROM unnest(…)``, :func:`~notif.outbox.copy_rows`), and the cursor moved
   past them, all in one transaction. It then sends itself again for the next chunk, so
   other work (HIGH first) takes the worker's threads in between.
3. A crash mid-fan-out leaves the cursor at the last committed chunk: Dramatiq's
   redelivery, or the scheduler's :func:`resume_stalled`, runs :func:`step` again from
   there. A chunk stored twice inserts nothing (unique ``(user, key)``), so every member
   gets it exactly once.

Webhooks (:mod:`notif.webhooks`): a topic message is reported once, ``notification.stored``
with the recipient count, written by the step that finishes its fan-out; with
``NOTIF_WEBHOOK_TOPIC_RECIPIENTS`` each chunk writes one event per recipient instead, in one
statement with the chunk. A fan-out stopped by a cancel or retract reports nothing.

An unknown or empty topic is not an error: the fan-out is recorded as finished with that
outcome, logged and counted, and the message is acknowledged.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field, replace
from typing import cast

import peewee

from .amendments import apply_remembered
from .cancels import cancelled_keys
from .db import database, is_postgres
from .errors import TemplateError
from .escalations import EscalationSpec
from .escalations import schedule as schedule_escalations
from .locales import preferences_of, preferred
from .models import Fanout, Notification, Topic, TopicMember, utcnow
from .outbox import OwedDelivery, QueuedDelivery, copy_rows
from .prepare import in_locale, rendered_of
from .runtime import Runtime
from .webhooks import events as webhook_events

log = logging.getLogger(__name__)

RUNNING, DONE, UNKNOWN, EMPTY, CANCELLED = "running", "done", "unknown_topic", "empty_topic", "cancelled"
#: the notification columns a fan-out copies to every member (all but ids, user and read state)
COPIED = ("key", "type", "title", "message", "html", "actions", "data", "recipient", "channel_content", "priority",
          "correlation_id", "sqs_message_id", "sqs_sent_at", "created_at", "send_at", "digest_id", "variables",
          "expires_at", "updated_at")
ESCALATE = "escalate"  # beside COPIED in a fan-out's row: the message's escalation, which each member's gets
VARIABLES = "variables_for_locales"  # beside COPIED too: a localized template's variables (notif.locales)


@dataclass(frozen=True)
class Begun:
    """A fan-out :func:`begin` wrote (``id`` None: its key had one already)."""

    id: int | None
    key: str
    priority: str
    topic: str
    outcome: str  # running, or unknown_topic / empty_topic (finished at once)


@dataclass(frozen=True)
class Chunk:
    """What one :func:`step` did."""

    priority: str  # the fan-out's (its next chunk goes to this priority's actor)
    stored: int  # notifications inserted
    queued: list[QueuedDelivery]  # pending deliveries to hand to the workers (after the commit)
    more: bool  # members are left: run another step
    outcome: str  # the fan-out's outcome after this step
    notification: dict | None = None  # the columns every notification of the chunk shares (all but id and user)
    webhooks: list[int] = field(default_factory=list)  # webhook events written, to hand to the sender (after the commit)


def begin(topic: str, row: dict, channels: list[str], critical: bool, now: dt.datetime,
          escalate: EscalationSpec | None = None, variables: dict | None = None) -> Begun:
    """Record a topic message (inside ingest's transaction); nothing is stored for its members yet.
    Its escalation, and the variables its members' locales render it with, are kept beside the
    notification's columns in ``row``."""
    found = cast("tuple[int] | None", Topic.select(Topic.id).where(Topic.name == topic).tuples().first())
    topic_id = found[0] if found else None
    upto = 0
    if topic_id is not None:
        upto = TopicMember.select(peewee.fn.MAX(TopicMember.id)).where(TopicMember.topic == topic_id).scalar() or 0
    outcome = RUNNING if upto else UNKNOWN if topic_id is None else EMPTY
    values = {"key": row["key"], "topic": topic, "topic_id": topic_id, "priority": row["priority"],
              "correlation_id": row["correlation_id"], "row": {k: _jsonable(row.get(k)) for k in COPIED}
              | ({ESCALATE: {"after": escalate.after, "channels": list(escalate.channels)}} if escalate else {})
              | ({VARIABLES: variables} if variables is not None else {}),
              "channels": channels, "critical": critical, "upto": upto, "cursor": 0, "stored": 0,
              "outcome": outcome, "created_at": now, "updated_at": now,
              "finished_at": None if outcome == RUNNING else now}
    inserted = list(Fanout.insert(values).on_conflict_ignore().returning(Fanout.id).tuples().execute())
    return Begun(inserted[0][0] if inserted else None, row["key"], row["priority"], topic, outcome)


def _jsonable(value):
    return value.isoformat() if isinstance(value, dt.datetime) else value


def restored(name: str, value):
    """A column of a fan-out's ``row`` as the notification holds it (its times were stored as ISO text)."""
    if value is not None and name in ("sqs_sent_at", "created_at", "send_at", "expires_at", "updated_at"):
        return dt.datetime.fromisoformat(value)
    return value


def step(rt: Runtime, fanout_id: int) -> Chunk:
    """Store the next chunk of a fan-out in one transaction; idempotent, resumable. The chunk's webhook
    events (:func:`_stored_events`) are written in that transaction, their ids returned with it."""
    written: list[int] = []
    chunk = _store_chunk(rt, fanout_id, written)
    return replace(chunk, webhooks=written) if written else chunk


def _store_chunk(rt: Runtime, fanout_id: int, written: list[int]) -> Chunk:
    now = utcnow()
    with database.atomic():
        query = Fanout.select().where(Fanout.id == fanout_id)
        fanout = (query.for_update() if is_postgres() else query).get_or_none()  # one step of a fan-out at a time
        if fanout is None or fanout.finished_at is not None:
            return Chunk(fanout.priority if fanout else "normal", 0, [], False, fanout.outcome if fanout else DONE)
        if cancelled_keys([fanout.key]):
            log.info("fan-out stopped: its message was cancelled", extra=_context(fanout))
            _finish(fanout, CANCELLED, now)
            return Chunk(fanout.priority, 0, [], False, CANCELLED)
        members = (TopicMember.select(TopicMember.id)
                   .where((TopicMember.topic == fanout.topic_id) & (TopicMember.id > fanout.cursor)
                          & (TopicMember.id <= fanout.upto))
                   .order_by(TopicMember.id).limit(rt.settings.fanout_chunk))
        end = cast("int | None", Fanout.select(peewee.fn.MAX(members.c.id)).from_(members).scalar())
        if end is None:  # the rest left the topic (or it was deleted) since ingest
            written += _stored_events(rt, fanout, fanout.row, [], fanout.stored, now)
            _finish(fanout, DONE, now)
            return Chunk(fanout.priority, 0, [], False, DONE)
        row = {name: restored(name, fanout.row.get(name)) for name in COPIED}
        # an update or retract handled since ingest: later chunks carry it too (amend() changed the stored ones;
        # both hold the key's lock, so each sees the other's work)
        amended = apply_remembered(rt, [row])
        if not amended:
            log.info("fan-out stopped: its message was retracted", extra=_context(fanout))
            _finish(fanout, CANCELLED, now)
            return Chunk(fanout.priority, 0, [], False, CANCELLED)
        row = amended[0]
        fields = [getattr(Notification, name) for name in COPIED]
        constants = [peewee.Value(field.db_value(row[name]), unpack=False) for name, field in zip(COPIED, fields, strict=True)]
        source = (TopicMember.select(TopicMember.user_id, *constants)
                  .where((TopicMember.topic == fanout.topic_id) & (TopicMember.id > fanout.cursor)
                         & (TopicMember.id <= end))
                  .order_by(TopicMember.id))
        inserted = cast("list[tuple[int, str]]", list(
            Notification.insert_from(source, [Notification.user_id, *fields]).on_conflict_ignore()
            .returning(Notification.id, Notification.user_id).tuples().execute()))
        if fanout.row.get(ESCALATE):
            spec = EscalationSpec(fanout.row[ESCALATE]["after"], tuple(fanout.row[ESCALATE]["channels"]))
            schedule_escalations([(nid, spec, row["send_at"] or now) for nid, _ in inserted], now)
        prefs = preferences_of(user for _, user in inserted)  # one read: locales here, opt-outs in copy_rows
        localized = _localize(rt, fanout, row, inserted, prefs)
        template = OwedDelivery(0, "", fanout.priority, fanout.channels, row["type"], fanout.critical, row["send_at"])
        queued = copy_rows(rt, inserted, template, now, prefs)
        more = end < fanout.upto
        written += _stored_events(rt, fanout, row, inserted, None if more else fanout.stored + len(inserted), now)
        Fanout.update(cursor=end, stored=Fanout.stored + len(inserted), updated_at=now,
                      outcome=RUNNING if more else DONE, finished_at=None if more else now).where(
            Fanout.id == fanout_id).execute()
    if not more:
        log.info("fan-out done", extra={**_context(fanout), "stored": fanout.stored + len(inserted)})
    # (a chunk whose members are not all copies of one notification is delivered row by row)
    return Chunk(fanout.priority, len(inserted), queued, more, RUNNING if more else DONE, None if localized else row)


def _localize(rt: Runtime, fanout: Fanout, row: dict, inserted: list[tuple[int, str]],
              prefs: dict[str, dict]) -> list[int]:
    """The chunk's members whose preferences name a locale the template has, rendered in it: one UPDATE per
    locale. Returns their notification ids (none when the message was not rendered from a localized template)."""
    variables = fanout.row.get(VARIABLES)
    groups: dict[str, list[int]] = {}
    for nid, user in inserted:
        if (locale := preferred(prefs.get(user))) is not None:
            groups.setdefault(locale, []).append(nid)
    if variables is None or not groups or row["updated_at"] is not None or not row["type"]:
        return []  # (an update re-rendered it since: its rendering stands)
    try:
        template = rt.templates.get(row["type"])
    except TemplateError:
        return []
    default = rendered_of(row)
    changed: list[int] = []
    for locale, ids in groups.items():
        words = in_locale(rt, template, variables, locale, row["data"], default)
        if words is not default:
            Notification.update(title=words.title, message=words.message, html=words.html,
                                actions=words.actions or None, channel_content=words.channel_content).where(
                Notification.id.in_(ids)).execute()
            changed += ids
    return changed


def _stored_events(rt: Runtime, fanout: Fanout, row: dict, inserted: list[tuple[int, str]], done: int | None,
                   now: dt.datetime) -> list[int]:
    """``notification.stored`` for a chunk (inside its transaction): per recipient of ``inserted`` with
    NOTIF_WEBHOOK_TOPIC_RECIPIENTS, else once for the message when the fan-out is ``done`` (with that many
    recipients, if any). Returns the events' ids."""
    kind = webhook_events.NOTIFICATION_STORED
    if not rt.webhooks.wants(kind):
        return []
    send_at = row.get("send_at")  # (ISO text in a fan-out's stored row)
    send_at = dt.datetime.fromisoformat(send_at) if isinstance(send_at, str) else send_at
    if rt.webhooks.topic_recipients:
        return rt.webhooks.write([(kind, now, webhook_events.stored(
            notification_id, fanout.key, user_id, row.get("type"), fanout.priority, fanout.correlation_id,
            fanout.channels, send_at, topic=fanout.topic)) for notification_id, user_id in inserted])
    if not done:
        return []
    return rt.webhooks.write([(kind, now, webhook_events.topic_stored(
        fanout.key, fanout.topic, row.get("type"), fanout.priority, fanout.correlation_id, fanout.channels, done,
        send_at))])


def _finish(fanout: Fanout, outcome: str, now: dt.datetime) -> None:
    Fanout.update(outcome=outcome, finished_at=now, updated_at=now).where(Fanout.id == fanout.id).execute()


def _context(fanout: Fanout) -> dict:
    return {"fanout_id": fanout.id, "topic": fanout.topic, "key": fanout.key, "correlation_id": fanout.correlation_id,
            "priority": fanout.priority}


def resume_stalled(stall_seconds: float, limit: int = 1000) -> list[tuple[int, str]]:
    """Fan-outs not finished and not moved for ``stall_seconds`` (their worker died, their
    message was lost): touched now and returned as (id, priority), to be sent again."""
    now = utcnow()
    stalled = cast("list[tuple[int, str]]", list(
        Fanout.select(Fanout.id, Fanout.priority)
        .where(Fanout.finished_at.is_null() & (Fanout.updated_at < now - dt.timedelta(seconds=stall_seconds)))
        .order_by(Fanout.id).limit(limit).tuples()))
    if stalled:
        Fanout.update(updated_at=now).where(Fanout.id.in_([fid for fid, _ in stalled])).execute()
        log.warning("resuming stalled fan-outs", extra={"fanout_ids": [fid for fid, _ in stalled][:50]})
    return stalled
