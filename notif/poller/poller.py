"""The poller (``notif poll``): SQS → Dramatiq, by priority, with backpressure.

One thread per priority long-polls its SQS queue (20 s waits, 10 messages per receive) and
hands each batch to that priority's ingest actor. A :class:`~notif.poller.weights.WeightedGate`
decides who may receive: everybody while Redis is nearly empty, by weight when the
workers fall behind; a priority whose Dramatiq queue is full waits, leaving its messages
in SQS, the durable buffer. SIGTERM/SIGINT stop receiving; a batch already received is
still handed off, and one that could not be is left for SQS to deliver again.
"""
from __future__ import annotations

import logging
import signal
import threading
import uuid
from collections.abc import Callable, Sequence

from ..config import PRIORITIES, Settings
from ..monitoring.record import Recorder, RollingCounters
from ..redis_keys import dramatiq_messages_key, ingest_queue
from ..sqs import CORRELATION_ATTRIBUTE, REPLAY_ATTRIBUTE, Received, client_for
from .weights import WeightedGate

log = logging.getLogger(__name__)

#: hands a priority's received batch to ingest (:meth:`notif.worker.tasks.Tasks.send_ingest`)
SendBatch = Callable[[str, Sequence[Received]], None]


def to_received(raw: dict, priority: str) -> Received:
    attributes = raw.get("Attributes", {})
    attrs = raw.get("MessageAttributes", {})
    producer_cid = attrs.get(CORRELATION_ATTRIBUTE, {}).get("StringValue")
    return Received(
        message_id=raw["MessageId"],
        receipt_handle=raw["ReceiptHandle"],
        body=raw.get("Body", ""),
        priority=priority,
        sent_ms=int(attributes["SentTimestamp"]) if "SentTimestamp" in attributes else None,
        receives=int(attributes.get("ApproximateReceiveCount", 1)),
        correlation_id=(producer_cid or uuid.uuid4().hex)[:64],
        original_id=attrs.get(REPLAY_ATTRIBUTE, {}).get("StringValue"),
    )


class Poller:
    def __init__(self, settings: Settings, redis_client, send_batch: SendBatch,
                 stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.redis = redis_client
        self.send_batch = send_batch
        self.recorder = Recorder(RollingCounters(redis_client, settings))
        self.sqs = client_for(settings)
        self.urls = {p: settings.queue_url(p) for p in PRIORITIES}
        self.stop = stop or threading.Event()
        # priorities off: the three queues share receives equally (and ingest makes everything NORMAL)
        self.weights = settings.poll_weights if settings.feature("priorities") else {p: 1 for p in PRIORITIES}
        self.gate = WeightedGate(self.weights, self.queue_depths, settings.max_backlog, settings.max_queued)
        self.received = {p: 0 for p in PRIORITIES}

    def queue_depths(self) -> dict[str, int]:
        """Batches in each priority's ingest queue in Redis (waiting or being worked on)."""
        pipe = self.redis.pipeline(transaction=False)
        for p in PRIORITIES:
            pipe.hlen(dramatiq_messages_key(self.settings, ingest_queue(p)))
        try:
            return dict(zip(PRIORITIES, pipe.execute(), strict=True))
        except Exception:
            log.exception("could not read Dramatiq queue depths; pausing receives")
            return {p: self.settings.max_queued for p in PRIORITIES}

    def receive(self, priority: str, wait: int | None = None) -> list[Received]:
        response = self.sqs.receive_message(
            QueueUrl=self.urls[priority],
            MaxNumberOfMessages=10,
            WaitTimeSeconds=self.settings.poll_wait_seconds if wait is None else wait,
            VisibilityTimeout=self.settings.visibility_timeout,
            MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
            MessageAttributeNames=["All"],
        )
        return [to_received(raw, priority) for raw in response.get("Messages", [])]

    def run_priority(self, priority: str) -> None:
        failures = 0
        while not self.stop.is_set():
            if not self.gate.acquire(priority, self.stop):
                break
            try:
                batch = self.receive(priority)
                # A full receive means more are waiting: top the batch up (no waiting) so one
                # ingest transaction stores up to NOTIF_INGEST_BATCH. A light load is not delayed.
                while len(batch) % 10 == 0 and 0 < len(batch) < self.settings.ingest_batch:
                    more = self.receive(priority, wait=0)
                    batch += more
                    if not more:
                        break
                if batch:
                    self.send_batch(priority, batch)
                    self.received[priority] += len(batch)
                    self.recorder.received(priority, len(batch))
                    log.info("batch handed to ingest", extra={
                        "priority": priority, "batch_size": len(batch),
                        "correlation_ids": [m.correlation_id for m in batch],
                        "sqs_message_ids": [m.message_id for m in batch]})
                failures = 0
            except Exception as exc:
                if self.stop.is_set():
                    break  # shutting down: what was received returns to SQS after its visibility timeout
                failures += 1
                self.recorder.error("poll", "transient", type(exc).__name__)
                delay = min(30.0, 0.5 * 2 ** failures)
                log.exception("receive or hand-off failed; messages stay on SQS", extra={
                    "priority": priority, "retry_in_s": delay})
                self.stop.wait(delay)
            finally:
                self.gate.release()

    def run(self, install_signals: bool = True) -> None:
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop.set())
        log.info("poller started", extra={"queues": self.urls, "weights": self.weights})
        threads = [threading.Thread(target=self.run_priority, args=(p,), name=f"poll-{p}", daemon=True)
                   for p in PRIORITIES]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=0.5)
        log.info("poller stopped", extra={"received": self.received})
