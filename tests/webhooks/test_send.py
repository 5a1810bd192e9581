"""Sending one event to a real HTTP receiver on loopback: every request verified by the official Standard
Webhooks library; the answer decides (2xx sent; 429/5xx/network/timeouts retried with backoff; 410, 3xx
and other 4xx dead-lettered); the webhook-id never changes; no secret or signature in a log line."""
import base64
import datetime as dt
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import REGISTRY
from standardwebhooks import Webhook

from helpers import free_port
from notif.deliver import RetryLater
from notif.models import WebhookEvent, utcnow
from notif.monitoring import metrics
from notif.outbound import OutboundRefused
from notif.webhooks.outbox import WebhookOutbox
from notif.webhooks.send import send, sender_for
from webhook_receiver import SECRET


def write(rt, type_="delivery.failed", data=None) -> list[WebhookEvent]:
    ids = rt.webhooks.write([(type_, utcnow(), data or {"delivery_id": 7, "correlation_id": "corr-42",
                                                       "error": "SMTP 550"})])
    return [WebhookEvent.get_by_id(i) for i in ids]


def counted(event, outcome):
    return metrics.WEBHOOKS.labels(event, outcome)._value.get()


@pytest.fixture
def to(hooked, receiver):
    """A runtime whose one webhook endpoint is the receiver."""
    def make(**env):
        return hooked.make(NOTIF_WEBHOOK_URL=receiver.url, **env)
    return make


def test_a_2xx_is_delivered_signed_byte_for_byte(to, receiver, pg, caplog):
    rt = to()
    (event,) = write(rt)
    before = counted("delivery.failed", "sent")
    latencies = REGISTRY.get_sample_value("notif_webhook_latency_seconds_count", {"event": "delivery.failed"}) or 0
    with caplog.at_level(logging.DEBUG):
        assert send(rt, event.id) == "sent"
    (got,) = receiver.all()
    assert got.payload is not None and got.status == 204  # the official library verified it
    assert got.body == event.body.encode() and got.webhook_id == event.webhook_id
    assert got.headers["content-type"] == "application/json"
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 5
    assert json.loads(got.body)["data"] == {"delivery_id": 7, "correlation_id": "corr-42", "error": "SMTP 550"}
    row = WebhookEvent.get_by_id(event.id)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None) and row.sent_at is not None
    assert counted("delivery.failed", "sent") == before + 1
    assert REGISTRY.get_sample_value("notif_webhook_latency_seconds_count", {"event": "delivery.failed"}) == latencies + 1
    line = [r for r in caplog.records if r.getMessage() == "webhook sent"][0]
    assert (line.correlation_id, line.webhook_id, line.event_type, line.status_code) == (
        "corr-42", event.webhook_id, "delivery.failed", 204)
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert SECRET.removeprefix("whsec_") not in logged and got.headers["webhook-signature"][3:] not in logged
    assert send(rt, event.id) == "sent" and len(receiver.all()) == 1  # a second copy sends nothing


def test_a_5xx_is_retried_with_the_same_id_and_retry_after_honoured(to, receiver, pg, caplog):
    rt = to()
    (event,) = write(rt)
    receiver.status = 503
    with pytest.raises(RetryLater) as retry:
        send(rt, event.id)
    assert 1 <= retry.value.delay <= 2  # the first backoff step: 2 s, half of it jittered
    row = WebhookEvent.get_by_id(event.id)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "HTTP 503")
    assert send(rt, event.id) == "not-due" and len(receiver.all()) == 1  # an early copy waits for the retry
    WebhookEvent.update(next_attempt_at=utcnow()).execute()
    receiver.status = 429
    with pytest.raises(RetryLater):
        send(rt, event.id)
    WebhookEvent.update(next_attempt_at=utcnow()).execute()
    receiver.status = 200
    assert send(rt, event.id) == "sent"
    assert [r.status for r in receiver.all()] == [503, 429, 200]
    assert {r.webhook_id for r in receiver.all()} == {event.webhook_id} and {r.body for r in receiver.all()} == {
        event.body.encode()}
    assert WebhookEvent.get_by_id(event.id).attempts == 3
    assert [r.getMessage() for r in caplog.records if r.name == "notif.webhooks.send"].count(
        "webhook failed; will retry") == 2


class Answering(BaseHTTPRequestHandler):
    """A receiver answering what the test says (a Retry-After, a redirect, a slow answer)."""

    answer: tuple[int, dict] = (204, {})
    delay = 0.0
    seen: list[str] = []

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        Answering.seen.append(self.path)
        time.sleep(self.delay)
        status, headers = self.answer
        self.send_response(status)
        for name, value in {"Content-Length": "0", **headers}.items():
            self.send_header(name, value)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def answering():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answering)
    Answering.seen = []
    Answering.delay = 0.0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_retry_after_is_a_floor(hooked, answering, pg):
    rt = hooked.make(NOTIF_WEBHOOK_URL=f"{answering}/in")
    (event,) = write(rt)
    Answering.answer = (503, {"Retry-After": "120"})
    with pytest.raises(RetryLater) as retry:
        send(rt, event.id)
    assert retry.value.delay == 120
    assert WebhookEvent.get_by_id(event.id).next_attempt_at > utcnow() + dt.timedelta(seconds=110)


