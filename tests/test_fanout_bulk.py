"""A fan-out chunk's bulk paths on PostgreSQL: its outbox rows in one statement, its in-app
deliveries without a model per row. Each gives what the row-by-row paths give."""
import datetime as dt
import json
import sys
from dataclasses import replace

import peewee
import pytest
from dramatiq.brokers.stub import StubBroker

from helpers import wait_until
from notif import deliver as deliver_mod
from notif import fanout, live, outbox
from notif.config import FEATURES
from notif.deliver import deliver, deliver_copies
from notif.errors import TransientError
from notif.ingest import ingest_batch
from notif.live import notification_event
from notif.models import Delivery, Notification, Preference, utcnow
from notif.outbox import OwedDelivery, copy_rows, delivery_rows
from notif.redis_keys import user_channel
from notif.topics import change
from notif.worker.tasks import declare
from test_ingest import Enqueued, put, receive

CHANNELS = ["in_app", "push", "email", "carrier-pigeon"]  # email turned off below, the pigeon not installed


def notifications(users, key):
    now = utcnow()
    rows = [{"user_id": u, "key": key, "title": "t", "message": "m", "priority": "low", "correlation_id": "c",
             "created_at": now} for u in users]
    return [(nid, user) for nid, user in Notification.insert_many(rows).returning(
        Notification.id, Notification.user_id).tuples().execute()]


def outbox_of(ids):
    """The rows written for these notifications, by user and channel (ids aside)."""
    users = dict(Notification.select(Notification.id, Notification.user_id).where(Notification.id.in_(ids)).tuples())
    return sorted((users[d.notification_id], d.channel, d.status, d.last_error, d.reason_code, d.next_attempt_at,
                   d.attempts)
                  for d in Delivery.select().where(Delivery.notification.in_(ids)))


@pytest.mark.parametrize("critical, send_at", [(False, None), (True, None), (False, dt.datetime(2030, 1, 1, 9))])
def test_a_chunks_outbox_rows_are_those_row_by_row_gives(runtime, pg, critical, send_at):
    runtime.settings = replace(runtime.settings, features=frozenset(FEATURES) - {"email"})
    Preference.insert_many([
        {"user_id": "no-push", "settings": {"channels": {"push": False}}},
        {"user_id": "no-news", "settings": {"types": {"NEWS": False}}},
        {"user_id": "no-email", "settings": {"channels": {"email": False}}},  # off anyway: the flag's reason wins
        {"user_id": "other-type", "settings": {"types": {"OTHER": False}}},
    ]).execute()
    users = ["plain", "no-push", "no-news", "no-email", "other-type"]
    now = utcnow()
    template = OwedDelivery(0, "", "low", CHANNELS, "NEWS", critical, send_at)
    one = notifications(users, "row-by-row")
    expected = delivery_rows(runtime, [replace(template, notification_id=n, user_id=u) for n, u in one], now)
    bulk = notifications(users, "bulk")
    with pytest.MonkeyPatch.context() as mp:  # the bulk path writes no row through peewee
        mp.setattr(Delivery, "insert_many", lambda *a, **k: pytest.fail("a delivery row written one by one"))
        queued = copy_rows(runtime, bulk, template, now)
    assert outbox_of([n for n, _ in bulk]) == outbox_of([n for n, _ in one])
    assert sorted((q.priority, q.channel) for q in queued) == sorted((q.priority, q.channel) for q in expected)
    pending = {d.id for d in Delivery.select().where(Delivery.notification.in_([n for n, _ in bulk])
                                                     & (Delivery.status == "pending"))}
    assert {q.delivery_id for q in queued} == pending
    statuses = {(u, c): s for u, c, s, *_ in outbox_of([n for n, _ in bulk])}
    if send_at:
        assert statuses[("plain", "in_app")] == "scheduled" and queued == []
    else:
        assert statuses[("plain", "in_app")] == statuses[("plain", "push")] == "pending"
    assert statuses[("no-push", "push")] == ("skipped" if not critical else "scheduled" if send_at else "pending")
    assert statuses[("plain", "email")] == statuses[("plain", "carrier-pigeon")] == "skipped"
    codes = {(u, c): code for u, c, _, _, code, *_ in outbox_of([n for n, _ in bulk])}
    assert (codes[("plain", "email")], codes[("plain", "carrier-pigeon")]) == ("channel_off", "channel_unavailable")
    assert codes[("no-news", "in_app")] == (None if critical else "opted_out_type")
    assert codes[("no-push", "push")] == (None if critical else "opted_out_channel")


