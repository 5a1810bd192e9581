"""Topic fan-out through real processes: the poller, Dramatiq workers, the scheduler, the web process."""
import json

import httpx
import pytest

from helpers import pg_query, wait_until
from notif.auth import make_token
from notif.topics import change

pytestmark = pytest.mark.e2e


def send(sqs, url, body):
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))


def stored(pg, key):
    return pg_query(pg, "SELECT COUNT(*) FROM notif_notification WHERE key = %s", (key,))[0][0]


def in_app(pg, key, status="sent"):
    return pg_query(pg, "SELECT COUNT(*) FROM notif_delivery d JOIN notif_notification n ON n.id = d.notification_id "
                        "WHERE n.key = %s AND d.channel = 'in_app' AND d.status = %s", (key, status))[0][0]


def test_a_topic_message_reaches_every_subscriber_over_the_api(processes, sqs, queues, pg):
    processes.env.update(NOTIF_FANOUT_CHUNK="20")
    base = processes.start_web()
    service = {"Authorization": f"Bearer {make_token(processes.env['NOTIF_JWT_SECRET'], 'host', service=True)}"}
    members = [f"manager-{i}" for i in range(75)]
    answer = httpx.put(f"{base}/api/topics/branch-north/subscribers", json={"add": members}, headers=service)
    assert answer.json() == {"topic": "branch-north", "subscribers": 75}
    processes.start_worker()
    processes.start_poller()
    send(sqs, queues["normal"], {"id": "north-1", "topic": "branch-north", "type": "SYSTEM_ANNOUNCEMENT",
                                 "title": "Branch meeting", "message": "Friday 9:00"})
    wait_until(lambda: in_app(pg, "north-1") == 75, 60, message="75 in-app deliveries sent")
    users = pg_query(pg, "SELECT user_id FROM notif_notification WHERE key = 'north-1' ORDER BY user_id")
    assert [u for (u,) in users] == sorted(members)
    inbox = httpx.get(f"{base}/api/notifications",
                      headers={"Authorization": f"Bearer {make_token(processes.env['NOTIF_JWT_SECRET'], 'manager-7')}"})
    assert [item["title"] for item in inbox.json()["items"]] == ["Branch meeting"]
    assert pg_query(pg, "SELECT outcome, stored FROM notif_fanout WHERE key = 'north-1'") == [("done", 75)]


def test_a_worker_killed_mid_fanout_every_subscriber_gets_it_exactly_once(processes, sqs, queues, pg):
    n = 20_000
    for start in range(0, n, 10_000):
        change("everyone", [f"user-{i:05d}" for i in range(start, min(n, start + 10_000))], [])
    processes.env.update(NOTIF_FANOUT_CHUNK="250", NOTIF_FANOUT_STALL="2", NOTIF_SWEEP_INTERVAL="1",
                         NOTIF_SWEEP_GRACE="3", NOTIF_SWEEP_LEASE="5", NOTIF_LOG_LEVEL="WARNING",
                         # Dramatiq would hand the dead worker's messages on after this: the scheduler must recover them
                         NOTIF_BROKER_HEARTBEAT_TIMEOUT="600000")
    processes.start_worker(name="worker0")
    processes.start_poller()
    send(sqs, queues["low"], {"id": "everyone-1", "topic": "everyone", "title": "Announcement", "message": "to all"})
    wait_until(lambda: stored(pg, "everyone-1") >= 2000, 120, 0.05, message="the fan-out under way")
    processes.kill9("worker0")
    midway = stored(pg, "everyone-1")
    assert midway < n, "the fan-out finished before the kill: make it larger"

    processes.start_worker(name="worker1")
    processes.start_scheduler()
    wait_until(lambda: in_app(pg, "everyone-1") == n, 240, 0.5, message=f"{n} in-app deliveries sent")
    assert pg_query(pg, "SELECT COUNT(*), COUNT(DISTINCT user_id) FROM notif_notification WHERE key = 'everyone-1'") \
        == [(n, n)]
    assert pg_query(pg, "SELECT COUNT(*) FROM notif_delivery") == [(n,)]  # one in-app delivery each, no more
    assert pg_query(pg, "SELECT outcome, stored FROM notif_fanout") == [("done", n)]
    # (the next chunk's message was already queued when the worker died, or the scheduler resumed it;
    # the stalled case alone is test_topics.py's test_the_scheduler_resumes_a_stalled_fanout)
