"""The outbox sweeper and leader election, on real PostgreSQL and Redis."""
import datetime as dt

import pytest
from redis.exceptions import LockNotOwnedError

from notif.models import Delivery, DeliveryAttempt, Notification, utcnow
from notif.scheduler.leader import Leadership
from notif.scheduler.sweeper import Swept, sweep


def delivery(status, age_seconds, next_in=None, priority="high"):
    n = Notification.create(user_id="u", key=f"k{Notification.select().count()}", title="t", message="m",
                            priority=priority, correlation_id="c")
    now = utcnow()
    return Delivery.create(notification=n, channel="in_app", status=status,
                           updated_at=now - dt.timedelta(seconds=age_seconds),
                           next_attempt_at=None if next_in is None else now + dt.timedelta(seconds=next_in))


class Enqueued(list):
    """An ``Enqueue`` that keeps (delivery id, priority) of what it was handed."""

    def __call__(self, queued):
        self.extend((q.delivery_id, q.priority) for q in queued)


def test_lost_pending_deliveries_are_enqueued_again_once(pg):
    lost = delivery("pending", 600)
    fresh = delivery("pending", 5)
    waiting = delivery("pending", 600, next_in=300)  # a retry scheduled for later: not lost
    sent = delivery("sent", 600)
    enqueued = Enqueued()
    assert sweep(enqueued, grace=120) == Swept(reclaimed=0, requeued=1)
    assert enqueued == [(lost.id, "high")]
    assert sweep(enqueued, grace=120) == Swept(reclaimed=0, requeued=0)  # it has its grace period again
    assert {fresh.id, waiting.id, sent.id}.isdisjoint(d for d, _ in enqueued)


def test_deliveries_stuck_in_sending_are_reclaimed(pg):
    dead = delivery("sending", 900, priority="low")
    busy = delivery("sending", 10)
    enqueued = Enqueued()
    assert sweep(enqueued, lease=300).reclaimed == 1
    assert enqueued == [(dead.id, "low")]
    row = Delivery.get_by_id(dead.id)
    assert row.status == "pending" and "reclaimed" in row.last_error and row.attempts == 1
    assert Delivery.get_by_id(busy.id).status == "sending"
    (attempt,) = DeliveryAttempt.select()  # the try its worker never finished, in the attempt log (the trace shows it)
    assert (attempt.delivery_id, attempt.attempt, attempt.outcome) == (dead.id, 1, "abandoned")
    assert attempt.started_at == dead.updated_at and attempt.finished_at > attempt.started_at
    assert attempt.error == row.last_error


def test_only_one_leader_and_a_standby_takes_over(redis_server, redis_prefix):
    name = f"{redis_prefix}:leader"
    first = Leadership(redis_server, name, ttl=1.0).start()
    assert first.wait_until_leader(5)
    second = Leadership(redis_server, name, ttl=1.0).start()
    assert not second.wait_until_leader(1.5)  # renewed: still the first's
    first.abandon()  # the leader dies without releasing
    assert second.wait_until_leader(5)  # the lock expired; the standby took over
    assert second.term > first.term  # a newer fencing token
    assert first.is_leader  # (its own flag, stale: it is dead and checks nothing)
    second.stop()


def test_a_lock_can_only_be_released_by_its_owner(redis_server, redis_prefix):
    # the seed's release compared against a new random id on every call, so it never matched
    name = f"{redis_prefix}:owned"
    owner = redis_server.lock(name, timeout=10)
    assert owner.acquire(blocking=False)
    impostor = redis_server.lock(name, timeout=10)
    impostor.local.token = b"someone-else"
    with pytest.raises(LockNotOwnedError):
        impostor.release()
    owner.release()
    assert redis_server.get(name) is None
