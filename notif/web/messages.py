"""``GET /api/messages/{key}``: the trace of one message — why didn't user X get Y?

Service auth, as ``/api/topics``: a JWT with ``"scope": "service"``; a user's token gets 401
(a trace names every recipient). The document is :func:`notif.trace.trace`'s, the same one
``notif trace KEY --json`` prints; the models below only document it (OpenAPI).
"""
from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from .. import trace as tracing
from ..db import database
from ..inputs import MAX_USER_ID
from ..reasons import CODES
from .deps import current_service
from .responses import Problem

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/messages", tags=["trace"])


class Reason(BaseModel):
    """Why it was not sent (or not yet): a stable ``code`` and a sentence; the other fields as the code needs."""

    code: str = Field(description="stable (new ones may be added): " + "; ".join(f"`{c}`: {m}" for c, m in CODES.items()))
    text: str
    until: str | None = None  # rate_limited, scheduled, retrying, held_in_digest (while open)
    at: str | None = None  # cancelled, retracted, expired, shadow
    since: str | None = None  # sending
    preference: str | None = None  # opted_out: channel, type or type_channel (None: a row from before 0011)
    setting: str | None = None  # opted_out: the preference's path, e.g. type_channels.NEWS.push
    digest_id: int | None = None  # held_in_digest
    digest_notification_id: int | None = None  # held_in_digest, once its window closed
    error: str | None = None  # failed, discarded, retrying
    dead_letter: str | None = None  # failed: the id `notif dlq replay` takes



class Attempt(BaseModel):
    attempt: int
    started_at: str | None
    finished_at: str | None
    outcome: str  # sent, transient_error, permanent_error, skipped, shadow, rate_limited, abandoned
    error: str | None
    logged: bool  # False: a bulk in-app send, which logs no row; shown from the delivery's sent_at


class DeliveryTrace(BaseModel):
    id: int
    notification_id: int  # the recipient's, or its digest's grouped notification's
    channel: str
    state: str
    attempts: int
    created_at: str | None
    updated_at: str | None
    sent_at: str | None
    next_attempt_at: str | None
    deferred_until: str | None
    last_error: str | None
    reason: Reason | None
    attempt_log: list[Attempt]


class DigestInfo(BaseModel):
    id: int
    batch_key: str
    closes_at: str | None
    closed_at: str | None
    notification_id: int | None


class EscalationTrace(BaseModel):
    """The recipient's escalation (a message's ``escalate``, or its template's): due, made, or not needed."""

    state: str = Field(description="`pending` (due at `due_at`), `escalated` (at `decided_at`), `read` (read in time, "
                                   "at `read_at`: nothing sent), `withdrawn` (retracted or expired first), `held` (a "
                                   "digest item, whose digest escalates)")
    after: int  # seconds after it became visible
    channels: list[str]
    due_at: str | None
    decided_at: str | None
    read_at: str | None
    text: str  # "escalated at T (email)", "not escalated: read at T", "escalation due at T (email) unless read by then"


class Recipient(BaseModel):
    user_id: str
    notification_id: int | None  # None: `?user=` named someone with nothing stored (the reason says why)
    created_at: str | None
    read_at: str | None
    seen_at: str | None  # the inbox states (a read notification was seen)
    archived_at: str | None
    reason: Reason | None  # the notification's own: held in a digest, retracted, expired, scheduled, …
    digest: DigestInfo | None
    deliveries: list[DeliveryTrace]
    escalation: EscalationTrace | None  # the escalation channels' deliveries are among `deliveries`


class TopicProgress(BaseModel):
    name: str
    outcome: str  # running, done, unknown_topic, empty_topic, cancelled
    stored: int
    remaining: int
    started_at: str | None
    updated_at: str | None
    finished_at: str | None


class Message(BaseModel):
    key: str
    type: str | None
    priority: str | None
    correlation_id: str | None
    sqs_message_id: str | None
    sqs_sent_at: str | None
    received_at: str | None
    send_at: str | None
    expires_at: str | None
    updated_at: str | None
    retracted_at: str | None
    cancelled_at: str | None
    topic: TopicProgress | None


class Summary(BaseModel):
    recipients: int
    held_in_digest: int
    channels: dict[str, dict[str, int]]  # channel -> state -> deliveries


class Trace(BaseModel):
    key: str
    message: Message
    summary: Summary | None  # the first page's only (no cursor)
    recipients: list[Recipient]
    next_cursor: str | None


class NotFound(Problem):
    key: str


Key = Annotated[str, Path(min_length=1, max_length=255, description="the message's `id`, else its SQS MessageId")]
Limit = Annotated[int, Query(ge=1, le=tracing.MAX_PAGE, description="recipients per page")]
Cursor = Annotated[str | None, Query(max_length=1000, description="the previous page's `next_cursor`")]
User = Annotated[str | None, Query(min_length=1, max_length=MAX_USER_ID, description="this recipient only")]
ANSWERS: dict[int | str, dict[str, Any]] = {
    404: {"model": NotFound, "description": "nothing is known under this key"},
    400: {"model": Problem, "description": "the cursor is not one a previous page gave"},
}


def _trace(*args) -> dict | None:
    with database.connection_context():
        return tracing.trace(*args)


@router.get("/{key:path}", response_model=Trace, responses=ANSWERS,
            summary="The trace of a message: per recipient and channel, its state, attempts and why it was not sent")
async def get_trace(key: Key, limit: Limit = tracing.DEFAULT_PAGE, cursor: Cursor = None, user: User = None,
                    service: str = Depends(current_service)):
    try:
        found = await run_in_threadpool(_trace, key, limit, cursor, user)
    except ValueError:
        return JSONResponse({"error": "bad_cursor", "reason": "cursor: not a cursor from a previous page"},
                            status_code=400)
    if found is None:
        return JSONResponse({"error": "not_found", "key": key,
                             "reason": f"nothing is known under the key {key!r}: no notification, topic message, "
                                       "cancel or retract (a message refused at ingest is a dead letter: "
                                       "notif dlq list --kind input)"}, status_code=404)
    log.info("message traced", extra={"key": key, "service": service, "user_id": user,
                                      "recipients": len(found["recipients"])})
    return JSONResponse(found)
