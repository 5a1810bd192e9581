"""Shadow mode: notif beside the old worker on a copy of its traffic stores, sends nothing,
and reports what it would have sent."""
import json
import subprocess
import sys

import pytest

from helpers import ROOT, wait_until
from notif.models import Delivery, Preference

pytestmark = pytest.mark.e2e


def test_shadow_mode_sends_nothing_and_reports_what_it_would_have(processes, env, sqs, queues, pg, tmp_path):
    record = tmp_path / "sends.log"
    processes.env.update({"NOTIF_SHADOW": "on", "NOTIF_PLUGINS": "notif_test_recorder",
                          "NOTIF_TEST_RECORD_FILE": str(record), "PYTHONPATH": str(ROOT / "tests" / "plugins")})
    Preference.create(user_id="u2", settings={"channels": {"recorder": False}})
    processes.start_worker()
    processes.start_poller()
    bodies = [  # the old worker's format, as the producers send it today, and the new one
        {"userId": "u1", "title": "Report", "message": "Ana sent one", "type": "REPORT_SUBMITTED"},
        {"userId": "u1", "title": "Report", "message": "Ben sent one", "type": "REPORT_SUBMITTED"},
        {"user_id": "u2", "title": "Comment", "message": "Hi", "type": "COMMENT_ADDED", "channels": ["in_app", "recorder"]},
        {"user_id": "u3", "title": "Comment", "message": "Yo", "type": "COMMENT_ADDED", "channels": ["in_app", "recorder"]},
    ]
    for body in bodies:
        sqs.send_message(QueueUrl=queues["normal"], MessageBody=json.dumps(body))
    wait_until(lambda: Delivery.select().where(Delivery.status == "shadow").count() == 5, 30, 0.1,
               "the deliveries to be recorded")
    assert not record.exists()  # nothing reached a channel

    result = subprocess.run([sys.executable, "-m", "notif.cli", "shadow", "report", "--since", "1h", "--json"],
                            env=processes.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["notifications"] == 4 and report["by_channel"] == {"in_app": 4, "recorder": 1}
    assert {(r["type"], r["channel"], r["would_send"], r["skipped"]) for r in report["by_type_and_channel"]} == {
        ("REPORT_SUBMITTED", "in_app", 2, 0), ("COMMENT_ADDED", "in_app", 2, 0), ("COMMENT_ADDED", "recorder", 1, 1)}
    assert {(r["user_id"], r["channel"]): r["would_send"] for r in report["by_user_and_channel"]}[("u1", "in_app")] == 2
    text = subprocess.run([sys.executable, "-m", "notif.cli", "shadow", "report", "--since", "1h"],
                          env=processes.env, capture_output=True, text=True, timeout=60).stdout
    assert "REPORT_SUBMITTED            in_app                2        0" in text
