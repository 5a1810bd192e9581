"""``GET/PUT /api/preferences``: the signed-in user's opt-outs, per channel, type, or both."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from ..db import database
from ..models import Preference, utcnow
from .deps import current_user

router = APIRouter(prefix="/api/preferences", tags=["preferences"])

Name = Field(min_length=1, max_length=100)


class Preferences(BaseModel):
    """``false`` opts out; anything absent is on. Types marked critical are delivered regardless."""

    model_config = ConfigDict(extra="forbid")
    channels: dict[str, bool] = Field(default_factory=dict, description='e.g. {"email": false}')
    types: dict[str, bool] = Field(default_factory=dict, description='e.g. {"COMMENT_ADDED": false}')
    type_channels: dict[str, dict[str, bool]] = Field(default_factory=dict,
                                                      description='e.g. {"REPORT_SUBMITTED": {"push": false}}')


def _get(user_id: str) -> dict:
    with database.connection_context():
        row = Preference.get_or_none(Preference.user_id == user_id)
        return row.settings if row else {}


def _put(user_id: str, settings: dict) -> None:
    with database.atomic():
        (Preference.insert(user_id=user_id, settings=settings, updated_at=utcnow())
         .on_conflict(conflict_target=[Preference.user_id],
                      update={Preference.settings: settings, Preference.updated_at: utcnow()}).execute())


@router.get("", summary="The user's notification preferences")
async def get_preferences(user_id: str = Depends(current_user)) -> Preferences:
    return Preferences(**await run_in_threadpool(_get, user_id))


@router.put("", summary="Replace the user's notification preferences")
async def put_preferences(prefs: Preferences, user_id: str = Depends(current_user)) -> Preferences:
    await run_in_threadpool(_put, user_id, prefs.model_dump())
    return prefs
