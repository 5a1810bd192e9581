"""Escalation through the real processes: a message through SQS, the poller and a worker; the leading
scheduler escalates it by email to an SMTP server on loopback — once, across a scheduler killed with
kill -9 while the escalation waited — or, read first, never."""
import json
import subprocess
import sys
import time

import httpx
import pytest

from helpers import wait_until
from notif.auth import make_token
from notif.models import Delivery, Escalation, Notification, utcnow

pytestmark = pytest.mark.e2e

AFTER = 4  # seconds: long enough to kill a scheduler and start another before it is due
INTERVAL = 0.25  # NOTIF_ESCALATION_INTERVAL
TTL = 1.5  # NOTIF_LEADER_TTL: a killed leader's lock lapses this fast


@pytest.fixture
def stack(processes, smtp):
    processes.env.update({"SMTP_URL": f"smtp://127.0.0.1:{smtp[1]}", "EMAIL_FROM": "notify@example.com",
                          "NOTIF_ESCALATION_INTERVAL": str(INTERVAL), "NOTIF_LEADER_TTL": str(TTL)})
    processes.start_worker()
    processes.start_poller()
    return processes


def send(sqs, queues, key: str) -> None:
    sqs.send_message(QueueUrl=queues["normal"], MessageBody=json.dumps({
        "id": key, "type": "REPORT_SUBMITTED", "channels": ["in_app"],
        "recipients": [{"user_id": "ana", "email": "ana@example.com"}],
        "variables": {"submitterName": "Bo", "branchName": "North", "reportId": 42},
        "escalate": {"after": AFTER, "channels": ["email"]}}))


def notif_trace(env: dict, key: str) -> str:
    result = subprocess.run([sys.executable, "-m", "notif.cli", "trace", key], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_unread_it_is_emailed_once_though_the_leading_scheduler_is_killed_while_it_waits(stack, sqs, queues, smtp, pg):
    inbox = smtp[0]
    stack.start_scheduler("scheduler-a")
    wait_until(lambda: "became leader" in stack.log("scheduler-a"), 30, 0.1, "scheduler-a to lead")
    stack.start_scheduler("scheduler-b")  # a standby
    send(sqs, queues, "report-42")
    wait_until(lambda: Escalation.select().count() == 1, 30, 0.1, "the notification and its escalation to be stored")
    escalation = Escalation.get()
    assert escalation.state == "pending" and escalation.due_at > utcnow()  # before `after` elapses:
    stack.kill9("scheduler-a")  # the leader dies without a word
    stack.start_scheduler("scheduler-c")
    wait_until(lambda: len(inbox.messages) >= 1, 30, 0.1, "the escalation email")
    wait_until(lambda: Delivery.select().where((Delivery.channel == "email") & (Delivery.status == "sent")).count(),
               30, 0.1, "the email delivery to be recorded sent")
    # Nothing more may come: give the new leader (and a hand-over) many passes to do anything twice.
    time.sleep(TTL + 8 * INTERVAL)
    (mail,) = inbox.messages
    assert mail["Subject"] == "Bo submitted a report for North" and mail["To"] == "ana@example.com"
    email = Delivery.get(Delivery.channel == "email")
    escalation = Escalation.get()
    assert escalation.state == "escalated" and email.attempts == 1
    assert escalation.decided_at >= escalation.due_at and email.sent_at >= escalation.due_at  # not before its time
    assert Delivery.select().count() == 2  # in_app and the one email
    leaders = [name for name in ("scheduler-b", "scheduler-c") if "escalated" in stack.log(name)]
    assert len(leaders) == 1  # one scheduler made it, and logged it with its correlation id
    line = next(json.loads(line) for line in stack.log(leaders[0]).splitlines() if '"escalated"' in line)
    assert line["correlation_id"] == Notification.get().correlation_id and line["channels"] == ["email"]
    out = notif_trace(stack.env, "report-42")
    assert f"escalation  escalated at {escalation.decided_at.isoformat(timespec='milliseconds')}Z (email)" in out


def test_read_before_its_time_it_is_never_emailed(stack, sqs, queues, smtp, pg):
    stack.start_scheduler()
    base = stack.start_web()
    send(sqs, queues, "report-43")
    wait_until(lambda: Escalation.select().count() == 1, 30, 0.1, "the notification and its escalation to be stored")
    headers = {"Authorization": f"Bearer {make_token(stack.env['NOTIF_JWT_SECRET'], 'ana')}"}
    answer = httpx.post(f"{base}/api/notifications/{Notification.get().id}/read", headers=headers, timeout=10)
    assert answer.status_code == 200 and answer.json()["read"] is True
    assert Escalation.get().due_at > utcnow()  # read in time
    wait_until(lambda: Escalation.get().state == "read", AFTER + 30, 0.1, "the escalation to be settled as read")
    assert smtp[0].messages == [] and not Delivery.select().where(Delivery.channel == "email").exists()
    read_at = Notification.get().read_at.isoformat(timespec="milliseconds")
    assert f"escalation  not escalated: read at {read_at}Z" in notif_trace(stack.env, "report-43")
