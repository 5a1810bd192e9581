"""``DELETE /api/scheduled/{id}``: the host application withdraws a scheduled or digested send.

Service auth: a JWT with ``"scope": "service"`` (``notif token --service NAME``); a user's
token is refused. The id is the message's ``id`` (its idempotency key), the same one a
``{"cancel": id}`` message names.
"""
from __future__ import annotations

import logging

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ..cancels import cancel_scheduled
from ..db import database
from ..models import Cancellation
from .deps import current_service

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/scheduled", tags=["scheduled"])


def _cancel(key: str) -> tuple[int, int]:
    with database.connection_context():
        return cancel_scheduled(key)


@router.delete("/{key}", summary="Cancel a scheduled (or digested) notification that has not gone out",
               responses={202: {"description": "nothing stored under this id yet: remembered, so it is dropped on arrival"},
                          409: {"description": "it has gone out already"}})
async def cancel(key: str, service: str = Depends(current_service)):
    cancelled, too_late = await run_in_threadpool(_cancel, key)
    log.info("scheduled send cancelled over HTTP", extra={"key": key, "service": service, "cancelled": cancelled})
    if cancelled:
        return {"id": key, "cancelled": cancelled, "too_late": too_late}
    if too_late:
        return JSONResponse({"error": "too_late", "id": key, "cancelled": 0, "too_late": too_late,
                             "reason": "it has gone out already"}, status_code=409)
    # Not stored yet: the send may still be on its way through SQS. The cancel is remembered.
    return JSONResponse({"id": key, "cancelled": 0, "too_late": 0, "pending": True,
                         "reason": "nothing is stored under this id yet; a send with it arriving in the next "
                                   f"{Cancellation.KEEP_DAYS} days is dropped"}, status_code=202)
