"""What the trace tests share: the web client with a service token, a push service, the worker's runtime
with push and email configured, and the steps of putting a message through ingest and delivery."""
import datetime as dt
from dataclasses import replace

import pytest

from helpers import token
from notif.deliver import RetryLater, deliver, deliver_batch
from notif.ingest import ingest_batch
from notif.models import PushSubscription
from notif.vapid import generate
from notif.web.messages import Trace
from push_service import PushService
from test_ingest import Enqueued, put, receive

SERVICE = {"Authorization": f"Bearer {token('support-desk', service=True)}"}


@pytest.fixture
def client(asgi, pg):
    return asgi["client"]


@pytest.fixture
def push_service():
    public, private = generate()
    service = PushService(public)
    yield service, public, private
    service.close()


@pytest.fixture
def rt(runtime, push_service, smtp):
    """The worker's runtime with push (VAPID) and email (SMTP) configured."""
    _, public, private = push_service
    runtime.settings = replace(runtime.settings, vapid_public_key=public, vapid_private_key=private,
                               vapid_subject="mailto:ops@example.com", smtp_url=f"smtp://127.0.0.1:{smtp[1]}",
                               email_from="notify@example.com")
    return runtime


def subscribe(service, user):
    info = service.subscriber(user).subscription()
    PushSubscription.create(user_id=user, endpoint=info["endpoint"], p256dh=info["keys"]["p256dh"],
                            auth=info["keys"]["auth"])


def send(rt, sqs, queues, *bodies) -> Enqueued:
    """Put messages on SQS and ingest them as the worker does (in-app deliveries made at once, in bulk)."""
    for body in bodies:
        put(sqs, queues["normal"], body)
    enqueued = Enqueued()
    ingest_batch(rt, receive(sqs, queues["normal"], expect=len(bodies)), enqueued, deliver_now=deliver_batch)
    return enqueued


def deliver_all(rt, enqueued) -> None:
    for delivery_id, _ in enqueued:
        try:
            deliver(rt, delivery_id)
        except RetryLater:
            pass


def traced(client, key, **params) -> dict:
    answer = client.get(f"/api/messages/{key}", params=params, headers=SERVICE)
    assert answer.status_code == 200, answer.text
    Trace.model_validate(answer.json())  # what the OpenAPI document says it is
    return answer.json()


def channels(doc, user) -> dict:
    (recipient,) = [r for r in doc["recipients"] if r["user_id"] == user]
    return {d["channel"]: d for d in recipient["deliveries"]}


def iso(value: dt.datetime) -> str:
    return value.isoformat(timespec="milliseconds") + "Z"
