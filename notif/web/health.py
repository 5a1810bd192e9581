"""Liveness and readiness."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ..db import database
from ..monitoring.heartbeat import live_processes
from ..redis_client import sync_client
from ..sqs import client_for
from .deps import operator_access

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict:
    return {"status": "ok"}


def _check_database() -> None:
    with database.connection_context():
        database.execute_sql("SELECT 1")


def _check_redis(settings, live: bool = False) -> None:
    client = sync_client(settings, live, socket_timeout=2, socket_connect_timeout=2, health_check_interval=0)
    try:
        client.ping()
    finally:
        client.close()


def _check_sqs(settings) -> None:
    client_for(settings).get_queue_attributes(QueueUrl=settings.queue_url("normal"), AttributeNames=["QueueArn"])


@router.get("/readyz", summary="Database, Redis and SQS are reachable",
            responses={503: {"description": "a dependency does not answer (with the token: which, and why)"}},
            description="With NOTIF_METRICS_TOKEN set, only `status` unless the request sends "
                        "`Authorization: Bearer <NOTIF_METRICS_TOKEN>`.")
async def readyz(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    checks = {}
    dependencies = [("database", _check_database), ("redis", lambda: _check_redis(settings)),
                    ("sqs", lambda: _check_sqs(settings))]
    if settings.live_redis_url:  # a Redis of its own for live events: /events needs it too
        dependencies.insert(2, ("live_redis", lambda: _check_redis(settings, live=True)))
    for name, check in dependencies:
        try:
            await run_in_threadpool(check)
            checks[name] = "ok"
        except Exception as exc:  # readiness reports, it does not raise
            checks[name] = f"error: {type(exc).__name__}: {exc}"[:300]
    ready = all(v == "ok" for v in checks.values())
    if not operator_access(request):  # errors name hosts and queues: the details are for operators
        return JSONResponse({"status": "ready" if ready else "not ready"}, status_code=200 if ready else 503)
    body = {"status": "ready" if ready else "not ready", "checks": checks, "features": settings.feature_states(),
            "shadow": settings.shadow}
    if checks["redis"] == "ok":  # who else is alive (shown, not a condition: a web process serves without them)
        try:
            body["processes"] = await run_in_threadpool(_processes, settings)
        except Exception:
            pass
    return JSONResponse(body, status_code=200 if ready else 503)


def _processes(settings) -> dict:
    client = sync_client(settings, socket_timeout=2, socket_connect_timeout=2, health_check_interval=0)
    try:
        summary: dict = {}
        for p in live_processes(client, settings):
            entry = summary.setdefault(p["kind"], {"alive": 0, "stopped": []})
            if p["alive"]:
                entry["alive"] += 1
            else:
                entry["stopped"].append(f"{p['host']}:{p['pid']} (last seen {p['age_seconds']:.0f} s ago)")
        return summary
    finally:
        client.close()
