"""The poller against moto's SQS over HTTP and a real Redis (hand-off captured in-process)."""
import json
import threading

from helpers import queue_counts, wait_until
from notif.poller.poller import Poller
from notif.redis_keys import dramatiq_messages_key, ingest_queue


class Captured:
    def __init__(self):
        self.batches, self.lock = [], threading.Lock()

    def __call__(self, priority, batch):
        with self.lock:
            self.batches.append((priority, batch))

    def messages(self, priority=None):
        with self.lock:
            return [m for p, b in self.batches if priority in (None, p) for m in b]


def run(poller):
    thread = threading.Thread(target=poller.run, kwargs={"install_signals": False})
    thread.start()
    return thread


def stop(poller, thread):
    poller.stop.set()
    thread.join(15)
    assert not thread.is_alive()


def test_hands_each_priority_to_its_own_ingest_with_sqs_attributes(settings, runtime, sqs, queues):
    for p in ("high", "normal", "low"):
        sqs.send_message(QueueUrl=queues[p], MessageBody=json.dumps({"user_id": p, "title": "t", "message": "m"}))
    sqs.send_message(QueueUrl=queues["high"], MessageBody="{}",
                     MessageAttributes={"correlation_id": {"DataType": "String", "StringValue": "from-producer"}})
    captured = Captured()
    poller = Poller(settings, runtime.redis, captured)
    thread = run(poller)
    try:
        wait_until(lambda: len(captured.messages()) == 4, 15, message="four messages handed off")
    finally:
        stop(poller, thread)
    assert {json.loads(m.body).get("user_id") for m in captured.messages("low")} == {"low"}
    high = captured.messages("high")
    assert {m.correlation_id for m in high if m.body == "{}"} == {"from-producer"}
    for m in captured.messages():
        assert m.sent_ms and m.receives == 1 and m.receipt_handle
    # handed off, not deleted: ingest deletes after its commit
    assert queue_counts(sqs, queues["high"]) == (0, 2)


def test_a_full_dramatiq_queue_pauses_that_priority_only(settings, runtime, sqs, queues, redis_server):
    # the LOW Dramatiq queue already holds NOTIF_MAX_QUEUED messages
    key = dramatiq_messages_key(settings, ingest_queue("low"))
    redis_server.hset(key, mapping={f"m{i}": "x" for i in range(settings.max_queued)})
    for p in ("high", "low"):
        sqs.send_message(QueueUrl=queues[p], MessageBody=json.dumps({"user_id": p, "title": "t", "message": "m"}))
    captured = Captured()
    poller = Poller(settings, runtime.redis, captured)
    thread = run(poller)
    try:
        wait_until(lambda: captured.messages("high"), 15, message="HIGH to be received")
        assert captured.messages("low") == []
        assert queue_counts(sqs, queues["low"]) == (1, 0)  # LOW waits in SQS, the durable buffer
        redis_server.delete(key)  # the workers caught up
        wait_until(lambda: captured.messages("low"), 15, message="LOW to be received once there is room")
    finally:
        stop(poller, thread)


def test_a_failing_hand_off_leaves_messages_on_sqs(settings, runtime, sqs, queues):
    sqs.send_message(QueueUrl=queues["normal"], MessageBody="{}")
    calls = []

    def broken(priority, batch):
        calls.append(batch)
        raise ConnectionError("redis is down")

    poller = Poller(settings, runtime.redis, broken)
    thread = run(poller)
    try:
        wait_until(lambda: calls, 15, message="a hand-off attempt")
    finally:
        stop(poller, thread)
    assert queue_counts(sqs, queues["normal"]) == (0, 1)  # in flight, to come back after the visibility timeout


def test_under_load_a_full_receive_is_topped_up_into_one_larger_batch(settings, runtime, sqs, queues):
    from dataclasses import replace
    for i in range(0, 35, 10):  # 35 waiting before the poller starts
        sqs.send_message_batch(QueueUrl=queues["low"], Entries=[
            {"Id": str(j), "MessageBody": json.dumps({"user_id": f"u{i + j}", "title": "t", "message": "m"})}
            for j in range(min(10, 35 - i))])
    captured = Captured()
    poller = Poller(replace(settings, ingest_batch=30), runtime.redis, captured)
    thread = run(poller)
    try:
        wait_until(lambda: len(captured.messages()) == 35, 15, message="all 35 handed off")
    finally:
        stop(poller, thread)
    sizes = [len(b) for _, b in captured.batches]
    assert max(sizes) == 30 and sum(sizes) == 35  # one transaction's worth at a time, not 10
