import threading
from collections import Counter

from helpers import wait_until
from notif.poller.weights import SmoothWeightedRoundRobin, WeightedGate

WEIGHTS = {"high": 6, "normal": 3, "low": 1}


def test_every_ten_picks_hold_six_three_one():
    rr = SmoothWeightedRoundRobin(WEIGHTS)
    picks = [rr.pick() for _ in range(100)]
    for start in range(0, 100, 10):
        assert Counter(picks[start:start + 10]) == {"high": 6, "normal": 3, "low": 1}


def test_only_waiting_candidates_are_picked():
    rr = SmoothWeightedRoundRobin(WEIGHTS)
    assert {rr.pick({"normal", "low"}) for _ in range(20)} == {"normal", "low"}


def run_gate(gate, depths, grants_wanted, priorities=("high", "normal", "low")):
    """Three receivers contend for ``grants_wanted`` grants; returns who got them, in order.

    The backlog starts full so that every receiver is waiting before the first grant.
    """
    stop = threading.Event()
    start = dict(depths)
    depths["high"] = gate.max_backlog
    for p in priorities:  # none with an empty queue of its own, which would be let through a full backlog
        depths[p] = max(depths.get(p, 0), 1)
    order, lock = [], threading.Lock()

    def receiver(p):
        while not stop.is_set():
            if not gate.acquire(p, stop):
                return
            with lock:
                order.append(p)
                if len(order) >= grants_wanted:
                    stop.set()
            gate.release()

    threads = [threading.Thread(target=receiver, args=(p,)) for p in priorities]
    for t in threads:
        t.start()
    wait_until(lambda: gate.waiting == set(priorities), 5, 0.001, "every receiver to wait")
    depths.update(start)
    for t in threads:
        t.join(10)
    return order[:grants_wanted]


def test_when_the_backlog_is_full_grants_follow_the_weights_and_low_progresses():
    depths = {"high": 0, "normal": 0, "low": 0}
    # one free slot at a time: every grant is rationed
    gate = WeightedGate(WEIGHTS, lambda: depths, max_backlog=1, max_queued=100, interval=0.001)
    order = run_gate(gate, depths, 200)
    counts = Counter(order)
    assert counts["high"] > counts["normal"] > counts["low"] > 0
    assert abs(counts["high"] / 200 - 0.6) < 0.1
    assert abs(counts["low"] / 200 - 0.1) < 0.05


def test_a_full_priority_waits_while_the_others_receive():
    depths = {"high": 0, "normal": 0, "low": 50}
    gate = WeightedGate(WEIGHTS, lambda: depths, max_backlog=1000, max_queued=50, interval=0.001)
    order = run_gate(gate, depths, 100)
    assert "low" not in order and set(order) == {"high", "normal"}


def test_no_grant_while_the_shared_backlog_is_at_its_bound():
    depths = {"high": 10, "normal": 10, "low": 12}
    gate = WeightedGate(WEIGHTS, lambda: depths, max_backlog=32, max_queued=100, interval=0.001)
    stop = threading.Event()
    result = []
    t = threading.Thread(target=lambda: result.append(gate.acquire("high", stop)))
    t.start()
    t.join(0.3)
    assert t.is_alive()  # still waiting
    depths["low"] = 0  # the workers caught up
    t.join(5)
    assert result == [True]


def test_a_priority_whose_own_queue_is_empty_is_not_held_behind_a_backlog_of_others():
    """A LOW flood fills the backlog; HIGH's own queue is empty (its lane keeps up): HIGH receives at once instead
    of waiting for LOW's batches to drain. LOW, whose queue is the backlog, still waits; and once HIGH has a
    batch queued it waits its turn like the others."""
    depths = {"high": 0, "normal": 0, "low": 40}
    gate = WeightedGate(WEIGHTS, lambda: depths, max_backlog=32, max_queued=100, interval=0.001)
    stop = threading.Event()
    first: list[bool] = []
    at_once = threading.Thread(target=lambda: first.append(gate.acquire("high", stop)))
    at_once.start()
    at_once.join(5)
    stop.set() if at_once.is_alive() else gate.release()
    assert first == [True], "HIGH waited behind LOW's backlog"
    stop.clear()
    waiting = []
    t = threading.Thread(target=lambda: waiting.append(gate.acquire("low", stop)))
    t.start()
    t.join(0.2)
    assert t.is_alive() and not waiting  # LOW waits for room
    depths["high"] = 1  # HIGH's workers have fallen behind by a batch: no more bypass
    h = threading.Thread(target=lambda: waiting.append(gate.acquire("high", stop)))
    h.start()
    h.join(0.2)
    assert h.is_alive()
    depths["low"] = 0
    t.join(5)
    h.join(5)
    assert waiting == [True, True]