def test_no_notifications_no_rows(runtime, pg):
    assert copy_rows(runtime, [], OwedDelivery(0, "", "low", CHANNELS, None), utcnow()) == []
    assert outbox.is_postgres() and Delivery.select().count() == 0


def test_a_chunk_is_all_or_nothing(runtime, pg):
    bulk = notifications(["a", "b"], "k")
    with pytest.raises(peewee.DatabaseError):  # a notification that is not there: the statement fails whole
        copy_rows(runtime, [*bulk, (10**12, "ghost")], OwedDelivery(0, "", "low", ["in_app"], None), utcnow())


# -- the in-app deliveries of a chunk ----------------------------------------------------
def subscribed(runtime, users):
    """Subscribed to these users' channels, as a web process serving them is."""
    pubsub = runtime.redis.pubsub()
    pubsub.subscribe(*(user_channel(runtime.settings, user) for user in users))
    for user in users:
        wait_until(lambda: pubsub.get_message(timeout=0.1), 5, message=f"the subscription for {user}")
    return pubsub


def received(pubsub, n):
    events = []
    while len(events) < n:
        message = wait_until(lambda: pubsub.get_message(timeout=0.5), 5, message=f"event {len(events) + 1} of {n}")
        events.append((message["channel"], message["data"]))
    assert pubsub.get_message(timeout=0.2) is None  # and no more
    return events


def fanout_actor(runtime):
    """The worker's fan-out actor, run in this process (its next-chunk messages go to a stub broker)."""
    return declare(StubBroker(), lambda: runtime).fanout["low"].fn


def test_a_chunks_in_app_deliveries_go_out_as_copies_with_each_users_id_and_count(runtime, sqs, queues, pg):
    change("t", [f"m{i:02d}" for i in range(25)], [])
    runtime.settings = replace(runtime.settings, fanout_chunk=10)
    Notification.create(user_id="m03", key="earlier", title="t", message="m", priority="low", correlation_id="c")
    put(sqs, queues["low"], {"id": "news", "topic": "t", "title": "Hi", "message": "all", "data": {"x": [1, "é"]},
                             "ttl": 3600, "channels": ["in_app", "push"]})
    started = []
    ingest_batch(runtime, receive(sqs, queues["low"], "low", expect=1), Enqueued(), start_fanouts=started.extend)
    online = [f"m{i:02d}" for i in range(20)]  # m20…m24 have no stream open: nothing is published for them
    pubsub = subscribed(runtime, online)
    run = fanout_actor(runtime)
    with pytest.MonkeyPatch.context() as mp:  # no model per row, no event built per user
        mp.setattr(deliver_mod, "deliver_batch", lambda *a: pytest.fail("the chunk was delivered row by row"))
        mp.setattr(live, "notification_event", lambda *a: pytest.fail("an event built per user"))
        published = []
        in_app_plugin = sys.modules[type(runtime.channels["in_app"]).__module__]  # as the entry point loaded it
        real = in_app_plugin.publish_json
        mp.setattr(in_app_plugin, "publish_json", lambda r, s, user, e: published.append(user) or real(r, s, user, e))
        for _ in range(3):
            run(started[0][0])
    assert sorted(published) == online  # offline members: no event built, counted or sent
    events = received(pubsub, 20)
    stored = {n.user_id: n for n in Notification.select().where(Notification.key == "news")}
    assert len(stored) == 25
    for channel, data in events:
        user = channel.decode().rsplit(":", 1)[-1]
        unread = 2 if user == "m03" else 1
        assert json.loads(data) == json.loads(json.dumps(notification_event(stored[user], unread)))
        assert data.decode() == json.dumps(notification_event(stored[user], unread), separators=(",", ":"))
    assert sorted(ch.decode().rsplit(":", 1)[-1] for ch, _ in events) == online
    in_app = Delivery.select().where(Delivery.channel == "in_app")
    assert {(d.status, d.attempts, d.sent_at is not None) for d in in_app} == {("sent", 1, True)}
    assert in_app.count() == 25 and {d.status for d in Delivery.select().where(Delivery.channel == "push")} == {"pending"}
    pubsub.close()


