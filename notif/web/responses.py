"""The answers a route may give besides its own, as its OpenAPI document says them.

The edge answers for every route (a body over NOTIF_MAX_BODY: 413); the signed-in routes
answer 401 for a token they refuse. Both carry ``{"error": …, "reason": …}``.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Problem(BaseModel):
    """What went wrong: a short code and a sentence for a human."""

    error: str
    reason: str


EDGE: dict[int | str, dict[str, Any]] = {
    413: {"model": Problem, "description": "the request body is over NOTIF_MAX_BODY"},
}
SIGNED_IN: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "the token is missing or refused (the reason says why)"},
}
