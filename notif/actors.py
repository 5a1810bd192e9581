"""The worker's entry point: ``dramatiq notif.actors``.

The one notif module whose import does something: it assembles this process's worker
(:func:`notif.worker.process.build_worker`) and hands Dramatiq its broker. Everything else
imports without side effects; the actors themselves live in :mod:`notif.worker.tasks`.
"""
from __future__ import annotations

from .worker.process import build_worker

tasks = build_worker()
broker = tasks.broker
INGEST, DELIVER = tasks.ingest, tasks.deliver
