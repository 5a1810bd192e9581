"""Deliveries made together: one claim, one send_many, outcomes per item (real PostgreSQL and Redis)."""
from dataclasses import replace

import dramatiq
import pytest

from notif.attempts import of as attempts_of
from notif.channels import Channel
from notif.db import database, init_database
from notif.deliver import deliver
from notif.deliver_many import deliver_many
from notif.errors import PermanentError, Skipped, TransientError
from notif.migrations import migrate
from notif.models import Delivery, Notification, utcnow
from notif.outbox import QueuedDelivery
from notif.runtime import Runtime
from notif.worker.tasks import declare


def deliveries(channel, n, user=None, **fields):
    rows = []
    for i in range(n):
        note = Notification.create(user_id=user or f"u{i}", key=f"k-{channel}-{Notification.select().count()}",
                                   title="Hi", message=f"m{i}", priority="normal", correlation_id=f"c{i}", **fields)
        rows.append(Delivery.create(notification=note, channel=channel))
    return rows


class Batching(Channel):
    """Records each send_many call; fails the items whose message is in ``errors``."""

    def __init__(self, name="batching", errors=None):
        self.name, self.errors, self.calls, self.sent = name, errors or {}, [], []

    def send(self, notification, delivery, ctx):
        if notification.message in self.errors:
            raise self.errors[notification.message]
        self.sent.append(notification.message)

    def send_many(self, items, ctx):
        self.calls.append([n.message for n, _ in items])
        return super().send_many(items, ctx)


def status(rows):
    return [Delivery.get_by_id(d.id).status for d in rows]


def test_a_batch_is_claimed_sent_once_with_send_many_and_each_attempt_logged(runtime):
    runtime.channels["batching"] = channel = Batching()
    rows = deliveries("batching", 5)
    ids = [d.id for d in rows]
    assert deliver_many(runtime, ids) == []
    assert channel.calls == [["m0", "m1", "m2", "m3", "m4"]]
    assert status(rows) == ["sent"] * 5
    assert all(Delivery.get_by_id(i).attempts == 1 and Delivery.get_by_id(i).sent_at for i in ids)
    logged = attempts_of(ids)
    assert [[a["outcome"] for a in logged[i]] for i in ids] == [["sent"]] * 5
    assert deliver_many(runtime, ids) == [] and deliver(runtime, ids[0]) == "sent"  # a redelivered message
    assert channel.sent == ["m0", "m1", "m2", "m3", "m4"]  # nothing twice


def test_one_transient_error_retries_that_one_alone_with_its_own_backoff(runtime):
    runtime.channels["batching"] = channel = Batching(errors={
        "m1": TransientError("busy", retry_after=42), "m2": PermanentError("bad address"),
        "m3": Skipped("nothing to send to")})
    rows = deliveries("batching", 5)
    retries = deliver_many(runtime, [d.id for d in rows])
    assert [(r.delivery_id, r.delay) for r in retries] == [(rows[1].id, 42)]
    assert status(rows) == ["sent", "pending", "failed", "skipped", "sent"]
    again = Delivery.get_by_id(rows[1].id)
    assert again.attempts == 1 and again.last_error == "busy" and again.next_attempt_at > utcnow()
    assert Delivery.get_by_id(rows[2].id).last_error == "bad address"
    channel.errors = {}
    assert deliver(runtime, rows[1].id) == "sent"  # its retry: the single-id path
    assert channel.sent == ["m0", "m4", "m1"]


def test_retracted_handled_and_missing_rows_are_settled_not_sent(runtime):
    runtime.channels["batching"] = channel = Batching()
    rows = deliveries("batching", 3)
    Notification.update(retracted_at=utcnow()).where(Notification.id == rows[0].notification_id).execute()
    Delivery.update(status="sent").where(Delivery.id == rows[1].id).execute()
    assert deliver_many(runtime, [d.id for d in rows] + [10 ** 9]) == []
    assert status(rows) == ["withdrawn", "sent", "sent"] and channel.sent == ["m2"]


