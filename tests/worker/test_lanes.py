"""NOTIF_LEAVE_HIGH_TO_LANE: while a HIGH lane runs, the general worker leaves HIGH to it (so HIGH is
not done beside a LOW flood); with no lane, the general worker does HIGH itself, so HIGH is never
left waiting.

Real Dramatiq workers (threads in this process, one broker each, as two processes would have) on
notif's broker and real Redis, with actors on notif's queue names that say which worker ran them.
"""
from __future__ import annotations

import threading
import time

import dramatiq
import pytest
from dramatiq import Worker

from notif.config import load_settings
from notif.redis_keys import high_lanes_hash
from notif.worker.broker import make_broker
from notif.worker.lanes import LaneBeacon, role
from notif.worker.middleware import HighLane
from notif.worker.tasks import PROCESS_PRIORITY

REDIS_URL = "redis://127.0.0.1:6379/0"
HIGH = ["notif.high", "notif.deliver.high"]


class Done:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.by: dict[int, str] = {}

    def wait(self, n: int, timeout: float = 20) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.by) >= n, timeout)


@pytest.fixture
def make_worker(redis_prefix, redis_server):
    made = []
    settings = load_settings({"REDIS_URL": REDIS_URL, "NOTIF_REDIS_PREFIX": redis_prefix,
                              "NOTIF_HEARTBEAT_SECONDS": "0.5"}, use_state=False)
    done = Done()

    def make(name: str, queues: list[str] | None = None):
        broker = make_broker(settings)
        broker.add_middleware(HighLane(settings))

        def high(i: int) -> None:
            with done.cond:
                done.by[i] = name
                done.cond.notify_all()

        actor = dramatiq.actor(broker=broker, actor_name="test_high", queue_name="notif.high",
                               priority=PROCESS_PRIORITY["high"], max_retries=0)(high)
        dramatiq.actor(broker=broker, actor_name="test_normal", queue_name="notif.normal")(lambda: None)
        worker = Worker(broker, queues=set(queues) if queues else None, worker_threads=2, worker_timeout=100)
        worker.start()
        made.append((worker, broker))
        return worker, broker, actor

    yield settings, done, make
    for worker, broker in made:
        worker.stop(5_000)
        broker.close()


def test_the_general_worker_leaves_high_to_a_live_lane_and_takes_it_back_when_the_lane_stops(make_worker):
    settings, done, make = make_worker
    lane, _, send = make("lane", HIGH)
    make("general")  # every queue, HIGH's too
    for i in range(20):
        send.send(i)
    assert done.wait(20)
    assert set(done.by.values()) == {"lane"}  # none done beside the (would-be) LOW flood

    lane.stop(5_000)  # a lane that stops says so: the general worker takes HIGH again at once
    for i in range(20, 25):
        send.send(i)
    assert done.wait(25)
    assert {done.by[i] for i in range(20, 25)} == {"general"}


def test_without_a_lane_the_general_worker_does_high(make_worker):
    settings, done, make = make_worker
    beacon = LaneBeacon(make_broker(settings).client, settings).start()  # a lane in another process...
    _, broker, send = make("general")
    send.send(1)
    time.sleep(1.5)  # (an absence: nothing to await) many turns of the consumer's 0.1 s loop
    assert not done.by and broker.client.llen(f"{broker.namespace}:notif.high") == 1  # ...left in Redis for it
    beacon.stop()  # ...that goes away
    assert done.wait(1, timeout=5) and done.by == {1: "general"}


def test_a_dead_lane_is_noticed_after_three_beats(make_worker):
    settings, done, make = make_worker
    _, broker, send = make("general")
    broker.client.hset(high_lanes_hash(settings), "gone:1", time.time() + 1.0)  # a lane killed 0.5 s after a beat
    send.send(7)
    assert done.wait(1, timeout=5) and done.by == {7: "general"}


def test_roles_come_from_the_queues():
    assert role(set()) == "general" and role({"notif.high", "notif.low"}) == "general"
    assert role({"notif.high", "notif.deliver.high"}) == "lane" and role({"notif.low"}) == "other"
