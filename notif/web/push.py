"""Web Push subscriptions: a browser registers (or drops) its subscription for the signed-in user.

An endpoint is checked when subscribed (the outbound policy: https, a public address or
NOTIF_OUTBOUND_ALLOW; NOTIF_PUSH_SERVICES when set) and answered with a 422 naming the rule.

A subscription belongs to who made it. Registering an endpoint that another user holds moves
it only when the request carries the same keys (``p256dh`` and the ``auth`` secret): only the
browser that holds the subscription knows them, so that is the browser proving it (the same
device, signed in as someone else). Knowing an endpoint URL alone gets a 409, and the owner
keeps receiving. Each user keeps at most NOTIF_PUSH_MAX_PER_USER subscriptions; a new one
beyond that drops the one registered longest ago.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from ..config import Settings
from ..db import database
from ..models import PushSubscription, utcnow
from ..outbound import OutboundPolicy, OutboundRefused, matches_suffix
from .deps import current_user, get_settings

router = APIRouter(prefix="/api/push", tags=["push"])


class Keys(BaseModel):
    p256dh: str = Field(min_length=40, max_length=200)
    auth: str = Field(min_length=10, max_length=100)


class Subscription(BaseModel):
    endpoint: str = Field(min_length=10, max_length=2000, pattern=r"^https?://")
    keys: Keys


class Unsubscribe(BaseModel):
    endpoint: str = Field(min_length=10, max_length=2000)


@router.get("/vapid-public-key", summary="The key browsers subscribe with (applicationServerKey)",
            responses={503: {"description": "Web Push is not configured (VAPID keys unset)"}})
async def vapid_public_key(request: Request) -> dict:
    key = request.app.state.settings.vapid_public_key
    if not key:
        raise HTTPException(503, detail="Web Push is not configured: set VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY")
    return {"public_key": key}


def _refusal(reason: str) -> HTTPException:
    return HTTPException(422, detail=[{"loc": ["body", "endpoint"], "msg": reason, "type": "outbound_policy"}])


def _check_endpoint(endpoint: str, settings: Settings) -> None:
    """The outbound policy, now (it resolves the host: run off the event loop)."""
    try:
        target = OutboundPolicy.from_settings(settings).check(endpoint)
    except OutboundRefused as exc:
        raise _refusal(exc.reason) from None
    if settings.push_services and not (matches_suffix(target.host, settings.push_services)
                                       or target.host in settings.outbound_allow):
        raise _refusal(f"the endpoint's host `{target.host}` is not a push service NOTIF_PUSH_SERVICES lists")


def _save(user_id: str, sub: Subscription, agent: str | None, keep: int) -> bool:
    """Store the subscription for ``user_id``; False when another user holds the endpoint and
    the keys do not prove this browser holds it."""
    with database.atomic():
        created = (PushSubscription.insert(user_id=user_id, endpoint=sub.endpoint, p256dh=sub.keys.p256dh,
                                           auth=sub.keys.auth, user_agent=agent)
                   .on_conflict_ignore().execute())
        if not created or not PushSubscription.select().where(
                (PushSubscription.endpoint == sub.endpoint) & (PushSubscription.user_id == user_id)).exists():
            # one conditional UPDATE: the user's own row, or another's whose keys this request knows
            moved = (PushSubscription.update(user_id=user_id, p256dh=sub.keys.p256dh, auth=sub.keys.auth,
                                             user_agent=agent, created_at=utcnow())
                     .where((PushSubscription.endpoint == sub.endpoint)
                            & ((PushSubscription.user_id == user_id)
                               | ((PushSubscription.auth == sub.keys.auth)
                                  & (PushSubscription.p256dh == sub.keys.p256dh))))
                     .execute())
            if not moved:
                return False
        newest = (PushSubscription.select(PushSubscription.id).where(PushSubscription.user_id == user_id)
                  .order_by(PushSubscription.created_at.desc(), PushSubscription.id.desc()).limit(keep))
        (PushSubscription.delete().where((PushSubscription.user_id == user_id)
                                         & PushSubscription.id.not_in(newest)).execute())
    return True


def _delete(user_id: str, endpoint: str) -> int:
    with database.connection_context():
        return PushSubscription.delete().where((PushSubscription.user_id == user_id)
                                               & (PushSubscription.endpoint == endpoint)).execute()


@router.post("/subscriptions", status_code=201, summary="Register this browser's push subscription",
             responses={409: {"description": "another account holds this endpoint and the keys do not match"},
                        422: {"description": "invalid, or refused by the outbound policy (the message names the rule)"}})
async def subscribe(sub: Subscription, request: Request, user_id: str = Depends(current_user)) -> dict:
    settings = get_settings(request)
    await run_in_threadpool(_check_endpoint, sub.endpoint, settings)
    agent = (request.headers.get("user-agent") or "")[:500] or None
    if not await run_in_threadpool(_save, user_id, sub, agent, settings.push_max_per_user):
        raise HTTPException(409, detail="this endpoint is registered to another account; a browser that holds the "
                                        "subscription sends its own keys with it (PushSubscription.toJSON()), "
                                        "otherwise unsubscribe in the browser and subscribe again")
    return {"subscribed": True}


@router.delete("/subscriptions", summary="Drop this browser's push subscription",
               responses={404: {"description": "no such subscription for this user"}})
async def unsubscribe(body: Unsubscribe, user_id: str = Depends(current_user)) -> dict:
    removed = await run_in_threadpool(_delete, user_id, body.endpoint)
    if not removed:
        raise HTTPException(404, detail="no such subscription for this user")
    return {"subscribed": False}
