"""The input message: what producers put on SQS, validated into :class:`InputMessage`.

See DESIGN.md › Input message. The old worker's camelCase messages (``userId``, ``title``,
``message``, ``type``, ``data``) are accepted too and mapped to the same model. Anything that does not parse is an
:class:`~notif.errors.InvalidMessage` whose ``field`` names the offending field, so the
dead-letter entry tells the producer exactly what to fix. A string the store cannot hold (a
NUL, a lone surrogate: :func:`notif.inputs.unstorable`) is refused here, before anything else.
"""
from __future__ import annotations

import difflib
import json
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import locales
from .errors import InvalidMessage
from .inputs import MAX_USER_ID, TOPIC_NAME, unstorable

MAX_RECIPIENTS = 1000
MAX_BODY = 256 * 1024
MAX_TTL = 10 * 365 * 24 * 3600
MIN_ESCALATE_AFTER = 1  # seconds: `escalate.after` (a template's [escalate] too) is bounded
MAX_ESCALATE_AFTER = 30 * 24 * 3600
MAX_ESCALATE_CHANNELS = 10


class Recipient(BaseModel):
    """One addressee; extra fields (name, locale, …) are kept for templates and channels."""

    model_config = ConfigDict(extra="allow")
    user_id: str = Field(min_length=1, max_length=255)
    email: str | None = Field(default=None, max_length=320)
    locale: str | None = None  # BCP 47-ish (`fr`, `fr-CA`): picks templates/<locale>/ (notif.locales)

    @field_validator("locale")
    @classmethod
    def _locale(cls, locale: str | None) -> str | None:
        if locale is None:
            return None
        why = locales.problem(locale)
        if why:
            raise ValueError(why)
        return locales.normalize(locale)


class Escalate(BaseModel):
    """``{"after": seconds, "channels": [...]}``: if the notification is still unread ``after`` seconds
    after it became visible, send it on ``channels`` too (:mod:`notif.escalations`). Whether each
    channel is one this deployment loads is checked by :func:`notif.prepare.prepare`."""

    model_config = ConfigDict(extra="forbid")
    after: int = Field(strict=True, ge=MIN_ESCALATE_AFTER, le=MAX_ESCALATE_AFTER)
    channels: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=MAX_ESCALATE_CHANNELS)

    @field_validator("channels")
    @classmethod
    def _channels(cls, channels: list[str]) -> list[str]:
        if "in_app" in channels:
            raise ValueError("`in_app` is what escalation follows up on, not a channel to escalate to")
        return list(dict.fromkeys(channels))


class InputMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, min_length=1, max_length=255)
    type: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    title: str | None = Field(default=None, max_length=1000)
    message: str | None = Field(default=None, max_length=10000)
    user_id: str | None = Field(default=None, min_length=1, max_length=MAX_USER_ID)
    recipients: list[str | Recipient] | None = Field(default=None, min_length=1, max_length=MAX_RECIPIENTS)
    topic: str | None = Field(default=None, pattern=TOPIC_NAME)  # every subscriber of this topic, at ingest
    variables: dict[str, Any] = Field(default_factory=dict)
    channels: list[str] | None = Field(default=None, min_length=1)
    priority: Literal["high", "normal", "low"] | None = None
    send_at: AwareDatetime | None = None  # ISO 8601 with a zone
    batch_key: str | None = Field(default=None, max_length=255)
    batch_window: int | None = Field(default=None, ge=1)
    data: Any | None = None
    expires_at: AwareDatetime | None = None  # ISO 8601 with a zone: gone from the inbox, never sent, after it
    ttl: int | None = Field(default=None, ge=1, le=MAX_TTL)  # ... or this many seconds after it is stored
    escalate: Escalate | None = None  # still unread after this long: send it on these channels too

    @model_validator(mode="after")
    def _check(self) -> InputMessage:
        if self.topic is not None:
            if self.batch_key is not None:  # a digest per subscriber of a topic: not supported
                raise ValueError("a topic message is not digested: leave out `batch_key`")
        elif (self.user_id is None) == (self.recipients is None):
            raise ValueError("give exactly one of `user_id`, `recipients` or `topic`")
        if self.expires_at is not None and self.ttl is not None:
            raise ValueError("give at most one of `expires_at` or `ttl`")
        literal = self.title is not None and self.message is not None
        if not literal and self.type is None:
            raise ValueError("give `type` (a template) or both `title` and `message`")
        return self

    def recipient_list(self) -> list[Recipient]:
        """Whom the message names itself (none for a topic message: its members are found at ingest)."""
        if self.topic is not None:
            return []
        if self.user_id is not None:
            return [Recipient(user_id=self.user_id)]
        seen: dict[str, Recipient] = {}
        for item in self.recipients or []:
            recipient = Recipient(user_id=item) if isinstance(item, str) else item
            seen.setdefault(recipient.user_id, recipient)  # a user listed twice gets one notification
        return list(seen.values())

    @property
    def uses_template(self) -> bool:
        return not (self.title is not None and self.message is not None)


class CancelMessage(BaseModel):
    """``{"cancel": "<id>"}``: withdraw a scheduled notification that has not gone out yet."""

    model_config = ConfigDict(extra="forbid")
    cancel: str = Field(min_length=1, max_length=255)


