"""Webhook event states, and every move between them, in one place (as :mod:`notif.delivery_states` for deliveries).

Each move is one conditional UPDATE (``… WHERE status = <from>``), so two workers holding copies
of the same message cannot both send an event::

    pending ──claim──▶ sending ──▶ sent | failed
       ▲                  │
       └──retry/reclaim───┘
    failed ──replay──▶ pending;  failed ──purge──▶ discarded
"""
from __future__ import annotations

from ..models import WebhookEvent, utcnow

PENDING = "pending"  # owed: a Dramatiq message is (or will be, by the sweep) on its way
SENDING = "sending"  # claimed by one worker, which is calling the endpoint
SENT = "sent"  # the endpoint answered 2xx
FAILED = "failed"  # a dead letter: a permanent failure, or the retries ran out; `last_error` says why
DISCARDED = "discarded"  # a failed event purged from the dead letters

TRANSITIONS: dict[tuple[str, str], str] = {
    (PENDING, SENDING): "claimed by a worker",
    (SENDING, SENT): "the endpoint answered 2xx",
    (SENDING, PENDING): "a transient failure (retried later), or its worker died (reclaimed)",
    (SENDING, FAILED): "a permanent failure, or its retries ran out",
    (FAILED, PENDING): "replayed from the dead letters",
    (FAILED, DISCARDED): "purged from the dead letters",
}


class IllegalTransition(ValueError):
    """A move :data:`TRANSITIONS` does not allow: a bug, never a race."""


def move(event_id: int, frm: str, to: str, **values) -> bool:
    """Move one event from ``frm`` to ``to`` (setting ``values`` too); False if it was not in ``frm``."""
    if (frm, to) not in TRANSITIONS:
        raise IllegalTransition(f"a webhook event cannot go from {frm!r} to {to!r}")
    values.setdefault("updated_at", utcnow())
    return WebhookEvent.update(status=to, **values).where(
        (WebhookEvent.id == event_id) & (WebhookEvent.status == frm)).execute() == 1


def claim(event_id: int) -> bool:
    """pending → sending: this worker, and no other, sends it now."""
    return move(event_id, PENDING, SENDING)
