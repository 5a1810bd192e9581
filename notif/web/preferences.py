"""``GET/PUT /api/preferences``: the signed-in user's opt-outs, per channel, type, or both, and their locale.

A document names only what exists: channels this deployment loads (its plugins) and
notification types its templates define. Anything else — a typo, a removed plugin, a
string the store cannot hold — is a 422 that names the key and lists the known ones, so
an opt-out can never be stored that silently does nothing. Each map holds at most
``MAX_KEYS`` names of at most ``MAX_NAME`` characters.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .. import locales
from ..db import database
from ..models import Preference, utcnow
from .deps import current_user

router = APIRouter(prefix="/api/preferences", tags=["preferences"])

MAX_KEYS = 200  # names per map: well above any deployment's channels, and its types for years
MAX_NAME = 100  # as long as a message's `type` may be
MAX_ERRORS = 20  # unknown names reported at once (each error lists the known ones)

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]


class Preferences(BaseModel):
    """``false`` opts out; anything absent is on. Types marked critical are delivered regardless."""

    model_config = ConfigDict(extra="forbid")
    channels: dict[Name, bool] = Field(default_factory=dict, max_length=MAX_KEYS, description='e.g. {"email": false}')
    types: dict[Name, bool] = Field(default_factory=dict, max_length=MAX_KEYS,
                                    description='e.g. {"COMMENT_ADDED": false}')
    type_channels: dict[Name, Annotated[dict[Name, bool], Field(max_length=MAX_KEYS)]] = Field(
        default_factory=dict, max_length=MAX_KEYS, description='e.g. {"REPORT_SUBMITTED": {"push": false}}')
    locale: str | None = Field(None, max_length=locales.MAX_TAG, pattern=locales.PATTERN,
                               description="the language notifications are written in when a message gives none for "
                                           "the recipient (BCP 47: `fr`, `fr-CA`; templates/<locale>/, then its "
                                           "fallback `fr`, then the default)")

    @field_validator("locale")
    @classmethod
    def _canonical(cls, locale: str | None) -> str | None:
        return None if locale is None else locales.normalize(locale)


def _unknown(prefs: Preferences, channels: frozenset[str], types: frozenset[str]) -> list[dict]:
    """A FastAPI-shaped error for every name that is not a known channel or type."""
    errors: list[dict] = []

    def check(names: Iterable[str], known: frozenset[str], loc: tuple, what: str) -> None:
        listed = ", ".join(sorted(known)) or "none"
        errors.extend({"loc": ("body", *loc, name), "type": "value_error",
                       "msg": f"unknown {what} {name!r}; known {what}s: {listed}"}
                      for name in names if name not in known)

    check(prefs.channels, channels, ("channels",), "channel")
    check(prefs.types, types, ("types",), "notification type")
    check(prefs.type_channels, types, ("type_channels",), "notification type")
    for type_, per_channel in prefs.type_channels.items():
        check(per_channel, channels, ("type_channels", type_), "channel")
    return errors[:MAX_ERRORS]


def _get(user_id: str) -> dict:
    with database.connection_context():
        row = Preference.get_or_none(Preference.user_id == user_id)
        return row.settings if row else {}


def _put(user_id: str, settings: dict) -> None:
    with database.atomic():
        (Preference.insert(user_id=user_id, settings=settings, updated_at=utcnow())
         .on_conflict(conflict_target=[Preference.user_id],
                      update={Preference.settings: settings, Preference.updated_at: utcnow()}).execute())


class PreferenceType(BaseModel):
    type: str
    critical: bool = Field(description="delivered whatever the user's preferences say (shown as always on)")


class PreferenceOptions(BaseModel):
    """What a preferences document may name, for a settings view to list."""

    channels: list[str] = Field(description="the channels this deployment loads")
    types: list[PreferenceType] = Field(description="types its templates define and NOTIF_PREFERENCE_TYPES lists")
    locales: list[str] = Field(default_factory=list, description="the locales its templates are written in besides "
                                                                 "the default (a `locale` may name another: it "
                                                                 "falls back)")


def _options(request: Request) -> PreferenceOptions:
    templates = request.app.state.templates
    names = sorted(set(templates.types()) | set(request.app.state.settings.preference_types))
    return PreferenceOptions(channels=sorted(request.app.state.channels),
                             types=[PreferenceType(type=name, critical=templates.is_critical(name)) for name in names],
                             locales=templates.locales())


@router.get("/options", summary="The channels and notification types a user may turn on and off")
async def get_options(request: Request, user_id: str = Depends(current_user)) -> PreferenceOptions:
    return await run_in_threadpool(_options, request)


@router.get("", summary="The user's notification preferences", response_model_exclude_none=True)
async def get_preferences(user_id: str = Depends(current_user)) -> Preferences:
    return Preferences(**await run_in_threadpool(_get, user_id))


@router.put("", summary="Replace the user's notification preferences", response_model_exclude_none=True,
            description="Names must be known: channels this deployment loads, types its templates define "
                        "or NOTIF_PREFERENCE_TYPES lists "
                        "(anything else is 422 listing the known ones).")
async def put_preferences(prefs: Preferences, request: Request, user_id: str = Depends(current_user)) -> Preferences:
    types = frozenset(await run_in_threadpool(request.app.state.templates.types)) | set(
        request.app.state.settings.preference_types)
    errors = _unknown(prefs, request.app.state.channels, types)
    if errors:
        raise RequestValidationError(errors)
    await run_in_threadpool(_put, user_id, prefs.model_dump(exclude_none=True))  # (no locale: none stored)
    return prefs
