"""Leader election through a Redis lock with an owner token, a TTL and renewal.

Any number of processes may hold a :class:`Leadership`; at most one is leader at a time.
The leader renews its lock well inside the TTL; if it dies, the lock expires and a
standby takes over within ``ttl`` seconds (within half a second when it steps down
cleanly). Only the owner's token can renew or release the lock (redis-py's ``Lock`` checks it in Lua).

Each new leadership gets a *term*: a fencing token from one Redis counter that only ever
grows, logged with everything the leader does. notif's scheduler jobs need no fence in the
database, because none of their writes can be stale: each is a compare-and-set on the
row's own state (``scheduled`` → ``pending``, an open digest window → closed, ``sending``
past its lease → ``pending``), so a deposed leader still finishing a pass can only do
what the new leader would have done, and never twice. The term is there for anything
that writes without such a condition.
"""
from __future__ import annotations

import logging
import threading

import redis
from redis.exceptions import LockError

log = logging.getLogger(__name__)


class Leadership:
    def __init__(self, client: redis.Redis, name: str, ttl: float = 10.0) -> None:
        self.lock = client.lock(name, timeout=ttl, blocking=False, thread_local=False)
        self.ttl = ttl
        self._leader = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = client
        self.term: int | None = None  # the fencing token of the current leadership

    @property
    def is_leader(self) -> bool:
        return self._leader.is_set()

    def wait_until_leader(self, timeout: float | None = None) -> bool:
        return self._leader.wait(timeout)

    def _step(self) -> None:
        try:
            if self._leader.is_set():
                self.lock.reacquire()
            elif self.lock.acquire(blocking=False):
                self.term = int(self._client.incr(f"{self.lock.name}:term"))
                self._leader.set()
                log.info("became leader", extra={"lock": self.lock.name, "term": self.term})
        except LockError:
            self._leader.clear()
            log.warning("lost leadership (the lock expired or was taken)", extra={"lock": self.lock.name})
        except redis.RedisError:
            self._leader.clear()  # cannot prove we still hold it: stand down
            log.warning("Redis unreachable; standing down as leader", exc_info=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._step()
            # the leader renews at a third of the TTL; a standby tries often (a SET NX is cheap),
            # so a leader that steps down cleanly is replaced within half a second
            self._stop.wait(self.ttl / 3 if self._leader.is_set() else min(self.ttl / 3, 0.5))

    def start(self) -> Leadership:
        self._thread = threading.Thread(target=self._run, name="leadership", daemon=True)
        self._thread.start()
        return self

    def abandon(self) -> None:
        """Stop renewing without releasing, as a crashed process would (for tests and drills)."""
        self._stop.set()
        if self._thread:
            self._thread.join(self.ttl)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(self.ttl)
        if self._leader.is_set():
            self._leader.clear()
            try:
                self.lock.release()
            except (LockError, redis.RedisError):
                pass
