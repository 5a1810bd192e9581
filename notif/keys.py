"""Every Redis key and channel name notif uses, in one place, under ``NOTIF_REDIS_PREFIX``."""
from __future__ import annotations


def dramatiq_namespace(settings) -> str:
    return f"{settings.redis_prefix}:dramatiq"


def user_channel(settings, user_id: str) -> str:
    """Pub/sub channel carrying one user's live events to the web processes."""
    return f"{settings.redis_prefix}:user:{user_id}"
