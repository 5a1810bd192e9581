"""Per-user rate limits: a GCRA in Redis that defers over-limit deliveries, never drops them."""
from dataclasses import replace

import pytest

from helpers import wait_until
from notif.config import load_settings
from notif.deliver import deliver
from notif.errors import ConfigError
from notif.models import Delivery, Notification
from notif.ratelimit import RateLimiter
from notif.scheduler.release import release_due
from test_deliver import Recording


def test_a_burst_then_one_per_interval_with_each_deferral_holding_its_own_slot(runtime):
    limiter = RateLimiter(runtime.redis, runtime.settings, {"push": (3, 2.0)})
    waits = [limiter.wait("u1", "push", d) for d in range(1, 6)]
    assert waits[:3] == [0, 0, 0]  # the burst
    assert waits[3] == pytest.approx(0.667, abs=0.1) and waits[4] == pytest.approx(1.333, abs=0.1)
    assert limiter.wait("u2", "push", 10) == 0  # per user
    assert limiter.wait("u1", "email", 11) == 0  # per channel: email has no limit here
    again = limiter.wait("u1", "push", 4)  # asking again keeps the slot: it is not charged twice
    assert 0 < again <= waits[3]
    wait_until(lambda: limiter.wait("u1", "push", 4) == 0, 3, 0.05, "delivery 4's slot")
    # 5 holds the next slot, so a new one queues after it, not after a second charge for 4
    assert limiter.wait("u1", "push", 6) == pytest.approx(waits[4] + 0.667 - waits[3], abs=0.15)


def test_over_the_limit_deliveries_are_deferred_then_all_delivered_in_pace(runtime):
    runtime.settings = replace(runtime.settings, rate_limits={"test": (2, 1.0)})
    channel = Recording("test")
    runtime.channels["test"] = channel
    ids = []
    for i in range(6):
        n = Notification.create(user_id="u1", key=f"k{i}", title="t", message="m", priority="normal",
                                correlation_id=f"c{i}")
        ids.append(Delivery.create(notification=n, channel="test").id)
    outcomes = [deliver(runtime, d) for d in ids]
    assert outcomes == ["sent", "sent", "deferred", "deferred", "deferred", "deferred"]
    parked = list(Delivery.select().where(Delivery.status == "deferred").order_by(Delivery.next_attempt_at))
    assert [d.id for d in parked] == ids[2:]  # a state of their own, not mistaken for scheduled sends
    assert all(d.deferred_until == d.next_attempt_at for d in parked)
    assert parked[0].last_error.startswith("rate limited (test 2/1s per user): deferred until")
    gaps = [(b.next_attempt_at - a.next_attempt_at).total_seconds() for a, b in zip(parked, parked[1:], strict=False)]
    assert all(gap == pytest.approx(0.5, abs=0.05) for gap in gaps)  # one slot each, 0.5 s apart

    def release_and_deliver():
        released = []
        release_due(lambda work: released.extend((q.delivery_id, q.priority) for q in work))
        for delivery_id, _ in released:
            deliver(runtime, delivery_id)
        return Delivery.select().where(Delivery.status == "sent").count() == 6

    wait_until(release_and_deliver, 10, 0.05, "every deferred delivery to go out")
    assert len(channel.calls) == 6  # all of them, each once
    rows = list(Delivery.select().order_by(Delivery.sent_at))
    assert {(r.attempts, r.last_error) for r in rows} == {(1, None)}  # a deferral is not a failed attempt
    first = rows[0].sent_at
    for k, row in enumerate(rows[2:], start=1):  # after the burst of 2: no faster than one per 0.5 s
        assert (row.sent_at - first).total_seconds() >= 0.5 * k - 0.1


def test_critical_templates_are_never_held_back(runtime):
    runtime.settings = replace(runtime.settings, rate_limits={"test": (1, 60.0)})
    runtime.channels["test"] = Recording("test")
    outcomes = []
    for i in range(3):
        n = Notification.create(user_id="u1", key=f"k{i}", type="SECURITY_ALERT", title="t", message="m",
                                priority="high", correlation_id="c")
        outcomes.append(deliver(runtime, Delivery.create(notification=n, channel="test").id))
    assert outcomes == ["sent", "sent", "sent"]


def test_a_bad_limit_is_a_config_error_naming_the_variable():
    with pytest.raises(ConfigError, match=r"NOTIF_RATE_LIMITS='push=lots' is invalid: expected channel=COUNT/PERIOD"):
        load_settings({"NOTIF_RATE_LIMITS": "push=lots"}, use_state=False)
    assert load_settings({"NOTIF_RATE_LIMITS": "off"}, use_state=False).rate_limits == {}
    assert load_settings({}, use_state=False).rate_limits == {"push": (10, 60.0), "email": (20, 3600.0)}
