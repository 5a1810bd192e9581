"""Why didn't user X get Y? — answered by the real processes: a message through SQS, the poller and a
worker to a push service and an SMTP server on loopback, then its trace from `notif serve` and `notif trace`."""
import json
import subprocess
import sys

import httpx
import pytest
from aiosmtpd.controller import Controller

from helpers import free_port, wait_until
from notif.auth import make_token
from notif.models import Delivery
from notif.vapid import generate
from push_service import PushService
from smtp_sink import Inbox

pytestmark = pytest.mark.e2e


def test_the_trace_of_a_message_through_the_real_processes(processes, sqs, queues, pg):
    public, private = generate()
    push_service = PushService(public)
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        processes.env.update({"VAPID_PUBLIC_KEY": public, "VAPID_PRIVATE_KEY": private,
                              "SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "EMAIL_FROM": "notify@example.com"})
        processes.start_worker()
        processes.start_poller()
        base = processes.start_web()
        secret = processes.env["NOTIF_JWT_SECRET"]
        user = lambda name: {"Authorization": f"Bearer {make_token(secret, name)}"}  # noqa: E731
        service = {"Authorization": f"Bearer {make_token(secret, 'support-desk', service=True)}"}
        phone = push_service.subscriber("ana-phone")
        assert httpx.post(f"{base}/api/push/subscriptions", json=phone.subscription(), headers=user("ana"),
                          timeout=10).status_code == 201
        assert httpx.put(f"{base}/api/preferences", json={"channels": {"email": False}}, headers=user("bo"),
                         timeout=10).status_code == 200
        sqs.send_message(QueueUrl=queues["normal"], MessageBody=json.dumps({
            "id": "report-42", "type": "REPORT_SUBMITTED", "channels": ["in_app", "push", "email"],
            "variables": {"submitterName": "Ana", "branchName": "North", "reportId": 42},
            "recipients": [{"user_id": "ana", "email": "ana@example.com"}, {"user_id": "bo", "email": "bo@example.com"},
                           {"user_id": "cy", "email": "nobody@example.com"}]}))
        settled = ("sent", "skipped", "failed")
        wait_until(lambda: Delivery.select().where(Delivery.status.in_(settled)).count() == 9, 60, 0.2,
                   "all nine deliveries to settle")

        answer = httpx.get(f"{base}/api/messages/report-42", headers=service, timeout=10)
        assert answer.status_code == 200, answer.text
        doc = answer.json()
        got = {(r["user_id"], d["channel"]): d for r in doc["recipients"] for d in r["deliveries"]}
        assert {k: d["state"] for k, d in got.items()} == {
            ("ana", "in_app"): "sent", ("ana", "push"): "sent", ("ana", "email"): "sent",
            ("bo", "in_app"): "sent", ("bo", "push"): "skipped", ("bo", "email"): "skipped",
            ("cy", "in_app"): "sent", ("cy", "push"): "skipped", ("cy", "email"): "failed"}
        assert got[("bo", "email")]["reason"]["code"] == "opted_out"
        assert got[("bo", "email")]["reason"]["setting"] == "channels.email"
        assert got[("bo", "push")]["reason"]["code"] == "no_push_subscription"
        assert got[("cy", "email")]["reason"]["code"] == "failed" and "SMTP 550" in got[("cy", "email")]["reason"]["error"]
        for key in (("ana", "push"), ("ana", "email"), ("cy", "email")):  # logged by the worker, with their times
            (attempt,) = got[key]["attempt_log"]
            assert attempt["logged"] and attempt["started_at"] <= attempt["finished_at"]
        assert doc["summary"]["channels"] == {"email": {"failed": 1, "sent": 1, "skipped": 1},
                                              "in_app": {"sent": 3}, "push": {"sent": 1, "skipped": 2}}
        (bo,) = httpx.get(f"{base}/api/messages/report-42", params={"user": "bo"}, headers=service,
                          timeout=10).json()["recipients"]
        assert bo["user_id"] == "bo" and len(bo["deliveries"]) == 3
        assert httpx.get(f"{base}/api/messages/report-42", headers=user("ana"), timeout=10).status_code == 401
        assert httpx.get(f"{base}/api/messages/report-43", headers=service, timeout=10).status_code == 404

        cli = subprocess.run([sys.executable, "-m", "notif.cli", "trace", "report-42", "--json"], env=processes.env,
                             capture_output=True, text=True, timeout=60)
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout) == doc
        assert len(phone.received) == 1 and len(inbox.messages) == 1
    finally:
        smtp.stop()
        push_service.close()
