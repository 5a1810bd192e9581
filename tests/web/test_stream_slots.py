"""SSE caps: NOTIF_SSE_MAX_PER_USER across every web process (Redis), NOTIF_SSE_MAX_STREAMS per
process; one stream too many gets 429 with Retry-After."""
import asyncio
import time

import httpx
import pytest

from helpers import REDIS_URL, SSE, wait_until
from notif.auth import make_token
from notif.config import load_settings
from notif.redis_client import async_queued_client
from notif.redis_keys import sse_streams
from notif.web import stream_slots
from notif.web.stream_slots import StreamsFull, StreamSlots


def slots_for(redis_prefix, **env):
    settings = load_settings({"REDIS_URL": REDIS_URL, "NOTIF_REDIS_PREFIX": redis_prefix, **env}, use_state=False)
    return settings, StreamSlots(settings, async_queued_client(settings, 4, timeout=10))


def run(coroutine):
    return asyncio.run(coroutine)


def test_the_per_user_cap_holds_across_processes(redis_prefix):
    async def scenario():
        settings, a = slots_for(redis_prefix, NOTIF_SSE_MAX_PER_USER="2")
        _, b = slots_for(redis_prefix, NOTIF_SSE_MAX_PER_USER="2")  # another web process
        first = await a.acquire("u1")
        await b.acquire("u1")
        with pytest.raises(StreamsFull) as full:
            await a.acquire("u1")
        assert "2 live streams" in full.value.reason and "NOTIF_SSE_MAX_PER_USER" in full.value.reason
        assert 1 <= full.value.retry_after <= stream_slots.LEASE_SECONDS
        await b.acquire("u2")  # another user is not affected
        await a.release(first)
        await b.acquire("u1")  # the slot given back is free at once
        with pytest.raises(StreamsFull):
            await a.acquire("u1")
        await b.close()
        await a.close()  # a stopping process gives its slots back
        _, observer = slots_for(redis_prefix)
        assert await observer.client.zcard(sse_streams(settings, "u1")) == 0
        await observer.close()
    run(scenario())


def test_concurrent_connects_cannot_overshoot_the_cap(redis_prefix):
    """40 at once from four processes, each with 4 Redis connections: they queue for one, none fails for want of it."""
    async def scenario():
        processes = [slots_for(redis_prefix, NOTIF_SSE_MAX_PER_USER="3")[1] for _ in range(4)]
        outcomes = await asyncio.gather(*(p.acquire("u1") for p in processes for _ in range(10)), return_exceptions=True)
        assert sum(isinstance(o, str) for o in outcomes) == 3
        assert all(isinstance(o, (str, StreamsFull)) for o in outcomes)
        for p in processes:
            await p.close()
    run(scenario())


def test_a_dead_processs_slots_lapse_and_live_ones_are_renewed(redis_prefix):
    async def scenario():
        settings, dead = slots_for(redis_prefix, NOTIF_SSE_MAX_PER_USER="1")
        _, alive = slots_for(redis_prefix, NOTIF_SSE_MAX_PER_USER="1")
        key = sse_streams(settings, "u1")
        stream = await dead.acquire("u1")  # … and its process is killed: never released, never renewed
        with pytest.raises(StreamsFull):
            await alive.acquire("u1")
        await alive.client.zadd(key, {stream: time.time() - 1})  # its lease runs out
        mine = await alive.acquire("u1")
        before = await alive.client.zscore(key, mine)
        await alive.client.zadd(key, {mine: before - 30})
        await alive.renew()
        assert await alive.client.zscore(key, mine) >= before  # renewed while it lives
        await alive.release(mine)
        alive.held[mine] = "u1"  # a renewal racing with the release …
        await alive.renew()
        assert await alive.client.zscore(key, mine) is None  # … does not bring the slot back
        await alive.client.aclose()
        await dead.client.aclose()
    run(scenario())


