"""NOTIF_LOW_THREADS: a LOW flood holds at most the cap of a worker's threads, so HIGH work is
done at once while LOW waits; and every LOW message is still done once there is room.

A real Dramatiq worker (threads in this process) on notif's broker and real Redis, with actors on
notif's queue names whose LOW work blocks until the test lets it go: a LOW batch holding a thread
for as long as it likes, without a sleep.
"""
from __future__ import annotations

import threading

import dramatiq
import pytest
from dramatiq import Worker

from notif.config import load_settings
from notif.errors import ConfigError
from notif.worker.broker import make_broker
from notif.worker.low_gate import low_threads
from notif.worker.middleware import LowThreadsCap
from notif.worker.tasks import PROCESS_PRIORITY

REDIS_URL = "redis://127.0.0.1:6379/0"
THREADS = 4


class Board:
    """What the actors report: LOW running now, LOW and HIGH done; and the gate LOW waits on."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.low_running = 0
        self.low_most = 0
        self.low_done: list[int] = []
        self.high_done: list[int] = []
        self.release = threading.Event()

    def wait(self, predicate, timeout: float = 20) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, timeout), "timed out"


def start(redis_prefix: str, low_setting: str | None):
    env = {"REDIS_URL": REDIS_URL, "NOTIF_REDIS_PREFIX": redis_prefix, "NOTIF_LOG_LEVEL": "WARNING"}
    if low_setting is not None:
        env["NOTIF_LOW_THREADS"] = low_setting
    settings = load_settings(env, use_state=False)
    broker = make_broker(settings)
    broker.add_middleware(LowThreadsCap(settings))
    board = Board()

    def low(i: int) -> None:
        with board.cond:
            board.low_running += 1
            board.low_most = max(board.low_most, board.low_running)
            board.cond.notify_all()
        board.release.wait(30)
        with board.cond:
            board.low_running -= 1
            board.low_done.append(i)
            board.cond.notify_all()

    def high(i: int) -> None:
        with board.cond:
            board.high_done.append(i)
            board.cond.notify_all()

    actors = {"low": dramatiq.actor(broker=broker, actor_name="test_low", queue_name="notif.low",
                                    priority=PROCESS_PRIORITY["low"], max_retries=0)(low),
              "high": dramatiq.actor(broker=broker, actor_name="test_high", queue_name="notif.high",
                                     priority=PROCESS_PRIORITY["high"], max_retries=0)(high)}
    return broker, Worker(broker, worker_threads=THREADS, worker_timeout=100), actors, board


@pytest.fixture
def stack(redis_prefix, redis_server, request):
    broker, worker, actors, board = start(redis_prefix, getattr(request, "param", None))
    yield broker, worker, actors, board  # (the tests queue work first, then start the worker)
    board.release.set()
    worker.stop(10_000)
    broker.close()


def test_high_is_done_while_a_low_flood_holds_its_share_of_the_threads(stack):
    broker, worker, actors, board = stack
    for i in range(10):  # far more LOW than threads, each holding its thread until released
        actors["low"].send(i)
    worker.start()
    board.wait(lambda: board.low_running == THREADS // 2)  # the default cap: half the threads

    for i in range(3):
        actors["high"].send(i)
    board.wait(lambda: len(board.high_done) == 3)  # without the cap every thread would be in LOW: no HIGH until release
    assert board.low_most == THREADS // 2 and broker.low_gate.held <= THREADS // 2 + 1

    board.release.set()  # LOW is never starved or lost: once there is room every message is done
    board.wait(lambda: len(board.low_done) == 10)
    assert sorted(board.low_done) == list(range(10))
    assert broker.low_gate.drained(20)  # every slot given back on ack


@pytest.mark.parametrize("stack", ["0"], indirect=True)
def test_no_cap_when_set_to_0_lets_low_take_every_thread(stack):
    broker, worker, actors, board = stack
    for i in range(THREADS + 2):
        actors["low"].send(i)
    worker.start()
    board.wait(lambda: board.low_running == THREADS)  # the old behaviour, on request
    assert broker.low_gate.cap is None
    board.release.set()
    board.wait(lambda: len(board.low_done) == THREADS + 2)


def test_the_cap_a_worker_takes():
    assert low_threads(None, 8) == 4 and low_threads(None, 3) == 1
    assert low_threads(None, 1) is None  # one thread: nothing to keep back (HIGH still goes first in its queue)
    assert low_threads(2, 8) == 2 and low_threads(0, 8) is None and low_threads(8, 8) is None
    with pytest.raises(ConfigError, match="NOTIF_LOW_THREADS"):
        load_settings({"NOTIF_LOW_THREADS": "-1"}, use_state=False)


def test_low_waiting_at_the_cap_stays_in_redis_for_other_workers(stack):
    """While capped, the LOW messages this worker cannot start are not taken out of Redis beyond its
    prefetch, so another worker (or this one after a restart) finds them."""
    broker, worker, actors, board = stack
    for i in range(10):
        actors["low"].send(i)
    worker.start()
    board.wait(lambda: board.low_running == THREADS // 2)
    # the consumer's prefetch counts the messages in progress: at the cap it fetches no more (with the
    # worker's usual prefetch, twice the threads, all 10 would have left Redis in its first fetch)
    assert broker.client.llen(f"{broker.namespace}:notif.low") == 10 - THREADS // 2
