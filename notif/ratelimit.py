"""Per-user rate limits per channel: a GCRA in one Redis script, deferring instead of dropping.

``NOTIF_RATE_LIMITS=push=10/minute,email=20/hour`` allows each user a burst of 10 pushes
and then one every 6 seconds (GCRA, the "generic cell rate algorithm": one timestamp per
(user, channel) — the theoretical arrival time, TAT — instead of a window of counters).

A delivery over its limit is not refused: the script *reserves* the next free slot for it
(advancing the TAT as if it had been sent) and answers how long to wait. The delivery is
parked as ``scheduled`` until then and released by the scheduler like any scheduled send;
when it comes back, its reservation lets it through without charging it twice. So eleven
pushes in a burst at 10/minute send ten now and the eleventh 6 s later — never twelve, and
never none. Time is Redis's own clock (``TIME``), the same for every process.
"""
from __future__ import annotations

import redis

from .config import Settings
from .redis_keys import rate_hold, rate_tat

# KEYS[1]: the (user, channel) TAT; KEYS[2]: this delivery's reservation.
# ARGV[1]: emission interval T = period / count (ms); ARGV[2]: the period (ms).
# Returns 0 to send now, else the milliseconds to wait.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = redis.call('GET', KEYS[2])
if held then
  held = tonumber(held)
  if now + 50 >= held then
    redis.call('DEL', KEYS[2])
    return 0
  end
  return held - now
end
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allowed_at = tat + interval - period
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now + period))
if allowed_at <= now then return 0 end
redis.call('SET', KEYS[2], allowed_at, 'PX', math.ceil(allowed_at - now + 86400000))
return allowed_at - now
"""


class RateLimiter:
    def __init__(self, client: redis.Redis, settings: Settings, limits: dict[str, tuple[int, float]] | None = None) -> None:
        self.limits = settings.rate_limits if limits is None else limits
        self.settings = settings
        self._script = client.register_script(_GCRA)

    def describe(self, channel: str) -> str:
        count, period = self.limits[channel]
        return f"{channel} {count}/{period:g}s"

    def wait(self, user_id: str, channel: str, delivery_id: int) -> float:
        """Seconds until this delivery may go out (0: now). Over the limit, its slot is reserved."""
        limit = self.limits.get(channel)
        if limit is None:
            return 0.0
        count, period = limit
        period_ms = int(period * 1000)
        keys = [rate_tat(self.settings, channel, user_id), rate_hold(self.settings, delivery_id)]
        return int(self._script(keys=keys, args=[max(1, period_ms // count), period_ms])) / 1000.0

    def wait_many(self, channel: str, items: list[tuple[str, int]]) -> list[float]:
        """:meth:`wait` for several (user id, delivery id) of one channel, in order, in one Redis round trip
        (a pipeline of the same script: each runs atomically, as one call of :meth:`wait` does)."""
        limit = self.limits.get(channel)
        if limit is None or not items:
            return [0.0] * len(items)
        count, period = limit
        period_ms = int(period * 1000)
        pipe = self._script.registered_client.pipeline(transaction=False)
        for user_id, delivery_id in items:
            self._script(keys=[rate_tat(self.settings, channel, user_id), rate_hold(self.settings, delivery_id)],
                         args=[max(1, period_ms // count), period_ms], client=pipe)
        return [int(ms) / 1000.0 for ms in pipe.execute()]
