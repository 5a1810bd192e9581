"""Scheduled sends and cancels: stored at once, hidden and held until due, released once."""
import datetime as dt
import json
import signal
import threading

import pytest

from helpers import wait_until
from notif.ingest import ingest_batch
from notif.live import unread_count
from notif.models import Delivery, Notification, utcnow
from notif.scheduler.process import RELEASE_INTERVAL
from notif.scheduler.release import release_due
from test_ingest import Enqueued, put, receive


def at(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat()


def scheduled(user="u1", key="s1", seconds=3600, **extra):
    return {"id": key, "user_id": user, "title": "Later", "message": "m", "send_at": at(seconds), **extra}


def test_a_scheduled_send_is_stored_held_and_hidden_until_due(runtime, sqs, queues):
    put(sqs, queues["normal"], scheduled(seconds=1.5))
    enqueued = Enqueued()
    ingest_batch(runtime, receive(sqs, queues["normal"], expect=1), enqueued)
    n = Notification.get()
    assert n.send_at is not None and enqueued == []  # stored durably, nothing sent
    assert Delivery.get().status == "scheduled"
    assert Notification.select().where(Notification.visible()).count() == 0 and unread_count("u1") == 0
    released = Enqueued()
    assert release_due(released) == 0  # not yet
    wait_until(lambda: release_due(released), 5, 0.05, "the send to fall due")
    assert released == [(Delivery.get().id, "normal")] and Delivery.get().status == "pending"
    assert utcnow() >= n.send_at and unread_count("u1") == 1


def test_a_send_at_in_the_past_sends_now(runtime, sqs, queues):
    put(sqs, queues["normal"], scheduled(seconds=-600))
    enqueued = Enqueued()
    ingest_batch(runtime, receive(sqs, queues["normal"], expect=1), enqueued)
    assert len(enqueued) == 1 and Notification.get().send_at is None


def test_cancel_before_due_withdraws_it_and_after_sending_is_too_late(runtime, sqs, queues):
    put(sqs, queues["normal"], scheduled(key="to-cancel"))
    put(sqs, queues["normal"], {"cancel": "to-cancel"})  # even in the same batch, after it
    put(sqs, queues["normal"], {"id": "sent-already", "user_id": "u1", "title": "t", "message": "m"})
    outcome = ingest_batch(runtime, receive(sqs, queues["normal"], expect=3), Enqueued())
    assert outcome.cancelled == 1
    assert [n.key for n in Notification.select()] == ["sent-already"]
    put(sqs, queues["normal"], {"cancel": "sent-already"})
    assert ingest_batch(runtime, receive(sqs, queues["normal"], expect=1), Enqueued()).cancelled == 0
    assert Notification.select().count() == 1


def test_a_bad_cancel_names_the_problem(runtime, sqs, queues):
    put(sqs, queues["normal"], {"cancel": "", "extra": 1})
    outcome = ingest_batch(runtime, receive(sqs, queues["normal"], expect=1), Enqueued())
    assert outcome.dead_lettered[0].field in ("cancel", "extra")


def test_two_releasers_release_each_due_send_once(runtime, sqs, queues):
    for i in range(10):
        put(sqs, queues["low"], scheduled(user=f"u{i}", key=f"k{i}", seconds=1))
    ingest_batch(runtime, receive(sqs, queues["low"], "low", expect=10), Enqueued())
    wait_until(lambda: Delivery.select().where(Delivery.next_attempt_at <= utcnow()).count() == 10, 5, 0.05, "due")
    got = Enqueued()
    from notif.db import database

    def release():
        with database.connection_context():
            release_due(got)

    threads = [threading.Thread(target=release) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(d for d, _ in got) == sorted(d.id for d in Delivery.select())


@pytest.mark.e2e
def test_scheduled_in_3_seconds_arrives_on_time_across_a_scheduler_restart(processes, sqs, queues, pg):
    processes.env.update({"NOTIF_LEADER_TTL": "1.5"})
    processes.start_worker()
    processes.start_poller()
    processes.start_scheduler(name="scheduler-a")
    processes.start_scheduler(name="scheduler-b")
    due = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
    sqs.send_message(QueueUrl=queues["high"], MessageBody=json.dumps(
        {"id": "on-time", "user_id": "u1", "title": "t", "message": "m", "send_at": due.isoformat()}))
    wait_until(lambda: Delivery.select().count() == 1, 10, 0.1, "the scheduled send to be stored")
    restarted = processes.procs.pop("scheduler-a")  # one scheduler restarts while the send waits
    restarted.send_signal(signal.SIGTERM)
    assert restarted.wait(20) == 0
    processes.start_scheduler(name="scheduler-a2")
    # the restarted scheduler is up (its signal handler with it) before anything can end the test
    wait_until(lambda: "scheduler started" in processes.log("scheduler-a2"), 30, 0.1, "scheduler-a2 to start")
    wait_until(lambda: Delivery.get().status == "sent", 15, 0.05, "the send to go out")
    delivery = Delivery.get()
    late = (delivery.sent_at - due.replace(tzinfo=None)).total_seconds()
    # on time: within one leader hand-over (NOTIF_LEADER_TTL, if the restarted one led) plus a release tick
    assert 0 <= late <= 1.5 + RELEASE_INTERVAL, f"sent {late:.2f} s after its time"
    assert delivery.attempts == 1  # two schedulers, one release


def test_a_cancel_that_overtakes_its_send_still_cancels_it(runtime, sqs, queues):
    put(sqs, queues["normal"], {"cancel": "overtaken"})  # SQS does not keep order
    assert ingest_batch(runtime, receive(sqs, queues["normal"], expect=1), Enqueued()).cancelled == 0
    put(sqs, queues["normal"], scheduled(key="overtaken"))
    put(sqs, queues["normal"], scheduled(key="kept"))
    outcome = ingest_batch(runtime, receive(sqs, queues["normal"], expect=2), Enqueued())
    assert (outcome.stored, outcome.dropped) == (1, 1)
    assert [n.key for n in Notification.select()] == ["kept"]


def test_a_cancel_stored_while_its_send_was_being_stored_is_applied_at_release(runtime, sqs, queues):
    from notif.models import Cancellation
    put(sqs, queues["normal"], scheduled(key="raced", seconds=0.5))
    ingest_batch(runtime, receive(sqs, queues["normal"], expect=1), Enqueued())
    Cancellation.create(key="raced")  # as if the cancel committed just after the send's check
    released = Enqueued()
    wait_until(lambda: Notification.select().count() == 0 or release_due(released), 5, 0.05, "the send's time")
    assert released == [] and Notification.select().count() == 0 and Delivery.select().count() == 0
