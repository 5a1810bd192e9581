"""Webhooks through the real processes (PostgreSQL, Redis, moto's SQS, a Dramatiq worker, the scheduler,
`notif serve`) to a receiver on loopback that verifies every request with the official Standard Webhooks
library and counts what it accepted by webhook-id."""
import json
import subprocess
import sys
from collections import Counter

import httpx
import pytest

from helpers import pg_query, wait_until
from notif.auth import make_token
from notif.topics import change
from webhook_receiver import SECRET, Receiver

pytestmark = pytest.mark.e2e


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def rows(pg, where="TRUE"):
    """(id, webhook_id, type, status, attempts, last_error) of every event row."""
    return pg_query(pg, f"SELECT id, webhook_id, type, status, attempts, last_error FROM notif_webhook_event "
                        f"WHERE {where} ORDER BY id")


def sent(pg, key):
    return pg_query(pg, "SELECT COUNT(*) FROM notif_delivery d JOIN notif_notification n ON n.id = d.notification_id "
                        "WHERE n.key = %s AND d.status = 'sent'", (key,))[0][0]


def send(sqs, url, body):
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))


def notif_cli(env, *args):
    return subprocess.run([sys.executable, "-m", "notif.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def read(base, env, user):
    headers = {"Authorization": f"Bearer {make_token(env['NOTIF_JWT_SECRET'], user)}"}
    (item,) = httpx.get(f"{base}/api/notifications", headers=headers, timeout=10).json()["items"]
    assert httpx.post(f"{base}/api/notifications/{item['id']}/read", headers=headers, timeout=10).status_code == 200
    return item["id"]


def test_every_event_arrives_once_by_id_through_a_receiver_outage(processes, receiver, sqs, queues, pg):
    """503s, then the receiver down (connections refused), then up: every event is retried with its id until
    it is accepted; the receiver, deduplicating by webhook-id, sees each exactly once."""
    receiver.status = 503
    processes.env.update(NOTIF_WEBHOOK_URL=receiver.url, NOTIF_WEBHOOK_SECRET=SECRET, NOTIF_FANOUT_CHUNK="2",
                         NOTIF_SWEEP_INTERVAL="1")
    change("club", [f"member-{i}" for i in range(5)], [])
    processes.start_worker()
    processes.start_poller()
    processes.start_scheduler()
    base = processes.start_web()
    send(sqs, queues["normal"], {"id": "report-9", "recipients": ["ana", "bo"], "type": "COMMENT_ADDED",
                                 "title": "New comment", "message": "on report 9"})
    send(sqs, queues["low"], {"id": "meeting", "topic": "club", "title": "Meeting", "message": "Friday"})
    wait_until(lambda: sent(pg, "report-9") == 2 and sent(pg, "meeting") == 5, 60, message="in-app deliveries sent")
    read(base, processes.env, "ana")
    expected = Counter({"notification.stored": 3, "delivery.sent": 2, "notification.read": 1})
    wait_until(lambda: Counter(r[2] for r in rows(pg)) == expected, 30, message=f"the events {dict(expected)} written")
    wait_until(lambda: all(r[4] >= 2 for r in rows(pg)), 60, message="every event refused twice (503)")
    assert receiver.delivered() == {} and {r[5] for r in rows(pg)} == {"HTTP 503"}

    receiver.down()
    wait_until(lambda: all(r[5] and r[5].startswith("could not reach") for r in rows(pg)), 60,
               message="every event tried while the receiver is down")
    receiver.status = 204
    receiver.up()
    wait_until(lambda: {r[3] for r in rows(pg)} == {"sent"}, 90, message="every event sent once the receiver is back")

    assert receiver.unverified() == []  # every request carried a valid Standard Webhooks signature
    delivered = receiver.delivered()
    assert set(delivered) == {r[1] for r in rows(pg)}  # each event, by its webhook-id
    assert all(len(requests) == 1 for requests in delivered.values())  # exactly once (no duplicate here)
    for webhook_id in delivered:  # every attempt at an event: its id, its body
        attempts = [r for r in receiver.all() if r.webhook_id == webhook_id]
        assert len(attempts) >= 2 and len({r.body for r in attempts}) == 1
    assert Counter(e["type"] for e in receiver.events()) == expected
    topic = receiver.events("notification.stored")
    assert {e["data"].get("recipients") for e in topic} == {None, 5}
    assert {e["data"]["user_id"] for e in receiver.events("delivery.sent")} == {"ana", "bo"}
    (readed,) = receiver.events("notification.read")
    assert readed["data"]["user_id"] == "ana" and readed["data"]["key"] == "report-9"


def test_an_event_is_dead_lettered_after_its_last_attempt_and_replayed_with_notif_dlq(processes, receiver, sqs,
                                                                                       queues, pg):
    receiver.status = 500
    processes.env.update(NOTIF_WEBHOOK_URL=receiver.url, NOTIF_WEBHOOK_SECRET=SECRET, NOTIF_WEBHOOK_MAX_ATTEMPTS="2",
                         NOTIF_WEBHOOK_EVENTS="notification.stored")
    processes.start_worker()
    processes.start_poller()
    send(sqs, queues["normal"], {"id": "alert-1", "user_id": "ana", "title": "Alert", "message": "disk"})
    wait_until(lambda: [r[3] for r in rows(pg)] == ["failed"], 60, message="the event dead-lettered")
    ((event_id, webhook_id, _, _, attempts, reason),) = rows(pg)
    assert attempts == 2 and reason == "gave up after 2 attempts; last error: HTTP 500"

    listed = notif_cli(processes.env, "dlq", "list", "--kind", "webhook", "--json")
    assert listed.returncode == 0, listed.stderr
    (letter,) = json.loads(listed.stdout)
    assert (letter["id"], letter["reason"], letter["details"]["webhook_id"]) == (f"webhook:{event_id}", reason,
                                                                                 webhook_id)
    shown = notif_cli(processes.env, "dlq", "show", f"webhook:{event_id}")
    assert shown.returncode == 0 and webhook_id in shown.stdout and reason in shown.stdout

    receiver.status = 204
    replayed = notif_cli(processes.env, "dlq", "replay", f"webhook:{event_id}")
    assert replayed.returncode == 0 and replayed.stdout.strip() == "replayed 1 dead letter", replayed.stderr
    wait_until(lambda: rows(pg)[0][3] == "sent", 30, message="the replayed event sent")
    attempts = [r for r in receiver.all()]
    assert [r.status for r in attempts] == [500, 500, 204] and {r.webhook_id for r in attempts} == {webhook_id}
    assert receiver.unverified() == [] and receiver.events()[0]["data"]["key"] == "alert-1"
    assert json.loads(notif_cli(processes.env, "dlq", "list", "--kind", "webhook", "--json").stdout) == []


def test_only_the_events_asked_for(processes, receiver, sqs, queues, pg):
    processes.env.update(NOTIF_WEBHOOK_URL=receiver.url, NOTIF_WEBHOOK_SECRET=SECRET,
                         NOTIF_WEBHOOK_EVENTS="notification.read,delivery.failed")
    processes.start_worker()
    processes.start_poller()
    base = processes.start_web()
    send(sqs, queues["normal"], {"id": "k-1", "user_id": "ana", "title": "Hi", "message": "there"})
    wait_until(lambda: sent(pg, "k-1") == 1, 60, message="the in-app delivery sent")
    notification_id = read(base, processes.env, "ana")
    wait_until(lambda: receiver.events(), 30, message="the read event received")
    assert [(e["type"], e["data"]["notification_id"]) for e in receiver.events()] == [
        ("notification.read", notification_id)]
    assert [r[2] for r in rows(pg)] == ["notification.read"]  # nothing else was even written


def test_without_a_url_nothing_is_written(processes, sqs, queues, pg):
    processes.start_worker()
    processes.start_poller()
    processes.start_scheduler()
    base = processes.start_web()
    send(sqs, queues["normal"], {"id": "k-1", "user_id": "ana", "title": "Hi", "message": "there"})
    wait_until(lambda: sent(pg, "k-1") == 1, 60, message="the in-app delivery sent")
    read(base, processes.env, "ana")
    assert pg_query(pg, "SELECT COUNT(*) FROM notif_webhook_event") == [(0,)]
    # (that no writer so much as queries the table without a URL: tests/webhooks/test_outbox.py, statement by statement)


def test_events_left_pending_are_sent_by_the_sweep(processes, receiver, pg):
    """An event whose hand-off was lost (Redis down at the commit, a move inside a caller's transaction)."""
    processes.env.update(NOTIF_WEBHOOK_URL=receiver.url, NOTIF_WEBHOOK_SECRET=SECRET, NOTIF_SWEEP_INTERVAL="1",
                         NOTIF_SWEEP_GRACE="1")
    body = '{"type":"notification.read","timestamp":"2026-01-01T00:00:00.000Z","data":{"notification_id":1}}'
    pg_query(pg, "INSERT INTO notif_webhook_event (webhook_id, type, endpoint, body, status, attempts, created_at, "
                 "updated_at) VALUES ('msg_lost', 'notification.read', %s, %s, 'pending', 0, now(), now()) "
                 "RETURNING id", (receiver.url, body))
    processes.start_worker()
    processes.start_scheduler()
    wait_until(lambda: rows(pg)[0][3] == "sent", 30, message="the lost event sent by the sweep")
    (got,) = receiver.all()
    assert got.webhook_id == "msg_lost" and got.body == body.encode() and got.payload is not None


@pytest.mark.parametrize("wrong, problem", [
    ({"NOTIF_WEBHOOK_URL": "https://hooks.example.com/in"}, "NOTIF_WEBHOOK_URL is set but NOTIF_WEBHOOK_SECRET is not"),
    ({"NOTIF_WEBHOOK_URL": "https://hooks.example.com/in gopher://x", "NOTIF_WEBHOOK_SECRET": SECRET},
     "NOTIF_WEBHOOK_URL: 'gopher://x' cannot be used"),
    ({"NOTIF_WEBHOOK_URL": "http://hooks.example.com/in", "NOTIF_WEBHOOK_SECRET": SECRET},
     "uses plain http, which goes only to a host NOTIF_OUTBOUND_ALLOW lists"),
    ({"NOTIF_WEBHOOK_URL": "https://hooks.example.com/in", "NOTIF_WEBHOOK_SECRET": "whsec_dG9vIHNob3J0"},
     "NOTIF_WEBHOOK_SECRET=*** is invalid"),
])
def test_a_bad_configuration_stops_every_process_at_start_up(wrong, problem, processes):
    bad = {**processes.env, **wrong}
    for command in (["-m", "notif.cli", "scheduler"], ["-m", "notif.cli", "serve", "--port", "0"],
                    ["-m", "dramatiq", "notif.actors", "--processes", "1", "--threads", "1"]):
        result = subprocess.run([sys.executable, *command], env=bad, capture_output=True, text=True, timeout=60)
        assert result.returncode != 0 and problem in result.stdout + result.stderr, (command, result.stderr[-2000:])
        assert "dG9vIHNob3J0" not in result.stdout + result.stderr  # the secret's value is never shown
