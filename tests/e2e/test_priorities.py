"""HIGH overtakes a LOW flood, and LOW still finishes: real pollers and workers, two of each."""
import json

import pytest

from helpers import ROOT, wait_until
from notif.models import Delivery, Notification

pytestmark = pytest.mark.e2e

LOW_MESSAGES, RECIPIENTS = 30, 100


def owed(priority: str) -> int:
    return (Delivery.select().join(Notification)
            .where((Notification.priority == priority) & (Delivery.status != "sent")).count())


def sent(priority: str) -> int:
    return (Delivery.select().join(Notification)
            .where((Notification.priority == priority) & (Delivery.status == "sent")).count())


def test_high_overtakes_a_low_flood_and_low_still_completes(processes, sqs, queues, pg, tmp_path):
    # LOW goes to a channel that is delivered one Dramatiq message at a time (the in-app
    # channel would be delivered inside the ingest batch): 3,000 messages on notif.deliver.low
    processes.env.update({"NOTIF_LOG_LEVEL": "WARNING", "NOTIF_PLUGINS": "notif_test_recorder",
                          "NOTIF_TEST_RECORD_FILE": str(tmp_path / "sends.log"),
                          "PYTHONPATH": str(ROOT / "tests" / "plugins")})
    for x in "ab":
        processes.start_worker(threads=2, name=f"worker-{x}")
        processes.start_poller(name=f"poller-{x}")
    for i in range(LOW_MESSAGES):  # 3,000 deliveries asked for at once
        sqs.send_message(QueueUrl=queues["low"], MessageBody=json.dumps(
            {"id": f"low-{i}", "recipients": [f"lo-{r}" for r in range(RECIPIENTS)], "title": "low", "message": "m",
             "channels": ["recorder"]}))
    wait_until(lambda: owed("low") >= 500, 60, 0.1, "a LOW backlog to build")
    for i in range(5):
        sqs.send_message(QueueUrl=queues["high"], MessageBody=json.dumps(
            {"id": f"high-{i}", "user_id": f"hi-{i}", "title": "high", "message": "m"}))
    wait_until(lambda: sent("high") == 5, 30, 0.05, "every HIGH delivery")
    low_left = owed("low")
    assert low_left > 0, "the LOW flood was gone before HIGH arrived: nothing was overtaken"
    wait_until(lambda: sent("low") == LOW_MESSAGES * RECIPIENTS, 180, 0.5, "the LOW flood to finish")
    assert Notification.select().count() == LOW_MESSAGES * RECIPIENTS + 5  # each stored once
    print(f"\nHIGH done with {low_left} LOW deliveries still owed")
