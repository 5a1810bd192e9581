"""Digests: notifications for one (user, batch key) inside a window become one.

Nothing is held in memory. A message with a ``batch_key`` (or whose template has a
``[digest] window``) is stored at once as a hidden *item* of the bucket's open
:class:`~notif.models.Digest` window, in the same transaction as every other row of its
batch; it gets no deliveries of its own. When the window's time is up, the leading
scheduler closes it: in one transaction it marks the window closed, renders one grouped
notification from every item (the count and the list), and writes that notification's
deliveries. A window holding one item sends that item as it was.

Races, and why none can lose or double an item:

- one open window per bucket: ``open_key`` is unique while open and NULL once closed;
- an ingest that adds an item first *updates* the open window's row, which locks it until
  the ingest commits; the closer's conditional update waits for that lock, so it sees the
  item (PostgreSQL re-reads the row after the wait; SQLite serialises writers anyway);
- if the closer wins, the ingest's update matches nothing and it opens a new window;
- the grouped notification's key is ``digest-<window id>``: closing twice stores it once.

The grouped notification is what the host app's webhooks hear of (``notification.stored``, with
the batch key and item count, written in the closing transaction); its items are not reported.

HIGH priority and scheduled (``send_at``) messages are never digested.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import cast

import peewee

from .db import database
from .errors import NotifError, TemplateError
from .escalations import follow_digest
from .locales import preferences_of, preferred, recipient_locale
from .models import Digest, Notification, isoformat, utcnow
from .outbox import Enqueue, OwedDelivery, QueuedDelivery, delivery_rows
from .runtime import Runtime
from .templates import Rendered, output_problem, render_digest
from .webhooks import events as webhook_events

log = logging.getLogger(__name__)

MAX_ITEMS_RENDERED = 100  # a digest lists at most this many items; `count` is always the full number
MAX_PLAIN_MESSAGE = 10_000  # the last resort's message (the titles): as long as a literal message may be
MAX_ATTEMPTS = 3  # opening a window: update, else insert, else another ingest just did — update again


@dataclass(frozen=True)
class DigestSpec:
    """What a message asked for: group under ``batch_key`` for ``window`` seconds."""

    batch_key: str
    window: int


def spec_for(batch_key: str | None, batch_window: int | None, template, priority: str, scheduled: bool,
             default_window: int) -> DigestSpec | None:
    """The digest a message joins, or None when it is sent on its own."""
    if priority == "high" or scheduled:
        return None
    template_digest = template.digest if template is not None else {}
    if batch_key is None and "window" not in template_digest:
        return None
    key = batch_key or str(template_digest.get("key") or template.type)
    window = batch_window or template_digest.get("window") or default_window
    return DigestSpec(key, int(window))


def join_window(user_id: str, spec: DigestSpec, type_: str | None, priority: str, channels: list[str],
                now: dt.datetime) -> int:
    """The id of the bucket's open window, opening one if there is none. Call inside the
    transaction that stores the item: the update locks the window until that commit."""
    bucket = Digest.bucket(user_id, spec.batch_key)
    for _ in range(MAX_ATTEMPTS):
        touched = list(Digest.update(updated_at=now).where(Digest.open_key == bucket)
                       .returning(Digest.id).tuples().execute())
        if touched:
            return touched[0][0]
        opened = list(Digest.insert(user_id=user_id, batch_key=spec.batch_key, open_key=bucket, type=type_,
                                    priority=priority, channels=channels, opened_at=now, updated_at=now,
                                    closes_at=now + dt.timedelta(seconds=spec.window))
                      .on_conflict_ignore().returning(Digest.id).tuples().execute())
        if opened:
            return opened[0][0]
    raise peewee.OperationalError(f"could not join the digest window for {spec.batch_key!r}; the batch is retried")


def _item(n: Notification) -> dict:
    return {"id": n.id, "key": n.key, "type": n.type, "title": n.title, "message": n.message,
            "data": n.data, "variables": n.variables or {}, "created_at": isoformat(n.created_at)}


def close(rt: Runtime, digest_id: int, now: dt.datetime | None = None) -> list[QueuedDelivery] | None:
    """Close one due window: store its grouped notification and deliveries. Returns the
    pending deliveries to enqueue, or None if it was not open and due (another closer won)."""
    now = now or utcnow()
    written: list[int] = []
    pending = _close(rt, digest_id, now, written)
    rt.webhooks.hand_off(written)  # committed by now
    return pending


def _close(rt: Runtime, digest_id: int, now: dt.datetime, written: list[int]) -> list[QueuedDelivery] | None:
    with database.atomic():
        closed = (Digest.update(open_key=None, closed_at=now)
                  .where((Digest.id == digest_id) & Digest.open_key.is_null(False) & (Digest.closes_at <= now))
                  .execute())
        if not closed:
            return None
        digest = Digest.get_by_id(digest_id)
        items = list(Notification.select().where(Notification.digest_id == digest_id).order_by(Notification.id))
        if not items:  # every item was cancelled
            log.info("digest window closed empty", extra={"digest_id": digest_id, "user_id": digest.user_id})
            rt.recorder.digest_closed("empty", 0)
            return []
        row = _grouped(rt, digest, items, now)
        inserted = list(Notification.insert(row).on_conflict_ignore()
                        .returning(Notification.id).tuples().execute())
        if not inserted:  # stored by an earlier close that did not finish marking the window
            return []
        notification_id = inserted[0][0]
        Digest.update(notification_id=notification_id).where(Digest.id == digest_id).execute()
        follow_digest(notification_id, [n.id for n in items], digest.channels, now)  # items asking to escalate
        pending = delivery_rows(rt, [OwedDelivery(notification_id, digest.user_id, digest.priority, digest.channels,
                                                  digest.type, rt.templates.is_critical(digest.type))], now)
        if rt.webhooks.wants(webhook_events.NOTIFICATION_STORED):
            written += rt.webhooks.write([(webhook_events.NOTIFICATION_STORED, now, webhook_events.stored(
                notification_id, row["key"], digest.user_id, digest.type, digest.priority, row["correlation_id"],
                digest.channels, None, digest={"batch_key": digest.batch_key, "count": len(items)}))])
    rt.recorder.digest_closed("sent" if len(items) > 1 else "single", len(items))
    log.info("digest sent", extra={
        "digest_id": digest_id, "user_id": digest.user_id, "batch_key": digest.batch_key, "count": len(items),
        "notification_id": notification_id, "correlation_id": row["correlation_id"],
        "correlation_ids": [n.correlation_id for n in items][:50]})
    return pending


def _grouped(rt: Runtime, digest: Digest, items: list[Notification], now: dt.datetime) -> dict:
    first = items[0]
    listed = [_item(n) for n in items[:MAX_ITEMS_RENDERED]]
    row = {"user_id": digest.user_id, "key": f"digest-{digest.id}", "type": digest.type,
           "priority": digest.priority, "correlation_id": first.correlation_id, "sqs_message_id": None,
           "sqs_sent_at": digest.closes_at, "created_at": now, "send_at": None, "digest_id": None,
           "variables": None, "recipient": first.recipient,
           "data": {"digest": {"batch_key": digest.batch_key, "count": len(items), "items": listed}}}
    if len(items) == 1:  # a window of one is that notification, as it was
        row.update(title=first.title, message=first.message, html=first.html, actions=first.actions,
                   channel_content=first.channel_content)
        return row
    context = {"count": len(items), "items": listed, "batch_key": digest.batch_key, "user_id": digest.user_id}
    # in the user's locale: the one a message gave its items' recipient, else the user's preference
    locale = next(filter(None, (recipient_locale(n.recipient) for n in items)), None) or preferred(
        preferences_of([digest.user_id]).get(digest.user_id))
    rendered = _render(rt, digest, context, locale=locale) or _render(rt, digest, context, generic=True,
                                                                      locale=locale) or Rendered(
        title=f"{len(items)} new notifications", message="; ".join(n.title for n in items)[:MAX_PLAIN_MESSAGE],
        html=None, actions=[])
    row.update(title=rendered.title, message=rendered.message, html=rendered.html, actions=None,
               channel_content=None)
    return row


def _render(rt: Runtime, digest: Digest, context: dict, generic: bool = False,
            locale: str | None = None) -> Rendered | None:
    """The grouped notification from the type's [digest] (else the generic DIGEST template), or
    None when it fails to render or renders something unfit to store: a broken [digest], or
    items too big for NOTIF_TEMPLATE_MAX_OUTPUT, must not lose the items."""
    try:
        rendered = render_digest(rt.templates, None if generic else digest.type, context, locale)
        problem = output_problem(rendered)
        if problem:
            raise TemplateError(f"{problem[0]}: {problem[1]}")
    except NotifError as exc:
        log.error("digest template failed; using the " + ("plain list of titles" if generic else "generic digest"),
                  extra={"digest_id": digest.id, "type": None if generic else digest.type, "reason": str(exc)})
        return None
    return rendered


def close_due(rt: Runtime, enqueue: Enqueue, limit: int = 1000) -> int:
    """Close every window whose time is up (the scheduler's job); returns how many."""
    now = utcnow()
    # (peewee's stubs type a .tuples() query's rows as model instances: the cast says what they are)
    rows = cast("list[tuple[int]]", list(Digest.select(Digest.id)
                                         .where(Digest.open_key.is_null(False) & (Digest.closes_at <= now))
                                         .order_by(Digest.closes_at).limit(limit).tuples()))
    due = [d for (d,) in rows]
    closed = 0
    for digest_id in due:
        try:
            pending = close(rt, digest_id, now)
        except peewee.DatabaseError:
            log.exception("closing a digest window failed; the next pass tries again", extra={"digest_id": digest_id})
            continue
        if pending is None:
            continue
        closed += 1
        if pending:
            enqueue(pending)
    return closed
