"""Delivery against real PostgreSQL and Redis: a row is sent once and always ends with a status."""
import json

import pytest

from helpers import wait_until
from notif.channels import Channel
from notif.deliver import RetryLater, deliver
from notif.errors import PermanentError, TransientError
from notif.models import Delivery, Notification
from notif.redis_keys import user_channel
from notif.retries import RetryPolicy


def make_delivery(channel="in_app", user="u1"):
    n = Notification.create(user_id=user, key=f"k-{channel}", title="Hi", message="there", priority="high",
                            correlation_id="cid-1")
    return Delivery.create(notification=n, channel=channel)


class Recording(Channel):
    def __init__(self, name, error=None):
        self.name, self.error, self.calls = name, error, []

    def send(self, notification, delivery, ctx):
        self.calls.append(notification.id)
        if self.error:
            raise self.error


def test_in_app_publishes_to_the_users_live_channel_and_marks_sent(runtime):
    d = make_delivery()
    pubsub = runtime.redis.pubsub()
    pubsub.subscribe(user_channel(runtime.settings, "u1"))
    wait_until(lambda: pubsub.get_message(timeout=0.1), 5, message="the subscription")  # subscribe confirmation
    assert deliver(runtime, d.id) == "sent"
    event = wait_until(lambda: pubsub.get_message(timeout=0.5), 5, message="the published event")
    payload = json.loads(event["data"])
    assert payload["event"] == "notification" and payload["notification"]["id"] == d.notification.id
    row = Delivery.get_by_id(d.id)
    assert (row.status, row.attempts) == ("sent", 1) and row.sent_at is not None
    pubsub.close()


def test_a_second_copy_of_the_same_delivery_sends_nothing(runtime):
    channel = Recording("test")
    runtime.channels["test"] = channel
    d = make_delivery("test")
    assert deliver(runtime, d.id) == "sent"
    assert deliver(runtime, d.id) == "sent"
    assert len(channel.calls) == 1


def test_a_permanent_error_fails_the_delivery_with_its_reason(runtime):
    runtime.channels["test"] = Recording("test", PermanentError("endpoint says 400: bad payload"))
    d = make_delivery("test")
    assert deliver(runtime, d.id) == "failed"
    row = Delivery.get_by_id(d.id)
    assert (row.status, row.last_error, row.attempts) == ("failed", "endpoint says 400: bad payload", 1)


def test_a_transient_error_is_retried_with_backoff_then_dead_lettered(runtime):
    channel = Recording("test", TransientError("connection reset"))
    channel.retry_policy = RetryPolicy(max_attempts=3, base_seconds=10, cap_seconds=60)
    runtime.channels["test"] = channel
    d = make_delivery("test")
    delays = []
    for attempt in (1, 2):
        with pytest.raises(RetryLater) as info:
            deliver(runtime, d.id)
        delays.append(info.value.delay)
        row = Delivery.get_by_id(d.id)
        assert (row.status, row.attempts) == ("pending", attempt) and "connection reset" in row.last_error
        assert row.next_attempt_at > row.updated_at  # the sweeper leaves it alone until then
    assert 5 <= delays[0] <= 10 and 10 <= delays[1] <= 20  # exponential, with jitter
    assert deliver(runtime, d.id) == "failed"
    row = Delivery.get_by_id(d.id)
    assert row.status == "failed" and row.last_error == "gave up after 3 attempts; last error: connection reset"
    assert len(channel.calls) == 3


def test_retry_after_from_the_other_side_is_honoured(runtime):
    runtime.channels["test"] = Recording("test", TransientError("HTTP 429", retry_after=120))
    d = make_delivery("test")
    with pytest.raises(RetryLater) as info:
        deliver(runtime, d.id)
    assert info.value.delay >= 120


def test_an_unknown_exception_counts_as_transient(runtime):
    runtime.channels["test"] = Recording("test", KeyError("surprise"))
    d = make_delivery("test")
    with pytest.raises(RetryLater):
        deliver(runtime, d.id)
    assert Delivery.get_by_id(d.id).last_error == "KeyError: 'surprise'"


def test_a_channel_that_is_no_longer_installed_is_recorded_as_skipped(runtime):
    d = make_delivery("carrier_pigeon")
    assert deliver(runtime, d.id) == "skipped"
    assert "not installed" in Delivery.get_by_id(d.id).last_error


def test_a_batch_of_in_app_deliveries_goes_out_together_once(runtime):
    from notif.deliver import deliver_batch
    pubsub = runtime.redis.pubsub()
    pubsub.psubscribe(user_channel(runtime.settings, "*"))
    wait_until(lambda: pubsub.get_message(timeout=0.1), 5, message="the subscription")
    ids = []
    for i, user in enumerate(["u1", "u1", "u2"]):
        n = Notification.create(user_id=user, key=f"k{i}", title="Hi", message="m", priority="normal", correlation_id="c")
        ids.append(Delivery.create(notification=n, channel="in_app").id)
    assert deliver_batch(runtime, ids) == []
    events = [json.loads(wait_until(lambda: pubsub.get_message(timeout=0.5), 5, message="an event")["data"])
              for _ in ids]
    assert sorted((e["notification"]["id"], e["unread"]) for e in events) == [(1, 2), (2, 2), (3, 1)]
    assert {(d.status, d.attempts) for d in Delivery.select()} == {("sent", 1)}
    assert deliver_batch(runtime, ids) == [] and deliver(runtime, ids[0]) == "sent"  # nothing twice
    pubsub.close()


def test_a_failed_batch_goes_back_to_pending_for_the_usual_path(runtime):
    from notif.deliver import deliver_batch

    class Broken(Recording):
        batches = True

        def send_many(self, items, ctx):
            raise TransientError("Redis went away")
    runtime.channels["test"] = Broken("test")
    ids = [make_delivery("test", user=f"u{i}").id for i in range(2)]
    assert sorted(deliver_batch(runtime, ids)) == sorted(ids)
    assert {d.status for d in Delivery.select()} == {"pending"}
    runtime.channels["plain"] = Recording("plain")  # a channel that does not batch: left as it is
    other = make_delivery("plain", user="u9").id
    assert deliver_batch(runtime, [other]) == [other] and Delivery.get_by_id(other).status == "pending"