class UpdateMessage(BaseModel):
    """``{"update": "<id>", …}``: change a notification already sent, for every recipient.

    ``variables`` re-render its template; ``title``/``message`` replace the text (over a
    re-rendering too); ``data`` replaces its data; ``unread: true`` marks it unread again."""

    model_config = ConfigDict(extra="forbid")
    update: str = Field(min_length=1, max_length=255)
    id: str | None = Field(default=None, min_length=1, max_length=255)  # this update's own idempotency key
    title: str | None = Field(default=None, max_length=1000)
    message: str | None = Field(default=None, max_length=10000)
    variables: dict[str, Any] | None = None
    data: Any | None = None
    unread: bool | None = None

    @model_validator(mode="after")
    def _check(self) -> UpdateMessage:
        if not self.changes():
            raise ValueError("an update changes something: give `title`, `message`, `variables`, `data` or `unread`")
        return self

    def changes(self) -> dict:
        """The fields it changes (``data: null`` is a change: it clears the data)."""
        given = self.model_fields_set - {"update", "id"}
        return {name: getattr(self, name) for name in sorted(given) if name != "unread" or self.unread}


class RetractMessage(BaseModel):
    """``{"retract": "<id>"}``: remove a notification from every inbox; what is not sent yet never is."""

    model_config = ConfigDict(extra="forbid")
    retract: str = Field(min_length=1, max_length=255)
    id: str | None = Field(default=None, min_length=1, max_length=255)  # this retract's own idempotency key


Message = InputMessage | CancelMessage | UpdateMessage | RetractMessage
COMMANDS: dict[str, type[BaseModel]] = {"cancel": CancelMessage, "update": UpdateMessage, "retract": RetractMessage}


def _location(loc: tuple) -> str:
    parts = [str(p) for p in loc if not (isinstance(p, str) and p in {"str", "Recipient"})]
    return ".".join(parts) or "body"


LEGACY_FIELDS = {"userId": "user_id", "title": "title", "message": "message", "type": "type", "data": "data"}


def _from_legacy(raw: dict) -> dict:
    """The old worker's message (``userId``, ``title``, ``message``, optional ``type`` and
    ``data``), mapped field by field to the new format. Anything else in it is an error."""
    unknown = [k for k in raw if k not in LEGACY_FIELDS]
    if unknown:
        new = [k for k in unknown if k in InputMessage.model_fields]
        hint = (f"; `userId` is the old format, {', '.join(f'`{k}`' for k in new)} the new one: use one format"
                if new else f"; the old format has only {', '.join(f'`{k}`' for k in LEGACY_FIELDS)}")
        raise InvalidMessage(f"{unknown[0]}: unknown field in an old-format message{hint}", field=unknown[0])
    return {LEGACY_FIELDS[k]: v for k, v in raw.items()}


def parse_message(body: str | bytes) -> Message:
    """Parse an SQS body; raises InvalidMessage naming the field at fault."""
    if len(body) > MAX_BODY:
        raise InvalidMessage(f"body is {len(body)} bytes; the limit is {MAX_BODY} (SQS's)", field="body")
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidMessage(f"body is not valid JSON: {exc}", field="body") from None
    except RecursionError:
        raise InvalidMessage("body is nested too deeply to be a notification", field="body") from None
    bad = unstorable(raw)  # JSON escapes carry NULs and lone surrogates that PostgreSQL and UTF-8 cannot hold
    if bad:
        raise InvalidMessage(f"{bad[0]}: {bad[1]}", field=bad[0])
    if not isinstance(raw, dict):
        raise InvalidMessage(f"body must be a JSON object, got {type(raw).__name__}", field="body")
    legacy = "userId" in raw  # the old worker's format
    if legacy:
        raw = _from_legacy(raw)
    model: type[BaseModel] = next((m for name, m in COMMANDS.items() if name in raw), InputMessage)
    if model is InputMessage and "topic" in raw:
        given = [name for name in ("recipients", "user_id") if name in raw]
        if given:
            raise InvalidMessage(f"topic: give `topic` or `{given[0]}`, not both (a topic message goes to the "
                                 "topic's subscribers)", field="topic")
        if "batch_key" in raw:
            raise InvalidMessage("batch_key: a topic message is not digested; leave out `batch_key`", field="batch_key")
    try:
        return model.model_validate(raw)  # type: ignore[return-value]
    except ValidationError as exc:
        if not legacy:
            raise _invalid(model, exc) from None
        error = _invalid(model, exc)
        if error.field == "user_id":  # name the field as the producer wrote it
            raise InvalidMessage(str(error).replace("user_id", "userId", 1), field="userId") from None
        raise error from None


def _invalid(model, exc: ValidationError) -> InvalidMessage:
    """The first validation error as an InvalidMessage naming its field."""
    errors = exc.errors()
    # In a union (a recipient is a string or an object) the deepest error is the useful one.
    first = max(errors, key=lambda e: len(e["loc"]))
    field = _location(first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if field == "escalate.after" and first["type"] != "missing":
        message += f" (whole seconds, {MIN_ESCALATE_AFTER} to {MAX_ESCALATE_AFTER}: 30 days)"
    if first["type"] == "extra_forbidden":
        known = list((Escalate if first["loc"][0] == "escalate" and model is InputMessage else model).model_fields)
        close = difflib.get_close_matches(str(first["loc"][-1]), known, n=1)
        message = "unknown field" + (f" (did you mean `{close[0]}`?)" if close else f"; known fields: {', '.join(known)}")
    if field == "body":
        return InvalidMessage(message, field=None)
    return InvalidMessage(f"{field}: {message}", field=field)
