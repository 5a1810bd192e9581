"""``notif scheduler``: the periodic jobs, run by whichever scheduler process is leader.

Any number may run; one acts at a time (see :mod:`notif.scheduler.leader`), and every job is safe to
run twice, so a hand-over overlap sends nothing twice. Jobs: the outbox sweeps (deliveries, and
webhook events: :mod:`notif.webhooks.sweep`), the release
of scheduled sends and rate-limit deferrals when they fall due, and the closing of due
digest windows (both four times a second), retention (:mod:`.retention`, once a minute), and
escalations due (:func:`notif.escalations.escalate_due`, every ``NOTIF_ESCALATION_INTERVAL``).
"""
from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler

from ..config import Settings
from ..db import database
from ..digests import close_due
from ..escalations import escalate_due
from ..fanout import resume_stalled
from ..logs import configure_logging
from ..monitoring.exposition import register_snapshot
from ..monitoring.exposition import serve as serve_metrics
from ..monitoring.heartbeat import Heartbeat
from ..redis_keys import scheduler_leader_lock
from ..runtime import Runtime
from ..webhooks.sweep import sweep as sweep_webhooks
from ..worker.tasks import producer
from .leader import Leadership
from .release import release_due
from .retention import INTERVAL as RETENTION_INTERVAL
from .retention import prune
from .sweeper import sweep

log = logging.getLogger(__name__)

RELEASE_INTERVAL = 0.25  # seconds between passes over due scheduled sends and digest windows
DEFAULT_METRICS_PORT = 9302


def run_scheduler(settings: Settings, install_signals: bool = True, stop: threading.Event | None = None) -> None:
    """``notif scheduler``: run the periodic jobs (when leader) until SIGTERM/SIGINT or ``stop``."""
    stop = stop or threading.Event()
    if install_signals:  # first: a stop asked for while starting up is a clean stop too
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    configure_logging(settings.log_format, settings.log_level, process="scheduler")
    tasks = producer(settings)
    rt = Runtime.start(settings)  # templates and channels, for the digests it closes
    redis_client = rt.redis
    if redis_client is None:  # Runtime.start always makes one
        raise RuntimeError("the scheduler needs Redis (REDIS_URL)")
    leadership = Leadership(redis_client, scheduler_leader_lock(settings), ttl=settings.leader_ttl).start()
    heartbeat = Heartbeat(redis_client, settings, "scheduler").start()
    register_snapshot(settings, redis_client)  # queue depths, dead letters, processes at scrape time
    serve_metrics(settings.metrics_port or DEFAULT_METRICS_PORT, "scheduler")

    enqueue = tasks.enqueue_deliveries

    def leader_job(what: str, work: Callable[[], object]) -> Callable[[], None]:
        """A periodic job: only the leader runs it, with a database connection; a failure
        is logged and the next pass tries again."""
        def job() -> None:
            if not leadership.is_leader:
                return
            try:
                with database.connection_context():
                    work()
            except Exception:
                log.exception(f"{what} failed; the next pass tries again")
        return job

    sweep_job = leader_job("outbox sweep", lambda: sweep(
        enqueue, grace=settings.sweep_grace_seconds, lease=settings.sweep_lease_seconds))
    webhook_job = leader_job("webhook sweep", lambda: sweep_webhooks(
        tasks.enqueue_webhooks, grace=settings.sweep_grace_seconds, lease=settings.sweep_lease_seconds))
    release_job = leader_job("releasing scheduled deliveries", lambda: release_due(enqueue))
    digest_job = leader_job("closing digest windows", lambda: close_due(rt, enqueue))
    retention_job = leader_job("retention", lambda: prune(rt.recorder, settings.retention_days))
    escalation_job = leader_job("escalating unread notifications", lambda: escalate_due(rt, enqueue))
    fanout_job = leader_job("resuming stalled fan-outs", lambda: tasks.start_fanouts(
        resume_stalled(settings.fanout_stall_seconds)))

    # APScheduler logs every run of every job at INFO: eight lines a second here
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger().level))
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    scheduler.add_job(sweep_job, "interval", seconds=settings.sweep_interval_seconds, id="sweep-outbox")
    scheduler.add_job(webhook_job, "interval", seconds=settings.sweep_interval_seconds, id="sweep-webhooks")
    scheduler.add_job(release_job, "interval", seconds=RELEASE_INTERVAL, id="release-scheduled")
    scheduler.add_job(digest_job, "interval", seconds=RELEASE_INTERVAL, id="close-digests")
    scheduler.add_job(retention_job, "interval", seconds=RETENTION_INTERVAL, id="retention")
    scheduler.add_job(fanout_job, "interval", seconds=settings.sweep_interval_seconds, id="resume-fanouts")
    scheduler.add_job(escalation_job, "interval", seconds=settings.escalation_interval_seconds, id="escalate")
    scheduler.start()
    log.info("scheduler started", extra={"jobs": ["sweep-outbox", "sweep-webhooks", "release-scheduled", "close-digests",
                                                  "retention", "resume-fanouts", "escalate"],
                                         "retention_days": settings.retention_days})
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
        leadership.stop()
        heartbeat.stop()
        log.info("scheduler stopped")
