"""Registering Web Push subscriptions, attacked: SSRF targets, endpoint takeover, unbounded devices."""
from __future__ import annotations

import base64
import os
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from helpers import auth
from notif.db import database
from notif.models import PushSubscription
from notif.web.app import create_app

PUBLIC = "https://93.184.216.34/push"  # a public address literal: accepted without DNS, never contacted here


def keys() -> dict:
    return {"p256dh": base64.urlsafe_b64encode(b"\x04" + os.urandom(64)).rstrip(b"=").decode(),
            "auth": base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()}


@pytest.fixture(scope="module")
def strict(asgi):
    """The app with no NOTIF_OUTBOUND_ALLOW (production's default) and at most 3 devices per user."""
    settings = replace(asgi["settings"], outbound_allow=(), push_max_per_user=3)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(autouse=True)
def empty():
    with database.connection_context():
        PushSubscription.delete().execute()
    yield


def endpoints(user=None):
    with database.connection_context():
        query = PushSubscription.select().order_by(PushSubscription.id)
        return [(s.user_id, s.endpoint) for s in (query.where(PushSubscription.user_id == user) if user else query)]


@pytest.mark.parametrize("endpoint, rule", [
    ("http://127.0.0.1:8080/push/x", "must use https"),
    ("https://127.0.0.1/push/x", "loopback"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://[::1]/push", "loopback"),
    ("https://[::ffff:127.0.0.1]/push", "loopback (inside the IPv6 address"),
    ("https://2130706433/push", "ambiguous form"),
    ("https://0177.0.0.1/push", "ambiguous form"),
    ("https://localhost/push", "localhost resolves to"),
    ("https://10.0.0.8/push", "private"),
])
def test_an_endpoint_inside_the_network_is_refused_naming_the_rule(strict, endpoint, rule):
    response = strict.post("/api/push/subscriptions", json={"endpoint": endpoint, "keys": keys()}, headers=auth("mal"))
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "endpoint"] and rule in error["msg"]
    assert endpoints() == []


def test_knowing_someone_elses_endpoint_does_not_take_it_over(strict):
    victim_keys = keys()
    endpoint = f"{PUBLIC}/victim-device"
    assert strict.post("/api/push/subscriptions", json={"endpoint": endpoint, "keys": victim_keys},
                       headers=auth("vic")).status_code == 201
    stolen = strict.post("/api/push/subscriptions", json={"endpoint": endpoint, "keys": keys()}, headers=auth("mal"))
    assert stolen.status_code == 409 and "registered to another account" in stolen.json()["detail"]
    assert endpoints() == [("vic", endpoint)]
    # only the browser holding the subscription knows its keys: the same device, now signed in as someone else
    assert strict.post("/api/push/subscriptions", json={"endpoint": endpoint, "keys": victim_keys},
                       headers=auth("ann")).status_code == 201
    assert endpoints() == [("ann", endpoint)]
    # and the owner may refresh their own row's keys
    assert strict.post("/api/push/subscriptions", json={"endpoint": endpoint, "keys": keys()},
                       headers=auth("ann")).status_code == 201


def test_a_user_keeps_the_newest_devices_up_to_the_cap(strict):
    for n in range(5):
        assert strict.post("/api/push/subscriptions", json={"endpoint": f"{PUBLIC}/device-{n}", "keys": keys()},
                           headers=auth("many")).status_code == 201
    assert [e for _, e in endpoints("many")] == [f"{PUBLIC}/device-{n}" for n in (2, 3, 4)]


def test_only_listed_push_services_are_accepted_when_configured(asgi):
    settings = replace(asgi["settings"], outbound_allow=(), push_services=("push.services.mozilla.com",))
    with TestClient(create_app(settings)) as client:
        response = client.post("/api/push/subscriptions", json={"endpoint": f"{PUBLIC}/x", "keys": keys()},
                               headers=auth("ann"))
    assert response.status_code == 422
    assert "not a push service NOTIF_PUSH_SERVICES lists" in response.json()["detail"][0]["msg"]
