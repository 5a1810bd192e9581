"""Stored state, one module per part of it (notif/models/*.py); every model is importable from here.

- :mod:`.inbox`: notifications and their deliveries (the outbox) and each delivery's attempts;
  its docstring says the inbox states' invariants;
- :mod:`.users`: push subscriptions and preferences;
- :mod:`.later`: digests, cancels, escalations and amendments (updates and retracts);
- :mod:`.audiences`: topics, their members and fan-outs;
- :mod:`.webhooks`: webhook events.
"""
from __future__ import annotations

from .audiences import Fanout, Topic, TopicMember
from .base import BaseModel, JSONField, isoformat, utcnow
from .inbox import Delivery, DeliveryAttempt, Notification
from .later import Amendment, Cancellation, Digest, Escalation
from .users import Preference, PushSubscription
from .webhooks import WebhookEvent

MODELS = [Notification, Delivery, DeliveryAttempt, PushSubscription, Preference, Digest, Cancellation, Topic,
          TopicMember, Fanout, Amendment, WebhookEvent,
          Escalation]

__all__ = ["MODELS", "Amendment", "BaseModel", "Cancellation", "Delivery", "DeliveryAttempt", "Digest", "Escalation",
           "Fanout", "JSONField", "Notification", "Preference", "PushSubscription", "Topic", "TopicMember",
           "WebhookEvent", "isoformat", "utcnow"]
