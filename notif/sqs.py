"""SQS: the client, the shape of a received message, deletes and dead letters.

Every call has a timeout (boto3's connect/read timeouts; the read timeout outlasts the
long-poll wait), and batch calls check their ``Failed`` list: a message SQS did not
delete is received again later and its idempotency key makes that harmless.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import boto3
from botocore.config import Config

from .config import Settings

log = logging.getLogger(__name__)

CORRELATION_ATTRIBUTE = "correlation_id"  # a producer may send its own correlation id as this attribute
REPLAY_ATTRIBUTE = "notif_replay_of"  # set on a replay from the DLQ: the first MessageId, kept as the key

_clients: dict[Settings, object] = {}
_lock = threading.Lock()


def make_client(settings: Settings):
    return boto3.client(
        "sqs",
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=settings.aws_secret_access_key,
        config=Config(
            connect_timeout=5,
            read_timeout=settings.poll_wait_seconds + 10,
            retries={"max_attempts": 4, "mode": "standard"},
            max_pool_connections=20,
        ),
    )


def client_for(settings: Settings):
    """One boto3 client per process and settings (boto3 clients are thread-safe)."""
    with _lock:
        if settings not in _clients:
            _clients[settings] = make_client(settings)
        return _clients[settings]


@dataclass(frozen=True)
class Received:
    """One SQS message as handed from the poller to an ingest actor (JSON-safe)."""

    message_id: str
    receipt_handle: str
    body: str
    priority: str
    sent_ms: int | None
    receives: int
    correlation_id: str
    original_id: str | None = None  # set on a replay from the DLQ: the first MessageId, kept as the key

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Received:
        return cls(**data)


def delete_batch(client, queue_url: str, messages: Iterable[Received]) -> list[str]:
    """Delete messages (10 per call); returns the ids SQS failed to delete."""
    messages = list(messages)
    failed: list[str] = []
    for start in range(0, len(messages), 10):
        chunk = messages[start:start + 10]
        entries = [{"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(chunk)]
        response = client.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        for failure in response.get("Failed", []):
            message = chunk[int(failure["Id"])]
            failed.append(message.message_id)
            log.warning(
                "SQS did not delete a message; it will be received again and ignored as a duplicate",
                extra={"sqs_message_id": message.message_id, "correlation_id": message.correlation_id,
                       "sqs_error": failure.get("Code"), "detail": failure.get("Message")},
            )
    return failed


@dataclass(frozen=True)
class DeadLetter:
    message: Received
    reason: str
    field: str | None
    kind: str  # "invalid_message", "template_error", "gave_up", ...


def send_dead_letters(client, dlq_url: str, letters: list[DeadLetter]) -> list[DeadLetter]:
    """Put letters on the DLQ with their reason as message attributes; returns those sent."""
    sent: list[DeadLetter] = []
    for start in range(0, len(letters), 10):
        chunk = letters[start:start + 10]
        entries = []
        for i, letter in enumerate(chunk):
            attributes = {
                "notif_reason": letter.reason[:1000],
                "notif_error": letter.kind,
                "notif_priority": letter.message.priority,
                "notif_source_message_id": letter.message.message_id,
                "notif_correlation_id": letter.message.correlation_id,
                "notif_receive_count": str(letter.message.receives),
            }
            if letter.field:
                attributes["notif_field"] = letter.field
            entries.append({
                "Id": str(i),
                "MessageBody": letter.message.body or "(empty body)",
                "MessageAttributes": {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
            })
        response = client.send_message_batch(QueueUrl=dlq_url, Entries=entries)
        failed = {f["Id"] for f in response.get("Failed", [])}
        for i, letter in enumerate(chunk):
            if str(i) in failed:
                log.error("could not dead-letter a message; it stays on its queue and will be tried again",
                          extra={"sqs_message_id": letter.message.message_id, "correlation_id": letter.message.correlation_id})
            else:
                sent.append(letter)
    return sent
