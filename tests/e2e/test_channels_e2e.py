"""One message to every channel, through the real processes — and a third-party plugin installed with pip.

The example package in examples/notif-webhook is pip-installed for this module; notif finds
it through its entry point alone and delivers to it like to its own channels.
"""
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
from aiosmtpd.controller import Controller

from helpers import ROOT, auth, free_port, wait_until
from notif.models import Delivery
from notif.vapid import generate
from push_service import PushService
from smtp_sink import Inbox

pytestmark = pytest.mark.e2e
EXAMPLE = ROOT / "examples" / "notif-webhook"


@pytest.fixture(scope="module")
def webhook_plugin():
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", str(EXAMPLE)]
    subprocess.run(pip, check=True, capture_output=True, timeout=300)
    yield
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "notif-webhook"],
                   capture_output=True, timeout=120)


def test_the_example_plugin_passes_its_own_tests_with_notifs_harness(webhook_plugin):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                            capture_output=True, text=True, timeout=300, cwd=EXAMPLE)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "3 passed" in result.stdout


@pytest.fixture
def webhook():
    got = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", got
    server.shutdown()


def test_one_message_reaches_inbox_push_email_and_a_plugin(webhook_plugin, webhook, processes, sqs, queues, pg):
    public, private = generate()
    push_service = PushService(public)
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        processes.env.update({"VAPID_PUBLIC_KEY": public, "VAPID_PRIVATE_KEY": private,
                              "SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "EMAIL_FROM": "notify@example.com",
                              "WEBHOOK_CHANNEL_URL": webhook[0], "NOTIF_PUBLIC_URL": "https://app.example.com",
                              "NOTIF_JWT_SECRET": "web-test-secret-at-least-32-bytes-long"})
        processes.start_worker()
        processes.start_poller()
        base = processes.start_web()
        phone = push_service.subscriber("ana-phone")
        assert httpx.post(f"{base}/api/push/subscriptions", json=phone.subscription(), headers=auth("ana"),
                          timeout=10).status_code == 201
        sqs.send_message(QueueUrl=queues["normal"], MessageBody=json.dumps({
            "id": "report-42", "type": "REPORT_SUBMITTED",
            "recipients": [{"user_id": "ana", "email": "ana@example.com"}],
            "variables": {"submitterName": "Bo <script>", "branchName": "North", "reportId": 42},
            "channels": ["in_app", "push", "email", "webhook"]}))
        wait_until(lambda: Delivery.select().where(Delivery.status == "sent").count() == 4, 60, 0.2,
                   "four deliveries sent")
        item = httpx.get(f"{base}/api/notifications", headers=auth("ana"), timeout=10).json()["items"][0]
        assert [a["label"] for a in item["actions"]] == ["View report", "Approve"]
        (push,) = phone.received
        assert push["title"] == "Report from North" and len(push["actions"]) == 2
        (mail,) = inbox.messages
        assert mail.get_body(("plain",)) and "Bo &lt;script&gt;" in mail.get_body(("html",)).get_content()
        assert mail["Subject"] == "Bo <script> submitted a report for North"
        (hook,) = webhook[1]
        assert hook["user_id"] == "ana" and hook["title"] == "New report submitted"
    finally:
        smtp.stop()
        push_service.close()
