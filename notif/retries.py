"""Retry policy: how long to wait before trying a delivery again, and when to give up.

Exponential backoff with jitter ("equal jitter": half the step fixed, half random), so a
burst of failures does not come back as a burst of retries; a ``Retry-After`` the other
side sent is a floor. Channels may carry their own policy (``Channel.retry_policy``).
"""
from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8  # then the delivery is dead-lettered (status failed, with its last error)
    base_seconds: float = 2.0
    cap_seconds: float = 600.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        step = min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        wait = step / 2 + random.uniform(0, step / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, 24 * 3600.0))
        return wait

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts


DEFAULT = RetryPolicy()
