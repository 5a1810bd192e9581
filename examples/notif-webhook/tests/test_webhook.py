"""How a plugin author tests a channel: notif's harness fixture and a local HTTP receiver."""
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from notif_webhook import WebhookChannel


@pytest.fixture
def receiver():
    got = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            got.append((self.headers["Idempotency-Key"], json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            status = 503 if got[-1][1]["title"] == "fail" else 204
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", got
    server.shutdown()


def test_posts_the_notification(notif_channel_harness, receiver, monkeypatch):
    url, got = receiver
    monkeypatch.setenv("WEBHOOK_CHANNEL_URL", url)
    result = notif_channel_harness(WebhookChannel()).deliver(title="Hi", message="there")
    assert result.status == "sent"
    key, body = got[0]
    assert body["title"] == "Hi" and key == result.delivery.idempotency_key


def test_a_5xx_is_retried(notif_channel_harness, receiver, monkeypatch):
    url, _ = receiver
    monkeypatch.setenv("WEBHOOK_CHANNEL_URL", url)
    result = notif_channel_harness(WebhookChannel()).deliver(title="fail")
    assert result.status == "retry" and result.delivery.last_error.startswith("HTTP 503")


def test_a_private_address_is_refused_unless_allowed(notif_channel_harness, receiver, monkeypatch):
    url, got = receiver
    monkeypatch.setenv("WEBHOOK_CHANNEL_URL", url)
    result = notif_channel_harness(WebhookChannel(), settings={"NOTIF_OUTBOUND_ALLOW": "10.0.0.0/8"}).deliver(title="Hi")
    assert result.status == "failed" and "plain http to 127.0.0.1" in result.delivery.last_error
    assert got == []
