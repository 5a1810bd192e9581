"""Scheduled, cancelled, digested, rate-limited and opted-out notifications, end to end, with
two copies of every process, one of each killed with SIGKILL while the work is held.

Every send is checked where the outside world sees it (the recorder channel's file) and in
the database: the digest lists all five, the rate limit paced all eight and dropped none,
the scheduled send went out once and on time, both cancels held, the opt-out skipped and
the critical alert did not.
"""
import datetime as dt
import json
from collections import Counter

import httpx
import pytest

from helpers import ROOT, wait_until
from notif.auth import make_token
from notif.models import Delivery, Notification, Preference

pytestmark = pytest.mark.e2e


def send(sqs, url, body):
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))


def test_held_work_survives_two_of_everything_with_one_of_each_killed(processes, env, sqs, queues, pg, tmp_path):
    record = tmp_path / "sends.log"
    processes.env.update({
        "NOTIF_PLUGINS": "notif_test_recorder", "NOTIF_TEST_RECORD_FILE": str(record),
        "PYTHONPATH": str(ROOT / "tests" / "plugins"), "NOTIF_RATE_LIMITS": "recorder=3/2s",
        "NOTIF_SWEEP_INTERVAL": "1", "NOTIF_SWEEP_GRACE": "3", "NOTIF_SWEEP_LEASE": "4", "NOTIF_LEADER_TTL": "2",
        "NOTIF_BROKER_HEARTBEAT_TIMEOUT": "600000", "NOTIF_LOG_LEVEL": "WARNING"})
    webs = [processes.start_web(name=f"web-{x}") for x in "ab"]
    for x in "ab":
        processes.start_worker(name=f"worker-{x}")
        processes.start_poller(name=f"poller-{x}")
        processes.start_scheduler(name=f"scheduler-{x}")
    quiet = make_token(env["NOTIF_JWT_SECRET"], "quiet")
    opt_out = httpx.put(f"{webs[0]}/api/preferences", headers={"Authorization": f"Bearer {quiet}"},
                        json={"channels": {"recorder": False}}, timeout=10)
    assert opt_out.status_code == 200

    channels = ["in_app", "recorder"]
    due = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=6)
    for i, name in enumerate(["Ana", "Ben", "Cy", "Dee", "Eve"]):
        send(sqs, queues["normal"], {"id": f"report-{i}", "user_id": "dig", "type": "REPORT_SUBMITTED", "channels": channels,
                                     "batch_key": "reports", "batch_window": 3,
                                     "variables": {"submitterName": name, "branchName": "North", "reportId": i}})
    for i in range(8):
        send(sqs, queues["low"], {"id": f"busy-{i}", "user_id": "busy", "title": f"#{i}", "message": "m",
                                  "channels": ["recorder"]})
    for key in ("sched-keep", "sched-cancel-msg", "sched-cancel-http"):
        send(sqs, queues["normal"], {"id": key, "user_id": "sch", "title": key, "message": "m",
                                     "channels": ["recorder"], "send_at": due.isoformat()})
    send(sqs, queues["normal"], {"id": "news", "user_id": "quiet", "type": "NEWS", "title": "News", "message": "m",
                                 "channels": ["recorder"]})
    send(sqs, queues["high"], {"id": "alert", "user_id": "quiet", "type": "SECURITY_ALERT", "channels": ["recorder"],
                               "variables": {"device": "Firefox", "when": "now"}})
    send(sqs, queues["normal"], {"cancel": "sched-cancel-msg"})
    wait_until(lambda: Notification.select().where(Notification.key == "sched-cancel-http").exists(), 30, 0.1,
               "the scheduled sends to be stored")
    service = {"Authorization": f"Bearer {make_token(env['NOTIF_JWT_SECRET'], 'host-app', service=True)}"}
    cancelled = httpx.delete(f"{webs[1]}/api/scheduled/sched-cancel-http", headers=service, timeout=10)
    assert cancelled.json()["cancelled"] == 1

    # kill one of each while the digest window is open, the rate limit is deferring and the schedule waits
    wait_until(lambda: Delivery.select().where(Delivery.last_error.startswith("rate limited")).exists(), 30, 0.1,
               "the rate limit to defer")
    for name in ("worker-a", "poller-a", "scheduler-a", "web-a"):
        processes.kill9(name)

    expected = {"digest", "busy-0", "busy-1", "busy-2", "busy-3", "busy-4", "busy-5", "busy-6", "busy-7",
                "sched-keep", "alert"}

    def recorded() -> Counter:
        if not record.exists():
            return Counter()
        ids = [int(line.split()[1]) for line in record.read_text().splitlines()]
        keys = {n.id: ("digest" if n.key.startswith("digest-") else n.key)
                for n in Notification.select().where(Notification.id.in_(ids))}
        return Counter(keys[i] for i in ids)

    wait_until(lambda: set(recorded()) >= expected, 60, 0.2, "every expected send")
    wait_until(lambda: not Delivery.select().where(Delivery.status.in_(["pending", "sending", "scheduled"])).exists(),
               30, 0.2, "nothing left owed")
    sends = recorded()
    assert set(sends) == expected  # nothing cancelled, opted out or digested went out on its own
    by_key = {n.key: n for n in Notification.select()}
    for key, n in sends.items():  # once each; a second raw send only after a lost attempt (a killed worker)
        if n > 1:
            assert max(d.attempts for d in Delivery.select().where(Delivery.channel == "recorder")
                       .join(Notification).where(Notification.key == key)) >= 2

    digest = next(n for k, n in by_key.items() if k.startswith("digest-"))
    assert digest.user_id == "dig" and digest.title == "5 new reports submitted"
    assert digest.data["digest"]["count"] == 5

    busy = list(Delivery.select().join(Notification).where(Notification.user_id == "busy").order_by(Delivery.sent_at))
    assert [d.status for d in busy] == ["sent"] * 8
    first = busy[0].sent_at
    for k, d in enumerate(busy[3:], start=1):  # a burst of 3, then no faster than one per 2/3 s
        assert (d.sent_at - first).total_seconds() >= k * 2 / 3 - 0.2

    keep = Delivery.select().join(Notification).where(Notification.key == "sched-keep").get()
    assert keep.sent_at >= due.replace(tzinfo=None)
    assert "sched-cancel-msg" not in by_key and "sched-cancel-http" not in by_key
    news = Delivery.select().join(Notification).where(Notification.key == "news").get()
    assert (news.status, news.reason_code) == ("skipped", "opted_out_channel")
    assert news.last_error == "preference: the user opted out of the recorder channel (channels.recorder)"
    assert Preference.get_by_id("quiet").settings["channels"] == {"recorder": False}
