"""Heartbeats: every process says it is alive, in Redis, where `notif stats` and /readyz look.

Each process keeps a field ``kind:host:pid`` in the hash ``<prefix>:processes`` fresh
every few seconds. A process that stops cleanly removes its field; one that dies leaves
it to go stale, which is how it is noticed.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time

from ..config import Settings
from ..redis_keys import processes_hash

log = logging.getLogger(__name__)

MISSED_BEATS = 3  # a process this many beats late is shown as stopped
FORGET_AFTER = 3600.0


class HashBeat:
    """One field of a Redis hash kept fresh by a daemon thread, every ``interval`` seconds from
    :meth:`start` to :meth:`stop` (which removes it); subclasses say what it holds (:meth:`value`).
    A beat that fails is logged and tried again at the next one."""

    def __init__(self, redis_client, key: str, field: str, interval: float, name: str) -> None:
        self.redis, self.key, self.field, self.interval, self.name = redis_client, key, field, interval, name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def value(self) -> str | float:
        raise NotImplementedError

    def beat(self) -> None:
        self.redis.hset(self.key, self.field, self.value())

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except Exception:
                log.warning("%s failed (Redis unreachable?)", self.name, exc_info=True)
            self._stop.wait(self.interval)

    def start(self):
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(self.interval)
        try:
            self.redis.hdel(self.key, self.field)
        except Exception:
            pass  # a field left behind goes stale on its own


class Heartbeat(HashBeat):
    """This process's field in ``<prefix>:processes``: what it is and when it was last seen."""

    def __init__(self, redis_client, settings: Settings, kind: str) -> None:
        super().__init__(redis_client, processes_hash(settings), f"{kind}:{socket.gethostname()}:{os.getpid()}",
                         settings.heartbeat_seconds, f"heartbeat-{kind}")
        self.settings, self.kind = settings, kind
        self.started = time.time()

    def value(self) -> str:
        return json.dumps({"kind": self.kind, "host": socket.gethostname(), "pid": os.getpid(),
                           "started_at": self.started, "seen_at": time.time(), "interval": self.interval})


def live_processes(redis_client, settings: Settings, now: float | None = None) -> list[dict]:
    """Every process that beat in the last hour, with its age and whether it looks alive."""
    now = now or time.time()
    out, forget = [], []
    for field, raw in redis_client.hgetall(processes_hash(settings)).items():
        try:
            entry = json.loads(raw)
        except ValueError:
            forget.append(field)
            continue
        age = now - entry["seen_at"]
        if age > FORGET_AFTER:
            forget.append(field)
            continue
        stale_after = MISSED_BEATS * entry.get("interval", settings.heartbeat_seconds)
        out.append({**entry, "age_seconds": round(age, 1), "alive": age <= stale_after})
    if forget:
        redis_client.hdel(processes_hash(settings), *forget)
    return sorted(out, key=lambda p: (p["kind"], p["host"], p["pid"]))
