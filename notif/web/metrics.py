"""``GET /metrics``: this web process's Prometheus metrics (the other processes serve their own)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .deps import operator_access

router = APIRouter(tags=["health"])


@router.get("/metrics", summary="Prometheus metrics of this web process", include_in_schema=False)
async def metrics(request: Request) -> Response:
    if not operator_access(request):
        return JSONResponse({"error": "unauthorized", "reason": "send `Authorization: Bearer <NOTIF_METRICS_TOKEN>`"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