def test_a_plugin_channel_with_only_send_is_delivered_in_a_batch(runtime):
    class Plain:  # no Channel base class: a name, a send, a retry policy
        name = "plain"
        retry_policy = Channel.retry_policy
        sent: list = []

        def send(self, notification, delivery, ctx):
            self.sent.append(notification.message)

    runtime.channels["plain"] = Plain()
    rows = deliveries("plain", 3)
    assert deliver_many(runtime, [d.id for d in rows]) == []
    assert status(rows) == ["sent"] * 3 and Plain.sent == ["m0", "m1", "m2"]


def test_an_all_or_nothing_send_many_that_raises_fails_each_for_now(runtime):
    class AllOrNothing(Batching):
        def send_many(self, items, ctx):
            raise TransientError("the bulk API is down")

    runtime.channels["batching"] = AllOrNothing()
    rows = deliveries("batching", 2)
    assert sorted(r.delivery_id for r in deliver_many(runtime, [d.id for d in rows])) == [d.id for d in rows]
    assert status(rows) == ["pending", "pending"]


def test_the_rate_limit_defers_what_is_over_it_and_sends_the_rest(runtime):
    rt = replace(runtime, settings=replace(runtime.settings, rate_limits={"batching": (2, 60.0)}))
    rt.channels["batching"] = channel = Batching()
    rows = deliveries("batching", 3, user="busy")
    assert deliver_many(rt, [d.id for d in rows]) == []
    assert status(rows) == ["sent", "sent", "deferred"] and channel.calls == [["m0", "m1"]]


def test_shadow_mode_records_and_sends_nothing(runtime):
    rt = replace(runtime, settings=replace(runtime.settings, shadow=True))
    rt.channels["batching"] = channel = Batching()
    rows = deliveries("batching", 2)
    assert deliver_many(rt, [d.id for d in rows]) == []
    assert status(rows) == ["shadow", "shadow"] and channel.sent == []


def test_deliveries_made_together_are_enqueued_one_message_per_channel_and_batch(runtime, redis_prefix):
    from dramatiq.brokers.redis import RedisBroker
    broker = RedisBroker(url="redis://127.0.0.1:6379/0", namespace=f"{redis_prefix}:together")
    try:
        tasks = declare(broker, batch=3)
        queued = [QueuedDelivery(i, "normal", "email") for i in range(1, 8)] + [
            QueuedDelivery(20, "normal", "push"), QueuedDelivery(30, "high", "email")]
        tasks.enqueue_together(queued)
        sent = []
        for queue in ("notif.deliver.normal", "notif.deliver.high"):
            key = f"{broker.namespace}:{queue}"
            msgs = broker.client.hgetall(key + ".msgs")
            sent += [dramatiq.Message.decode(msgs[i]) for i in broker.client.lrange(key, 0, -1)]
        assert sorted((m.actor_name, m.args) for m in sent) == sorted([
            ("deliver_many_normal", ([1, 2, 3],)), ("deliver_many_normal", ([4, 5, 6],)), ("deliver_normal", (7,)),
            ("deliver_normal", (20,)), ("deliver_high", (30,))])
    finally:
        broker.close()


def test_claim_and_load_in_one_statement_on_sqlite(settings, tmp_path):
    """`notif dev`'s database: RETURNING names only the updated table there; the notifications come by key."""
    init_database(f"sqlite:///{tmp_path / 'notif.db'}")
    try:
        migrate()
        rt = Runtime.start(replace(settings, database_url=f"sqlite:///{tmp_path / 'notif.db'}"))
        with database.connection_context():
            rt.channels["batching"] = channel = Batching(errors={"m1": TransientError("later")})
            rows = deliveries("batching", 3, data={"url": "/x"})
            assert [r.delivery_id for r in deliver_many(rt, [d.id for d in rows])] == [rows[1].id]
            assert status(rows) == ["sent", "pending", "sent"] and channel.calls == [["m0", "m1", "m2"]]
            single = deliveries("batching", 1)[0]
            assert deliver(rt, single.id) == "sent" and deliver(rt, single.id) == "sent"
            assert channel.sent == ["m0", "m2", "m0"]
        rt.redis.close()
    finally:
        database.close()


@pytest.mark.parametrize("batch", ["0", "101", "x"])
def test_the_batch_size_is_bounded(env, batch):
    from notif.config import load_settings
    with pytest.raises(Exception, match="NOTIF_DELIVER_BATCH|invalid literal"):
        load_settings({**env, "NOTIF_DELIVER_BATCH": batch}, use_state=False)
