"""What is owed stays owed: the sweep enqueues events whose message was lost and reclaims those a dead
worker held; `notif dlq` lists, shows, replays (same webhook-id) and purges webhook dead letters; retention
forgets sent ones, never owed ones."""
import datetime as dt
import json

from notif.dlq import DeadLetters
from notif.models import WebhookEvent, utcnow
from notif.scheduler.retention import prune
from notif.webhooks.sweep import sweep


def written(rt, n=1):
    return rt.webhooks.write([("notification.read", utcnow(), {"notification_id": i, "correlation_id": f"c{i}"})
                              for i in range(n)])


def test_the_sweep_enqueues_lost_events_and_reclaims_stuck_ones(hooked, pg):
    rt = hooked.make(NOTIF_WEBHOOK_URL="https://hooks.example.com/notif")
    lost, stuck, fresh, later, done = written(rt, 5)
    long_ago = utcnow() - dt.timedelta(minutes=10)
    WebhookEvent.update(updated_at=long_ago).where(WebhookEvent.id.in_([lost, stuck, done])).execute()
    WebhookEvent.update(status="sending").where(WebhookEvent.id == stuck).execute()
    WebhookEvent.update(status="sent").where(WebhookEvent.id == done).execute()
    WebhookEvent.update(updated_at=long_ago, next_attempt_at=utcnow() + dt.timedelta(hours=1)).where(
        WebhookEvent.id == later).execute()  # a retry not due yet
    got = []
    swept = sweep(got.extend, grace=60, lease=300)
    assert (swept.reclaimed, swept.requeued) == (1, 1) and sorted(got) == sorted([lost, stuck])
    reclaimed = WebhookEvent.get_by_id(stuck)
    assert (reclaimed.status, reclaimed.attempts) == ("pending", 1) and "reclaimed" in reclaimed.last_error
    got.clear()
    assert sweep(got.extend, grace=60, lease=300) == type(swept)(0, 0) and got == []  # touched: a grace of its own
    assert WebhookEvent.get_by_id(fresh).status == "pending"


def test_dead_letters_list_show_replay_and_purge(hooked, settings, pg):
    rt = hooked.make(NOTIF_WEBHOOK_URL="https://hooks.example.com/notif?token=s3cret")
    first, second, kept = written(rt, 3)
    WebhookEvent.update(status="failed", attempts=15, last_error="gave up after 15 attempts; last error: HTTP 503").where(
        WebhookEvent.id.in_([first, second])).execute()
    replayed: list[int] = []
    letters = DeadLetters(settings, lambda work: None, replayed.extend)
    listed = letters.of_kind("webhook")
    assert [x.id for x in listed] == [f"webhook:{first}", f"webhook:{second}"]
    letter = listed[0].public()
    row = WebhookEvent.get_by_id(first)
    assert letter["reason"] == "gave up after 15 attempts; last error: HTTP 503" and letter["kind"] == "webhook"
    assert letter["where"] == "webhook:notification.read" and letter["correlation_id"] == "c0"
    assert letter["details"] == {"event_type": "notification.read", "webhook_id": row.webhook_id,
                                 "endpoint": "https://hooks.example.com/notif", "attempts": 15,
                                 "created_at": letter["details"]["created_at"], "body": row.body}
    assert json.loads(letter["details"]["body"])["data"]["notification_id"] == 0
    assert f"webhook:{first}" in [x.id for x in letters.deliveries() + letters.webhooks()]

    chosen, missing = letters.find([f"webhook:{first}", "webhook:999999"])
    assert missing == ["webhook:999999"] and letters.replay(chosen) == 1 and replayed == [first]
    again = WebhookEvent.get_by_id(first)
    assert (again.status, again.attempts, again.next_attempt_at) == ("pending", 0, None)
    assert again.webhook_id == row.webhook_id and again.body == row.body  # the receiver can tell it is the same event
    assert again.last_error.startswith("replayed from the dead letters; was: gave up after 15 attempts")
    assert letters.replay(chosen) == 0  # not a dead letter any more

    assert letters.purge(letters.find([f"webhook:{second}"])[0]) == 1
    assert WebhookEvent.get_by_id(second).status == "discarded" and letters.of_kind("webhook") == []
    assert WebhookEvent.get_by_id(kept).status == "pending"


def test_retention_forgets_old_sent_events_and_never_owed_ones(hooked, pg):
    rt = hooked.make(NOTIF_WEBHOOK_URL="https://hooks.example.com/notif")
    ids = written(rt, 5)
    old = utcnow() - dt.timedelta(days=100)
    for event_id, status in zip(ids, ("sent", "discarded", "pending", "failed", "sent"), strict=True):
        WebhookEvent.update(status=status, updated_at=old if event_id != ids[-1] else utcnow()).where(
            WebhookEvent.id == event_id).execute()
    assert prune(None, days=90)["webhook_events"] == 2
    assert sorted(e.status for e in WebhookEvent.select()) == ["failed", "pending", "sent"]