def test_copies_changed_since_the_chunk_was_stored_go_one_at_a_time(runtime, pg):
    ids = notifications(["fresh", "amended", "retracted", "read", "taken"], "k")
    queued = copy_rows(runtime, ids, OwedDelivery(0, "", "low", ["in_app"], None), utcnow())
    by_user = {u: (n, q.delivery_id) for (n, u), q in zip(ids, queued, strict=True)}
    now = utcnow()
    Notification.update(updated_at=now, title="new").where(Notification.id == by_user["amended"][0]).execute()
    Notification.update(retracted_at=now).where(Notification.id == by_user["retracted"][0]).execute()
    Notification.update(read_at=now).where(Notification.id == by_user["read"][0]).execute()
    Delivery.update(status="sending").where(Delivery.id == by_user["taken"][1]).execute()  # another worker has it
    pubsub = subscribed(runtime, list(by_user))
    row = {name: getattr(Notification.get_by_id(by_user["fresh"][0]), name) for name in fanout.COPIED}
    left = deliver_copies(runtime, [q.delivery_id for q in queued], row, "in_app")
    assert left == sorted(by_user[u][1] for u in ("amended", "retracted", "read", "taken"))
    [(channel, _)] = received(pubsub, 1)
    assert channel.decode().endswith(":fresh")
    status = {u: Delivery.get_by_id(d).status for u, (_, d) in by_user.items()}
    assert status == {"fresh": "sent", "amended": "pending", "retracted": "pending", "read": "pending",
                      "taken": "sending"}
    assert [deliver(runtime, by_user[u][1]) for u in ("amended", "retracted", "taken")] == \
        ["sent", "withdrawn", "sending"]  # (the last: already handled, nothing sent)
    assert json.loads(received(pubsub, 1)[0][1])["notification"]["title"] == "new"  # the amended one, as it is now
    pubsub.close()


@pytest.mark.parametrize("how", ["shadow", "rate_limited", "publish_fails"])
def test_copies_that_cannot_go_together_take_the_usual_paths(runtime, pg, how):
    ids = notifications(["a", "b"], "k")
    queued = [q.delivery_id for q in copy_rows(runtime, ids, OwedDelivery(0, "", "low", ["in_app"], None), utcnow())]
    row = {name: getattr(Notification.get_by_id(ids[0][0]), name) for name in fanout.COPIED}
    if how == "shadow":
        runtime.settings = replace(runtime.settings, shadow=True)
    elif how == "rate_limited":
        runtime.settings = replace(runtime.settings, rate_limits={"in_app": (1, 60)})
    else:
        runtime.channels["in_app"] = type("Broken", (type(runtime.channels["in_app"]),), {
            "send_copies": lambda self, *a: (_ for _ in ()).throw(TransientError("Redis went away"))})()
    assert deliver_copies(runtime, queued, row, "in_app") == queued
    assert {d.status for d in Delivery.select()} == {"pending"}  # as the one-at-a-time path wants them
