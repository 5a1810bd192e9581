"""Prepare: one received SQS message, validated and rendered, as the rows it would store.

Nothing is written here. :func:`prepare` parses the body (:mod:`notif.messages`), renders
its template (:mod:`notif.templates`) or takes its literal title and message, and decides
its channels, priority, scheduled time and digest window; :func:`notif.ingest.store`
writes what it returns. Bad input raises a :class:`~notif.errors.PermanentError` that
names the field, for the dead letter; so does rendered content the store cannot hold or
a link a page must not follow (:func:`notif.templates.output_problem`, and ``data.url``,
which a push notification opens when clicked).
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from .digests import DigestSpec, spec_for
from .errors import InvalidMessage, PermanentError
from .escalations import EscalationSpec
from .escalations import spec_for as escalation_for
from .inputs import link_problem
from .locales import preferred, recipient_locale
from .messages import CancelMessage, RetractMessage, UpdateMessage, parse_message
from .models import utcnow
from .runtime import Runtime
from .sqs import Received
from .templates import Rendered, Template, output_problem, render

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """One valid message, rendered: the rows it would insert."""

    message: Received
    notifications: list[dict]
    channels: list[str]
    critical: bool = False  # ignores the users' opt-outs
    digest: DigestSpec | None = None  # held for a digest window instead of sent on its own
    variables: dict | None = None
    topic: str | None = None  # a topic message: ``notifications`` is empty, ``each`` is every member's row
    each: dict | None = None  # the row a topic's members get (``user_id`` filled in per member at fan-out)
    escalate: EscalationSpec | None = None  # still unread after a while: sent on other channels (notif.escalations)
    template: str | None = None  # the template rendered (None: a literal title and message): localize() renders it again


@dataclass
class Cancel:
    """A ``{"cancel": key}`` message."""

    message: Received
    key: str


@dataclass
class Amend:
    """An ``{"update": key, …}`` or ``{"retract": key}`` message (:mod:`notif.amendments`)."""

    message: Received
    id: str  # its own idempotency key
    kind: str  # "update" | "retract"
    target: str  # the key of the notification it changes
    changes: dict | None = None


def prepare(rt: Runtime, received: Received) -> Prepared | Cancel | Amend:
    """Validate and render one message; raises PermanentError on bad input."""
    msg = parse_message(received.body)
    if isinstance(msg, CancelMessage):
        return Cancel(received, msg.cancel)
    if isinstance(msg, (UpdateMessage, RetractMessage)):
        own = msg.id or received.original_id or received.message_id
        if isinstance(msg, RetractMessage):
            return Amend(received, own, "retract", msg.retract)
        changes = msg.changes()
        if "data" in changes:
            check_output(Rendered(title=msg.title or "", message=msg.message or "", html=None, actions=[]), None,
                          changes["data"])
        return Amend(received, own, "update", msg.update, changes)
    settings = rt.settings
    # InputMessage's validator guarantees a type wherever there is no literal title and message
    template = rt.templates.get(msg.type) if msg.uses_template and msg.type else None
    content = (rt.templates.render(template.type, msg.variables) if template is not None
               else Rendered(title=msg.title or "", message=msg.message or "", html=None, actions=[]))
    check_output(content, template.type if template else None, msg.data)
    channels = list(dict.fromkeys(msg.channels or (template.channels if template else ()) or settings.default_channels))
    key = msg.id or received.original_id or received.message_id
    sent_at = (dt.datetime.fromtimestamp(received.sent_ms / 1000, dt.UTC).replace(tzinfo=None)
               if received.sent_ms else None)
    now = utcnow()
    send_at = (msg.send_at.astimezone(dt.UTC).replace(tzinfo=None)
               if msg.send_at and settings.feature("scheduling") else None)  # off: it goes out now
    if send_at is not None and send_at <= now:
        send_at = None  # a time in the past means now
    expires_at = (msg.expires_at.astimezone(dt.UTC).replace(tzinfo=None) if msg.expires_at is not None
                  else now + dt.timedelta(seconds=msg.ttl) if msg.ttl is not None else None)
    priority = (msg.priority or received.priority) if settings.feature("priorities") else "normal"
    # a topic message is never digested (a window per subscriber of a million would not be a digest)
    digest = spec_for(msg.batch_key, msg.batch_window, template, priority, scheduled=send_at is not None,
                      default_window=settings.digest_window) if settings.feature("digests") and not msg.topic else None
    rows = []
    recipients = msg.recipient_list() if msg.topic is None else [None]
    localized: dict[str | None, Rendered] = {None: content}  # by the recipient's locale (the message's)
    for recipient in recipients:
        extra = recipient.model_dump(exclude={"user_id"}, exclude_none=True) if recipient is not None else None
        locale = recipient.locale if recipient is not None else None
        if locale not in localized:
            localized[locale] = in_locale(rt, template, msg.variables, locale, msg.data, content) if template else content
        words = localized[locale]
        rows.append({
            "user_id": recipient.user_id if recipient is not None else None,
            "key": key,
            "type": msg.type,
            "title": words.title,
            "message": words.message,
            "html": words.html,
            "actions": words.actions or None,
            "data": msg.data,
            "recipient": extra or None,
            "channel_content": words.channel_content,
            "priority": priority,
            "correlation_id": received.correlation_id,
            "sqs_message_id": received.message_id,
            "sqs_sent_at": sent_at,
            "created_at": now,
            "send_at": send_at,
            "expires_at": expires_at,
            "updated_at": None,
            "digest_id": None,
            "variables": None,
        })
    critical = bool(template and template.critical)
    escalate = escalation_for(msg.escalate, template, channels, rt.channels)
    used = template.type if template is not None else None
    if msg.topic is not None:  # (its variables kept only if its members may need it rendered in their locales)
        return Prepared(received, [], channels, critical=critical, topic=msg.topic, each=rows[0], escalate=escalate,
                        template=used, variables=msg.variables if rt.templates.localized(used) else None)
    return Prepared(received, rows, channels, critical=critical, digest=digest, variables=msg.variables,
                    escalate=escalate, template=used)


def localize(rt: Runtime, prepared: list[Prepared], prefs: dict[str, dict]) -> None:
    """Inside the store: each row whose recipient the message gave no locale, but whose preferences (``prefs``,
    read once for the batch) name one, rendered in that locale (once per message and locale). A row an update
    that overtook it re-rendered (``updated_at``) keeps that rendering."""
    done: dict[tuple[int, str], Rendered] = {}
    for p in prepared:
        if p.template is None or not p.notifications or not rt.templates.localized(p.template):
            continue
        template = rt.templates.get(p.template)
        for row in p.notifications:
            locale = preferred(prefs.get(row["user_id"]))
            if locale is None or recipient_locale(row["recipient"]) or row["updated_at"] is not None:
                continue
            if (id(p), locale) not in done:
                done[(id(p), locale)] = in_locale(rt, template, p.variables or {}, locale, row["data"], rendered_of(row))
            words = done[(id(p), locale)]
            row.update(title=words.title, message=words.message, html=words.html, actions=words.actions or None,
                       channel_content=words.channel_content)


def rendered_of(row: dict) -> Rendered:
    """What a notification row holds, as a rendering (the default one, before a locale's)."""
    return Rendered(row["title"], row["message"], row["html"], row["actions"] or [], row["channel_content"])


def in_locale(rt: Runtime, template: Template, variables: dict, locale: str | None, data: object,
              default: Rendered) -> Rendered:
    """``template``'s type rendered in ``locale`` (its fallback chain); ``default`` when that is the default template,
    or when the localized one fails to render or renders what may not be stored (logged: the message still goes,
    in the default language)."""
    found = rt.templates.get(template.type, locale)
    if found.locale is None:
        return default
    try:
        rendered = render(found, variables, rt.templates.max_output)
        check_output(rendered, template.type, data)
    except PermanentError as exc:
        log.error("localized template failed; the default one is used", extra={
            "type": template.type, "locale": found.locale, "path": found.path, "reason": exc.reason})
        return default
    return rendered


def check_output(content: Rendered, template_type: str | None, data: object) -> None:
    """Raise InvalidMessage naming the field if what would be stored breaks a rule."""
    problem = output_problem(content)
    if problem:
        field, reason = problem
        by = f" (rendered by template {template_type})" if template_type else ""
        raise InvalidMessage(f"{field}: {reason}{by}", field=field)
    # `data` is free-form, but `data.url` is the link a push notification opens (plugins/push.py)
    if isinstance(data, dict) and data.get("url") is not None and (unsafe := link_problem(data["url"])):
        raise InvalidMessage(f"data.url: {unsafe} (a push notification opens it when clicked)", field="data.url")
