"""Web Push against a real HTTP push service on loopback that verifies VAPID and decrypts the payload."""
import json

import pytest

from helpers import auth
from notif.deliver import RetryLater, deliver
from notif.models import Delivery, Notification, PushSubscription
from notif.vapid import generate
from push_service import PushService


@pytest.fixture
def vapid():
    return generate()


@pytest.fixture
def push_rt(runtime, vapid):
    from dataclasses import replace
    rt = replace(runtime, settings=replace(runtime.settings, vapid_public_key=vapid[0], vapid_private_key=vapid[1],
                                           vapid_subject="mailto:ops@example.com",
                                           public_url="https://app.example.com"))
    return rt


@pytest.fixture
def service(vapid):
    s = PushService(vapid[0])
    yield s
    s.close()


def subscribe(user, sub):
    info = sub.subscription()
    PushSubscription.create(user_id=user, endpoint=info["endpoint"], p256dh=info["keys"]["p256dh"],
                            auth=info["keys"]["auth"])


def push_delivery(user="u1", priority="high", **extra):
    n = Notification.create(user_id=user, key=f"k-{Notification.select().count()}", title="New report submitted",
                            message="Ana has submitted a new report for North", priority=priority,
                            correlation_id="c", actions=[{"id": "view", "label": "View report", "url": "/reports/42"},
                                                         {"id": "approve", "label": "Approve",
                                                          "api_endpoint": "/api/reports/42/approve", "method": "POST"}],
                            channel_content={"push": {"title": "Report from North", "body": "Ana submitted #42"}},
                            **extra)
    return Delivery.create(notification=n, channel="push")


def test_every_device_gets_a_decryptable_push_with_the_actions(push_rt, service):
    phone, laptop = service.subscriber("phone"), service.subscriber("laptop")
    subscribe("u1", phone)
    subscribe("u1", laptop)
    subscribe("u2", service.subscriber("someone-else"))
    d = push_delivery()
    assert deliver(push_rt, d.id) == "sent", service.errors
    for device in (phone, laptop):
        (message,) = device.received
        assert message["title"] == "Report from North" and message["body"] == "Ana submitted #42"
        assert [a["title"] for a in message["actions"]] == ["View report", "Approve"]
        assert message["data"]["actions"][0]["url"] == "https://app.example.com/reports/42"
        assert message["data"]["actions"][1]["api_endpoint"] == "/api/reports/42/approve"
        headers = device.headers[0]
        assert headers["Urgency"] == "high" and headers["TTL"] == "3600" and len(headers["Topic"]) == 32
    assert service.subscribers["/push/someone-else"].received == []


def test_a_gone_subscription_is_removed(push_rt, service):
    subscribe("u1", service.subscriber("gone", status=410))
    subscribe("u1", ok := service.subscriber("ok"))
    assert deliver(push_rt, push_delivery().id) == "sent"
    assert [s.endpoint for s in PushSubscription.select()] == [ok.endpoint]


def test_429_is_retried_after_what_the_service_asked(push_rt, service):
    subscribe("u1", service.subscriber("busy", status=429))
    with pytest.raises(RetryLater) as info:
        deliver(push_rt, push_delivery().id)
    assert info.value.delay >= 30


def test_5xx_is_transient(push_rt, service):
    subscribe("u1", service.subscriber("broken", status=503))
    d = push_delivery()
    with pytest.raises(RetryLater):
        deliver(push_rt, d.id)
    assert Delivery.get_by_id(d.id).last_error.startswith("1 of 1 devices failed: HTTP 503")


def test_a_refused_payload_is_permanent(push_rt, service):
    subscribe("u1", service.subscriber("strict", status=413))
    d = push_delivery()
    assert deliver(push_rt, d.id) == "failed"
    assert Delivery.get_by_id(d.id).last_error.startswith("HTTP 413")


def test_no_subscription_is_recorded_as_skipped(push_rt, service):
    d = push_delivery()
    assert deliver(push_rt, d.id) == "skipped"
    assert Delivery.get_by_id(d.id).last_error == "the user has no push subscription"


def test_a_long_message_is_shortened_under_the_limit(push_rt, service):
    subscribe("u1", device := service.subscriber("small"))
    d = push_delivery()
    Notification.update(channel_content=None, message="x" * 10000).where(Notification.id == d.notification_id).execute()
    assert deliver(push_rt, d.id) == "sent"
    body = device.received[0]["body"]
    assert body.endswith("…") and len(json.dumps(device.received[0])) < 4000


def test_subscription_api(client_for_push):
    http, sub = client_for_push
    info = sub.subscription()
    assert http.post("/api/push/subscriptions", json=info, headers=auth("vic")).status_code == 201
    assert PushSubscription.get().user_id == "vic"
    # another user cannot drop it
    assert http.request("DELETE", "/api/push/subscriptions", json={"endpoint": info["endpoint"]},
                        headers=auth("wes")).status_code == 404
    bad = http.post("/api/push/subscriptions", json={"endpoint": "ftp://x", "keys": {}}, headers=auth("vic"))
    assert bad.status_code == 422
    assert http.request("DELETE", "/api/push/subscriptions", json={"endpoint": info["endpoint"]},
                        headers=auth("vic")).json() == {"subscribed": False}
    assert PushSubscription.select().count() == 0


@pytest.fixture
def client_for_push(web, pg, service):
    import httpx
    with httpx.Client(base_url=web["base"], timeout=10) as http:
        yield http, service.subscriber("api")


