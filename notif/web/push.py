"""Web Push subscriptions: a browser registers (or drops) its subscription for the signed-in user."""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from ..db import database
from ..models import PushSubscription
from .deps import current_user

router = APIRouter(prefix="/api/push", tags=["push"])


class Keys(BaseModel):
    p256dh: str = Field(min_length=40, max_length=200)
    auth: str = Field(min_length=10, max_length=100)


class Subscription(BaseModel):
    endpoint: str = Field(min_length=10, max_length=2000, pattern=r"^https?://")
    keys: Keys


class Unsubscribe(BaseModel):
    endpoint: str = Field(min_length=10, max_length=2000)


@router.get("/vapid-public-key", summary="The key browsers subscribe with (applicationServerKey)")
async def vapid_public_key(request: Request) -> dict:
    key = request.app.state.settings.vapid_public_key
    if not key:
        raise HTTPException(503, detail="Web Push is not configured: set VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY")
    return {"public_key": key}


def _save(user_id: str, sub: Subscription, agent: str | None) -> None:
    with database.atomic():
        # one row per endpoint: a browser that signs in as someone else now pushes to them
        (PushSubscription.insert(user_id=user_id, endpoint=sub.endpoint, p256dh=sub.keys.p256dh, auth=sub.keys.auth,
                                 user_agent=agent)
         .on_conflict(conflict_target=[PushSubscription.endpoint],
                      update={PushSubscription.user_id: user_id, PushSubscription.p256dh: sub.keys.p256dh,
                              PushSubscription.auth: sub.keys.auth, PushSubscription.user_agent: agent})
         .execute())


def _delete(user_id: str, endpoint: str) -> int:
    with database.connection_context():
        return PushSubscription.delete().where((PushSubscription.user_id == user_id)
                                               & (PushSubscription.endpoint == endpoint)).execute()


@router.post("/subscriptions", status_code=201, summary="Register this browser's push subscription")
async def subscribe(sub: Subscription, request: Request, user_id: str = Depends(current_user)) -> dict:
    await run_in_threadpool(_save, user_id, sub, request.headers.get("user-agent"))
    return {"subscribed": True}


@router.delete("/subscriptions", summary="Drop this browser's push subscription")
async def unsubscribe(body: Unsubscribe, user_id: str = Depends(current_user)) -> dict:
    removed = await run_in_threadpool(_delete, user_id, body.endpoint)
    if not removed:
        raise HTTPException(404, detail="no such subscription for this user")
    return {"subscribed": False}
