"""Every Redis key and channel name notif uses, in one place, under ``NOTIF_REDIS_PREFIX``."""
from __future__ import annotations


def dramatiq_namespace(settings) -> str:
    return f"{settings.redis_prefix}:dramatiq"


def ingest_queue(priority: str) -> str:
    """Dramatiq queue of a priority's ingest batches (the poller meters it)."""
    return f"notif.{priority}"


def deliver_queue(priority: str) -> str:
    """Dramatiq queue of a priority's deliveries."""
    return f"notif.deliver.{priority}"


def dramatiq_messages_key(settings, queue: str) -> str:
    """The Redis hash where Dramatiq's Redis broker keeps a queue's messages until acked."""
    return f"{dramatiq_namespace(settings)}:{queue}.msgs"


def user_channel(settings, user_id: str) -> str:
    """Pub/sub channel carrying one user's live events to the web processes."""
    return f"{settings.redis_prefix}:user:{user_id}"
