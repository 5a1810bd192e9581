"""Update and retract: ``{"update": key, …}`` and ``{"retract": key}`` change what was sent.

An update changes every recipient's notification with that key (``variables`` re-render
its template; ``title``, ``message``, ``data`` replace; ``unread: true`` marks it unread
again) and each user's open streams get ``event: updated``. A retract hides it from every
inbox (``retracted_at``, kept as a tombstone until retention deletes it), withdraws its
deliveries not sent yet (state ``withdrawn``) and streams get ``event: removed``.

Both are remembered (:class:`~notif.models.Amendment`, for ``KEEP_DAYS``): SQS does not keep
order, so a notification arriving after its update or retract gets the update applied, or
is dropped (:func:`apply_remembered`, called by :func:`notif.ingest.store`). An amendment
is applied once, by its own idempotency key (its ``id``, else its SQS MessageId); a
redelivered copy changes nothing and only publishes the current state again. On PostgreSQL
an advisory lock per key serialises an amendment with a store of the same key, so neither
can miss the other.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import cast

import peewee
import redis

from . import delivery_states as states
from .db import database
from .errors import PermanentError
from .live import publish, removed_event, unread_counts, updated_event
from .locales import preferences_of, preferred, recipient_locale
from .models import Amendment, Delivery, Notification, utcnow
from .prepare import Amend, check_output
from .runtime import Runtime
from .templates import Rendered

log = logging.getLogger(__name__)

LOCK_CLASS = 7_370_009  # the advisory lock space of "a notification key" (the migration lock is a bigint of its own)
PUBLISH_CHUNK = 1000


def lock_keys(keys: Iterable[str]) -> None:
    """PostgreSQL: hold, until the transaction ends, a lock per key (in a fixed order: no deadlock)."""
    ordered = sorted(set(keys))
    if ordered and isinstance(database.obj, peewee.PostgresqlDatabase):
        database.execute_sql("SELECT pg_advisory_xact_lock(%s, hashtext(k)) FROM unnest(%s::text[]) AS k",
                             (LOCK_CLASS, ordered))


def content(rt: Runtime, type_: str | None, changes: dict, locale: str | None = None) -> dict:
    """The column values an update's ``changes`` set on a notification of template ``type_`` (in ``locale``)."""
    values: dict = {}
    variables = changes.get("variables")
    if variables is not None and type_ and type_ in rt.templates.types():
        rendered = rt.templates.render(type_, variables, locale)
        check_output(rendered, type_, changes.get("data"))
        values.update(title=rendered.title, message=rendered.message, html=rendered.html,
                      actions=rendered.actions or None, channel_content=rendered.channel_content)
    elif variables is not None:
        log.info("update's variables ignored: the notification has no template", extra={"type": type_})
    for name in ("title", "message"):
        if changes.get(name) is not None:
            values[name] = changes[name]
    if "title" in values or "message" in values:
        check_output(Rendered(values.get("title", ""), values.get("message", ""), values.get("html"), []), type_, None)
    if "data" in changes:
        values["data"] = changes["data"]
    if changes.get("unread"):
        # unread again, so out of the archive too (archived implies read: notif.models); still seen
        values.update(read_at=None, archived_at=None, seen_at=peewee.fn.COALESCE(Notification.seen_at, Notification.read_at))
    return values


def apply_remembered(rt: Runtime, rows: list[dict]) -> list[dict]:
    """Inside a store's transaction: the rows about to be inserted, with the updates that came
    before them applied, minus those a retract came before."""
    keys = {row["key"] for row in rows}
    if not keys:
        return rows
    lock_keys(keys)
    found = list(Amendment.select().where(Amendment.target.in_(list(keys))).order_by(Amendment.created_at, Amendment.id))
    if not found:
        return rows
    retracted = {a.target for a in found if a.kind == "retract"}
    if retracted:
        log.info("send dropped: retracted before it arrived", extra={"keys": sorted(retracted)})
    kept = [row for row in rows if row["key"] not in retracted]
    for amendment in found:
        if amendment.kind != "update":
            continue
        for row in kept:
            if row["key"] != amendment.target:
                continue
            try:
                values = content(rt, row["type"], amendment.changes or {}, recipient_locale(row["recipient"]))
            except PermanentError as exc:  # it was checked when it came; a template changed since
                log.warning("remembered update not applied", extra={"key": amendment.target, "reason": exc.reason})
                continue
            for state in ("read_at", "archived_at", "seen_at"):
                values.pop(state, None)  # a new notification is unread, unseen and in the inbox anyway
            row.update(values, updated_at=amendment.created_at)
    return kept