@pytest.mark.parametrize("status, headers, reason", [
    (410, {}, "HTTP 410 Gone: the receiver wants no more webhooks; remove its URL from NOTIF_WEBHOOK_URL"),
    (302, {"Location": "/elsewhere"}, "HTTP 302: redirects are not followed; set NOTIF_WEBHOOK_URL to where it points "
                                      "(/elsewhere)"),
    (400, {}, "HTTP 400"),
    (404, {}, "HTTP 404"),
])
def test_410_3xx_and_other_4xx_are_dead_lettered_at_once(hooked, answering, pg, status, headers, reason, caplog):
    rt = hooked.make(NOTIF_WEBHOOK_URL=f"{answering}/in")
    (event,) = write(rt)
    Answering.answer = (status, headers)
    before = counted("delivery.failed", "failed")
    assert send(rt, event.id) == "failed"
    row = WebhookEvent.get_by_id(event.id)
    assert (row.status, row.attempts, row.last_error, row.webhook_id) == ("failed", 1, reason, event.webhook_id)
    assert Answering.seen == ["/in"]  # one request; a redirect is not followed
    assert counted("delivery.failed", "failed") == before + 1
    assert [r for r in caplog.records if r.getMessage() == "webhook dead-lettered"][0].reason == reason


def test_the_last_attempt_dead_letters_with_the_last_error(to, receiver, pg):
    rt = to(NOTIF_WEBHOOK_MAX_ATTEMPTS="2")
    (event,) = write(rt)
    receiver.status = 500
    with pytest.raises(RetryLater):
        send(rt, event.id)
    WebhookEvent.update(next_attempt_at=utcnow()).execute()
    assert send(rt, event.id) == "failed"
    row = WebhookEvent.get_by_id(event.id)
    assert (row.status, row.attempts, row.last_error) == ("failed", 2, "gave up after 2 attempts; last error: HTTP 500")


def test_a_receiver_down_or_slow_is_transient(hooked, answering, pg):
    closed = free_port()
    rt = hooked.make(NOTIF_WEBHOOK_URL=f"http://127.0.0.1:{closed}/in {answering}/in", NOTIF_WEBHOOK_TIMEOUT="0.5")
    down, slow = write(rt)
    with pytest.raises(RetryLater, match=r"could not reach the endpoint \(ConnectionError\)"):
        send(rt, down.id)
    Answering.delay = 2.0
    with pytest.raises(RetryLater, match="no answer within 0.5 s"):
        send(rt, slow.id)
    assert {r.status for r in WebhookEvent.select()} == {"pending"}


def test_an_endpoint_no_longer_configured_is_never_called(to, receiver, pg, hooked):
    rt = to()
    (event,) = write(rt)
    WebhookEvent.update(endpoint="http://127.0.0.1:9/not-any-more").execute()  # e.g. the URL was changed since
    assert send(rt, event.id) == "failed" and receiver.all() == []
    assert "no longer in NOTIF_WEBHOOK_URL" in WebhookEvent.get_by_id(event.id).last_error


def test_one_keep_alive_connection_per_process(to, receiver, pg):
    rt = to()
    ports = []
    original = socket.socket.connect

    def connect(sock, address):
        ports.append(address)
        return original(sock, address)

    first, second, third = (write(rt)[0] for _ in range(3))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", connect)
        for event in (first, second, third):
            assert send(rt, event.id) == "sent"
    assert len(ports) == 1 and len(receiver.all()) == 3  # one connection for the three
    assert sender_for(rt.settings) is sender_for(rt.settings)


def test_the_configured_https_hosts_are_allowed_and_no_other_private_one(hooked, pg):
    rt = hooked.make(NOTIF_WEBHOOK_URL="https://10.20.0.5:8443/hooks", NOTIF_OUTBOUND_ALLOW="")
    policy = sender_for(rt.settings).session.policy
    assert policy.addresses("10.20.0.5", 8443) == ["10.20.0.5"]  # the operator named it
    for host, port in (("10.20.0.6", 8443), ("10.20.0.5", 22), ("169.254.169.254", 443)):
        with pytest.raises(OutboundRefused):
            policy.addresses(host, port)
    with pytest.raises(OutboundRefused, match="https"):
        policy.parse("http://10.20.0.5:8443/hooks")  # plain http only where NOTIF_OUTBOUND_ALLOW says


def test_a_disabled_outbox_writes_nothing(pg):
    assert WebhookOutbox.disabled().write([("delivery.failed", utcnow(), {})]) == []
    assert WebhookEvent.select().count() == 0


def test_while_rotating_the_secret_a_receiver_with_the_old_or_the_new_one_verifies(to, receiver, pg):
    """NOTIF_WEBHOOK_SECRET=new,old signs each attempt with both: the receiver (verifying with the old secret, as
    it still does) accepts it, and one verifying with the new secret only would too."""
    new = "whsec_" + base64.b64encode(bytes(range(1, 33))).decode()
    rt = to(NOTIF_WEBHOOK_SECRET=f"{new}, {SECRET}")
    (event,) = write(rt)
    assert send(rt, event.id) == "sent"
    (got,) = receiver.all()
    assert got.payload is not None and got.status == 204  # the receiver's library, with the old secret
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(new).verify(got.body, got.headers)["data"]["correlation_id"] == "corr-42"