def test_renewal_reaches_every_slot_across_batches(redis_prefix):
    async def scenario():
        settings, slots = slots_for(redis_prefix, NOTIF_SSE_MAX_PER_USER="3")
        held = [(await slots.acquire(f"user-{i % 700}"), f"user-{i % 700}") for i in range(1400)]  # > RENEW_BATCH
        past = time.time() + 1
        for stream_id, user_id in held:
            await slots.client.zadd(sse_streams(settings, user_id), {stream_id: past})
        await slots.renew()
        scores = [await slots.client.zscore(sse_streams(settings, u), s) for s, u in held]
        assert min(scores) > past + stream_slots.LEASE_SECONDS - 5
        assert await slots.client.ttl(sse_streams(settings, "user-699")) > stream_slots.LEASE_SECONDS
        await slots.close()
    run(scenario())


def test_the_per_process_cap_is_counted_in_memory(redis_prefix):
    async def scenario():
        settings, slots = slots_for(redis_prefix, NOTIF_SSE_MAX_STREAMS="2", NOTIF_SSE_MAX_PER_USER="0")
        await slots.acquire("a")
        held = await slots.acquire("b")
        with pytest.raises(StreamsFull) as full:
            await slots.acquire("c")
        assert "NOTIF_SSE_MAX_STREAMS" in full.value.reason and full.value.retry_after == stream_slots.PROCESS_RETRY_AFTER
        await slots.release(held)
        await slots.acquire("c")
        assert await slots.client.exists(sse_streams(settings, "a")) == 0  # no per-user cap: Redis untouched
        await slots.close()
    run(scenario())


# -- against real `notif serve` processes -----------------------------------------------------
class Stream:
    """One GET /events, held open (or refused) until ``close``."""

    def __init__(self, http, base, user, secret):
        self.context = http.stream("GET", f"{base}/events", headers={"Authorization": f"Bearer {make_token(secret, user)}"})
        self.response = self.context.__enter__()
        if self.response.status_code == 200:
            self.sse = SSE(self.response)  # kept: dropping its line iterator would close the connection
            self.sse.until_comment("connected")
        else:
            self.response.read()
            self.close()

    def close(self):
        self.context.__exit__(None, None, None)


def test_notif_serve_answers_429_over_either_cap(processes):
    processes.env.update({"NOTIF_SSE_MAX_PER_USER": "2", "NOTIF_SSE_MAX_STREAMS": "3"})
    web_a, web_b = processes.start_web(name="web-a"), processes.start_web(name="web-b")
    streams: list[Stream] = []
    with httpx.Client(timeout=httpx.Timeout(10, read=10)) as http:
        def opened(base, user):
            stream = Stream(http, base, user, processes.env["NOTIF_JWT_SECRET"])
            if stream.response.status_code == 200:
                streams.append(stream)
            return stream.response

        try:
            assert opened(web_a, "ula").status_code == 200
            assert opened(web_b, "ula").status_code == 200  # the same user, another process
            third = opened(web_a, "ula")
            assert third.status_code == 429 and third.json()["error"] == "too_many_streams"
            assert "NOTIF_SSE_MAX_PER_USER" in third.json()["reason"]
            assert 1 <= int(third.headers["retry-after"]) <= stream_slots.LEASE_SECONDS

            assert opened(web_a, "max").status_code == opened(web_a, "max").status_code == 200  # web-a holds 3 now
            over = opened(web_a, "nia")
            assert over.status_code == 429 and "NOTIF_SSE_MAX_STREAMS" in over.json()["reason"]
            assert over.headers["retry-after"] == str(stream_slots.PROCESS_RETRY_AFTER)
            assert opened(web_b, "nia").status_code == 200  # another process has room

            streams.pop(0).close()  # ula closes a tab on web-a …
            wait_until(lambda: opened(web_b, "ula").status_code == 200, 15,
                       message="ula's closed stream to give its slot back")  # … and opens another
        finally:
            for stream in streams:
                stream.close()