def amend(rt: Runtime, item: Amend) -> int:
    """Apply one update or retract (once), then publish the result; returns the notifications changed.

    Raises PermanentError when an update's new content is not valid (a missing variable)."""
    now = utcnow()
    mine = Notification.key == item.target
    changed = 0
    with database.atomic():
        lock_keys([item.target])
        new = Amendment.get_or_none(Amendment.id == item.id) is None
        if new:
            if item.kind == "retract":
                rows = cast("list[tuple[int]]", list(Notification.update(retracted_at=now)
                                                     .where(mine & Notification.retracted_at.is_null())
                                                     .returning(Notification.id).tuples().execute()))
                changed = len(rows)
                _withdraw([i for (i,) in rows], "retracted by its producer")
            else:
                type_ = Notification.select(Notification.type).where(mine).scalar()
                values = content(rt, type_, item.changes or {})
                changed = Notification.update(**values, updated_at=now).where(
                    mine & Notification.retracted_at.is_null()).execute()
                if (item.changes or {}).get("variables") is not None and rt.templates.localized(type_):
                    _localize(rt, item, type_)
            Amendment.insert(id=item.id, target=item.target, kind=item.kind, changes=item.changes,
                             correlation_id=item.message.correlation_id, created_at=now).execute()
    log.info(f"{item.kind} handled", extra={
        "key": item.target, "amendment_id": item.id, "notifications": changed, "duplicate": not new,
        "correlation_id": item.message.correlation_id})
    _announce(rt, item)
    return changed


def _localize(rt: Runtime, item: Amend, type_: str | None) -> None:
    """An update's re-rendering, for the recipients whose locale (the message's, else their preference's) has
    its own template: one UPDATE per locale. A localized template that fails keeps the default rendering."""
    rows = cast("list[tuple[int, str, dict | None]]", list(
        Notification.select(Notification.id, Notification.user_id, Notification.recipient)
        .where((Notification.key == item.target) & Notification.retracted_at.is_null()).tuples()))
    prefs = preferences_of(user for _, user, _ in rows)
    groups: dict[str, list[int]] = {}
    for nid, user, recipient in rows:
        locale = recipient_locale(recipient) or preferred(prefs.get(user))
        found = rt.templates.get(type_, locale).locale if type_ and locale else None
        if found is not None:
            groups.setdefault(found, []).append(nid)
    for locale, ids in groups.items():
        try:
            values = content(rt, type_, {"variables": (item.changes or {})["variables"]}, locale)
        except PermanentError as exc:
            log.error("localized template failed for an update; the default rendering stays",
                      extra={"key": item.target, "locale": locale, "reason": exc.reason})
            continue
        for start in range(0, len(ids), PUBLISH_CHUNK):
            Notification.update(**values).where(Notification.id.in_(ids[start:start + PUBLISH_CHUNK])).execute()


def _withdraw(notification_ids: list[int], reason: str) -> None:
    """Deliveries of these notifications not sent yet are never sent."""
    if not notification_ids:
        return
    for frm in (states.PENDING, states.SCHEDULED, states.DEFERRED):
        ids = [d for (d,) in cast("list[tuple[int]]", list(
            Delivery.select(Delivery.id).where(Delivery.notification.in_(notification_ids) & (Delivery.status == frm))
            .tuples()))]
        states.move_many(ids, frm, states.WITHDRAWN, last_error=reason, next_attempt_at=None)


def _announce(rt: Runtime, item: Amend) -> None:
    """Tell the users' open streams (best effort: the inbox API already shows the change)."""
    if rt.live is None or not rt.settings.feature("sse"):
        return
    mine = Notification.key == item.target
    if item.kind == "retract":
        query = Notification.select(Notification.id, Notification.user_id).where(
            mine & Notification.retracted_at.is_null(False))
    else:
        query = Notification.select().where(mine & Notification.visible())
    rows = list(query)
    try:
        for start in range(0, len(rows), PUBLISH_CHUNK):
            chunk = rows[start:start + PUBLISH_CHUNK]
            counts = unread_counts({n.user_id for n in chunk})
            pipe = rt.live.pipeline(transaction=False)
            for n in chunk:
                event = (removed_event(n.id, counts.get(n.user_id, 0)) if item.kind == "retract"
                         else updated_event(n, counts.get(n.user_id, 0)))
                publish(pipe, rt.settings, n.user_id, event)
            pipe.execute()
    except redis.RedisError:
        log.warning("could not publish an update or retract; open inboxes see it on reload",
                    extra={"key": item.target, "correlation_id": item.message.correlation_id}, exc_info=True)
