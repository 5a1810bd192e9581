"""Sharing receives between priorities by weight, so HIGH is served most and LOW never starves.

While the workers keep up (few messages waiting in Redis) every priority receives freely.
When the backlog reaches its bound, each free slot goes to one of the waiting priorities
by smooth weighted round-robin (nginx's algorithm): with weights 6/3/1 every run of ten
grants holds six HIGH, three NORMAL and one LOW, interleaved, so LOW always progresses.

One exception keeps a flood of one priority from delaying another that keeps up: when the
backlog is full of queued batches and a priority's own queue is empty (say HIGH, worked by
its own lane, while LOW floods), that priority receives at once, outside the round-robin.
Its workers are taking its batches as they come, so this admits no more than they do.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping


class SmoothWeightedRoundRobin:
    """Pick among candidates in proportion to their weights, evenly interleaved."""

    def __init__(self, weights: Mapping[str, int]) -> None:
        self.weights = dict(weights)
        self.current = {name: 0 for name in weights}

    def pick(self, candidates: set[str] | None = None) -> str:
        names = [n for n in self.weights if candidates is None or n in candidates]
        if not names:
            raise ValueError("no candidates")
        total = sum(self.weights[n] for n in names)
        for n in names:
            self.current[n] += self.weights[n]
        chosen = max(names, key=lambda n: self.current[n])
        self.current[chosen] -= total
        return chosen


class WeightedGate:
    """Admits receivers while the shared backlog has room; rations by weight when it has not.

    ``depths()`` returns the Dramatiq queue depth per priority (read from Redis, so every
    poller process sees the same backlog). ``max_backlog`` bounds the sum, ``max_queued``
    each priority alone.
    """

    def __init__(self, weights: Mapping[str, int], depths: Callable[[], Mapping[str, int]],
                 max_backlog: int, max_queued: int, interval: float = 0.1) -> None:
        self.rr = SmoothWeightedRoundRobin(weights)
        self.depths = depths
        self.max_backlog = max_backlog
        self.max_queued = max_queued
        self.interval = interval
        self.cond = threading.Condition()
        self.waiting: set[str] = set()
        self.in_flight = 0
        self.next: str | None = None
        self._cached: tuple[float, Mapping[str, int]] = (0.0, {})

    def _read_depths(self) -> Mapping[str, int]:
        at, value = self._cached
        if time.monotonic() - at > self.interval:
            value = self.depths()
            self._cached = (time.monotonic(), value)
        return value

    def acquire(self, priority: str, stop: threading.Event) -> bool:
        """Block until ``priority`` may receive; False if ``stop`` was set first."""
        with self.cond:
            self.waiting.add(priority)
            try:
                while not stop.is_set():
                    depths = self._read_depths()
                    eligible = {p for p in self.waiting if depths.get(p, 0) < self.max_queued}
                    free = self.max_backlog - sum(depths.values()) - self.in_flight
                    if priority in eligible and free <= 0 and depths.get(priority, 0) == 0 \
                            and sum(depths.values()) >= self.max_backlog:
                        # the backlog is full of the others' batches while this priority's own queue is
                        # empty: its workers keep up, so one more batch of it neither grows the backlog for
                        # long nor takes a thread the others' batches would get (a HIGH lane's case).
                        self.in_flight += 1
                        self.cond.notify_all()
                        return True
                    if priority in eligible and free > 0:
                        if self.next not in eligible:
                            self.next = self.rr.pick(eligible)
                        if self.next == priority:
                            self.next = None
                            self.in_flight += 1
                            self.cond.notify_all()
                            return True
                    self.cond.wait(self.interval)
                return False
            finally:
                self.waiting.discard(priority)

    def release(self) -> None:
        with self.cond:
            self.in_flight -= 1
            self._cached = (0.0, {})  # what was received is in Redis now: read afresh
            self.cond.notify_all()