def test_an_endpoint_the_policy_refuses_at_send_is_removed_and_the_delivery_fails_with_the_reason(push_rt, service):
    """A row stored before the rule (or whose host now resolves inside the network) is never contacted."""
    from dataclasses import replace
    subscribe("u1", service.subscriber("loopback"))
    strict = replace(push_rt, settings=replace(push_rt.settings, outbound_allow=()))
    d = push_delivery()
    assert deliver(strict, d.id) == "failed"
    error = Delivery.get_by_id(d.id).last_error
    assert error.startswith("push endpoint refused: the URL must use https") and "subscription was removed" in error
    assert PushSubscription.select().count() == 0 and service.requests == 0


def test_other_devices_still_get_the_push_when_one_endpoint_is_refused(push_rt, service):
    subscribe("u1", ok := service.subscriber("ok"))
    keys = service.subscriber("elsewhere").subscription()["keys"]
    PushSubscription.create(user_id="u1", endpoint="https://169.254.169.254/latest/meta-data/", **keys)
    assert deliver(push_rt, push_delivery().id) == "sent"
    assert len(ok.received) == 1
    assert [s.endpoint for s in PushSubscription.select()] == [ok.endpoint]


def test_a_push_service_redirect_is_not_followed(push_rt, service):
    subscribe("u1", service.subscriber("moved", status=302))
    d = push_delivery()
    assert deliver(push_rt, d.id) == "failed"
    assert "HTTP 302 (a redirect" in Delivery.get_by_id(d.id).last_error and service.requests == 1


def test_push_services_list_refuses_other_hosts_at_send(push_rt, service):
    from dataclasses import replace
    PushSubscription.create(user_id="u1", endpoint="https://push.attacker.example/x", p256dh="x" * 87, auth="y" * 22)
    only = replace(push_rt, settings=replace(push_rt.settings, push_services=("fcm.googleapis.com",)))
    d = push_delivery()
    assert deliver(only, d.id) == "failed"
    assert "`push.attacker.example` is not a push service NOTIF_PUSH_SERVICES lists" in Delivery.get_by_id(d.id).last_error
    assert PushSubscription.select().count() == 0


def authorization_tokens(service):
    """Each request's VAPID JWT (``t=``) in order."""
    return [dict(p.strip().split("=", 1) for p in a.partition(" ")[2].split(","))["t"] for a in service.authorizations]


def test_pushes_to_one_service_reuse_connections_and_one_vapid_token(push_rt, service):
    devices = [service.subscriber(f"d{i}") for i in range(5)]
    for device in devices:
        subscribe("u1", device)
    for _ in range(2):
        assert deliver(push_rt, push_delivery().id) == "sent", service.errors
    assert all(len(device.received) == 2 for device in devices)  # each message decrypted: encrypted for each
    assert service.requests == 10 and service.connections == 1
    assert len(set(authorization_tokens(service))) == 1


def test_another_push_service_gets_its_own_vapid_token(push_rt, service, vapid):
    other = PushService(vapid[0])
    try:
        subscribe("u1", service.subscriber("here"))
        subscribe("u1", other.subscriber("there"))
        assert deliver(push_rt, push_delivery().id) == "sent", service.errors + other.errors
        assert deliver(push_rt, push_delivery().id) == "sent", service.errors + other.errors
        (mine,), (theirs,) = set(authorization_tokens(service)), set(authorization_tokens(other))
        assert mine != theirs  # each push service checked its own audience
    finally:
        other.close()


def test_the_vapid_token_is_signed_again_near_its_expiry(push_rt, service):
    from dataclasses import replace
    rt = replace(push_rt, settings=replace(push_rt.settings, vapid_token_seconds=120))
    tokens = rt.channels["push"].tokens
    now = [tokens.clock()]
    tokens.clock = lambda: now[0]
    try:
        subscribe("u1", service.subscriber("phone"))
        assert deliver(rt, push_delivery().id) == "sent"
        now[0] += 100  # 20 s left: more than a twelfth of 120 s
        assert deliver(rt, push_delivery().id) == "sent"
        now[0] += 11  # 9 s left: replaced
        assert deliver(rt, push_delivery().id) == "sent", service.errors
    finally:
        import time
        tokens.clock = time.time
    first, second, third = authorization_tokens(service)
    assert first == second != third


def test_a_token_lifetime_of_zero_signs_each_request(push_rt, service):
    from dataclasses import replace
    rt = replace(push_rt, settings=replace(push_rt.settings, vapid_token_seconds=0))
    subscribe("u1", service.subscriber("phone"))
    for _ in range(2):
        assert deliver(rt, push_delivery().id) == "sent", service.errors
    assert len(set(authorization_tokens(service))) == 2


def test_a_batch_of_pushes_reaches_each_users_devices_and_drops_a_gone_one_once(push_rt, service):
    from notif.deliver_many import deliver_many
    subscribe("u1", phone := service.subscriber("phone"))
    subscribe("u2", service.subscriber("gone", status=410))
    subscribe("u3", laptop := service.subscriber("laptop"))
    rows = [push_delivery(user) for user in ("u1", "u2", "u2", "u3")]
    assert deliver_many(push_rt, [d.id for d in rows]) == [], service.errors
    assert [Delivery.get_by_id(d.id).status for d in rows] == ["sent", "sent", "skipped", "sent"]
    assert len(phone.received) == 1 and len(laptop.received) == 1 and not service.errors
    assert service.requests == 3  # one each: u2's second push knew its device was gone (skipped)
    assert [s.endpoint for s in PushSubscription.select().order_by(PushSubscription.id)] == [
        phone.endpoint, laptop.endpoint]
