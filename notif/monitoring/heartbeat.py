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


class Heartbeat:
    def __init__(self, redis_client, settings: Settings, kind: str) -> None:
        self.redis, self.settings, self.kind = redis_client, settings, kind
        self.interval = settings.heartbeat_seconds
        self.field = f"{kind}:{socket.gethostname()}:{os.getpid()}"
        self.started = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        value = json.dumps({"kind": self.kind, "host": socket.gethostname(), "pid": os.getpid(),
                            "started_at": self.started, "seen_at": time.time(), "interval": self.interval})
        self.redis.hset(processes_hash(self.settings), self.field, value)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except Exception:
                log.warning("heartbeat failed (Redis unreachable?)", exc_info=True)
            self._stop.wait(self.interval)

    def start(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self.kind}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(self.interval)
        try:
            self.redis.hdel(processes_hash(self.settings), self.field)
        except Exception:
            pass


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
