"""Every Redis key and channel name notif uses, in one place, under ``NOTIF_REDIS_PREFIX``.

Nothing else in notif spells a key: a new one is added here, named after what it holds.
"""
from __future__ import annotations

from .config import Settings


def dramatiq_namespace(settings: Settings) -> str:
    """Where Dramatiq's Redis broker keeps every queue (its own keys below this)."""
    return f"{settings.redis_prefix}:dramatiq"


def ingest_queue(priority: str) -> str:
    """Dramatiq queue of a priority's ingest batches (the poller meters it)."""
    return f"notif.{priority}"


def deliver_queue(priority: str) -> str:
    """Dramatiq queue of a priority's deliveries."""
    return f"notif.deliver.{priority}"


def webhook_queue() -> str:
    """Dramatiq queue of webhook events to send (notif.webhooks)."""
    return "notif.webhook"


def dramatiq_messages_key(settings: Settings, queue: str) -> str:
    """The Redis hash where Dramatiq's Redis broker keeps a queue's messages until acked."""
    return f"{dramatiq_namespace(settings)}:{queue}.msgs"


def user_channel(settings: Settings, user_id: str) -> str:
    """Pub/sub channel carrying one user's live events to the web processes."""
    return f"{settings.redis_prefix}:user:{user_id}"


def hub_control_channel(settings: Settings) -> str:
    """Pub/sub channel a web process's hub keeps subscribed to (its liveness check)."""
    return f"{settings.redis_prefix}:hub"


def stats_counter(settings: Settings, name: str, bucket: int) -> str:
    """One 10-second bucket of a rolling counter behind `notif stats`."""
    return f"{settings.redis_prefix}:stats:{name}:{bucket}"


def high_lanes_hash(settings: Settings) -> str:
    """Hash of live HIGH lanes (workers on HIGH's queues only): ``host:pid`` → until when (epoch seconds)."""
    return f"{settings.redis_prefix}:high-lanes"


def processes_hash(settings: Settings) -> str:
    """Hash of heartbeats: one field per live process (``kind:host:pid``)."""
    return f"{settings.redis_prefix}:processes"


def ingest_error(settings: Settings, sqs_message_id: str) -> str:
    """The last transient error of an SQS message ingest could not store yet."""
    return f"{settings.redis_prefix}:ingest-error:{sqs_message_id}"


def scheduler_leader_lock(settings: Settings) -> str:
    """The lock whose holder is the leading scheduler (its fencing counter is ``<lock>:term``)."""
    return f"{settings.redis_prefix}:scheduler:leader"


def rate_tat(settings: Settings, channel: str, user_id: str) -> str:
    """A user's GCRA theoretical arrival time on a rate-limited channel."""
    return f"{settings.redis_prefix}:rate:{channel}:{user_id}"


def rate_hold(settings: Settings, delivery_id: int) -> str:
    """The slot a deferred delivery reserved (so it is not charged twice)."""
    return f"{settings.redis_prefix}:rate-hold:{delivery_id}"


def sse_streams(settings: Settings, user_id: str) -> str:
    """Sorted set of a user's live SSE streams, across web processes: stream id scored by lease expiry."""
    return f"{settings.redis_prefix}:sse-streams:{user_id}"
