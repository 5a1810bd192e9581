"""Topics: the service API, messages naming a topic, and fan-out in chunks (in process, real
PostgreSQL, Redis and SQS over HTTP; SQLite for the basics)."""
import json
import logging
from dataclasses import replace

import pytest

from helpers import BAD_TOKENS, auth, pg_query, queue_counts, token
from notif import fanout
from notif.db import database, init_database
from notif.errors import InvalidMessage
from notif.ingest import ingest_batch
from notif.messages import parse_message
from notif.migrations import migrate
from notif.models import Delivery, Fanout, Notification, Topic, TopicMember
from notif.monitoring import metrics
from notif.runtime import Runtime
from notif.topics import change
from test_ingest import Enqueued, put, receive

SERVICE = {"Authorization": f"Bearer {token('host-app', service=True)}"}


@pytest.fixture
def client(asgi, pg):
    return asgi["client"]


# -- the message -----------------------------------------------------------------------
@pytest.mark.parametrize("body, field, words", [
    ({"topic": "t", "recipients": ["u1"], "title": "a", "message": "b"}, "topic", "not both"),
    ({"topic": "t", "user_id": "u1", "title": "a", "message": "b"}, "topic", "not both"),
    ({"topic": "t", "batch_key": "k", "title": "a", "message": "b"}, "batch_key", "not digested"),
    ({"topic": "-starts-with-a-dash", "title": "a", "message": "b"}, "topic", "pattern"),
    ({"topic": "x" * 129, "title": "a", "message": "b"}, "topic", "pattern"),
    ({"topic": "has space", "title": "a", "message": "b"}, "topic", "pattern"),
])
def test_a_topic_message_is_refused_naming_the_field(body, field, words):
    with pytest.raises(InvalidMessage) as caught:
        parse_message(json.dumps(body))
    assert caught.value.field == field and words in str(caught.value)


def test_a_topic_message_parses():
    msg = parse_message(json.dumps({"topic": "branch-north:managers", "title": "a", "message": "b"}))
    assert msg.topic == "branch-north:managers" and msg.recipient_list() == []


# -- the service API -------------------------------------------------------------------
def test_the_topic_api(client):
    put_ = lambda topic, body, headers=SERVICE: client.put(f"/api/topics/{topic}/subscribers", json=body,  # noqa: E731
                                                         headers=headers)
    assert put_("branch-north", {"add": ["u1", "u2", "u3", "u2"]}).json() == {"topic": "branch-north", "subscribers": 3}
    assert put_("branch-north", {"add": ["u3", "u4"], "remove": ["u1", "nobody"]}).json()["subscribers"] == 3
    assert put_("everyone", {"add": [f"u{i:03d}" for i in range(250)]}).json()["subscribers"] == 250

    listed = client.get("/api/topics", headers=SERVICE).json()
    assert [(t["topic"], t["subscribers"]) for t in listed["items"]] == [("branch-north", 3), ("everyone", 250)]
    assert listed["next_cursor"] is None
    first = client.get("/api/topics?limit=1", headers=SERVICE).json()
    assert [t["topic"] for t in first["items"]] == ["branch-north"]
    assert [t["topic"] for t in client.get(f"/api/topics?limit=1&cursor={first['next_cursor']}",
                                           headers=SERVICE).json()["items"]] == ["everyone"]

    seen, cursor = [], None
    while True:  # every member once, by user id
        page = client.get("/api/topics/everyone/subscribers", params={"limit": 100, **({"cursor": cursor} if cursor else {})},
                          headers=SERVICE).json()
        seen += [m["user_id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"u{i:03d}" for i in range(250)]
    assert [m["user_id"] for m in client.get("/api/topics/branch-north/subscribers", headers=SERVICE).json()["items"]] \
        == ["u2", "u3", "u4"]

    assert client.delete("/api/topics/everyone", headers=SERVICE).json() == \
        {"topic": "everyone", "deleted": True, "subscribers": 250}
    assert TopicMember.select().count() == 3 and Topic.select().count() == 1
    for response in (client.delete("/api/topics/everyone", headers=SERVICE),
                     client.get("/api/topics/everyone/subscribers", headers=SERVICE)):
        assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_the_topic_api_needs_a_service_token(client):
    routes = [("PUT", "/api/topics/t/subscribers", {"add": ["u1"]}), ("GET", "/api/topics/t/subscribers", None),
              ("GET", "/api/topics", None), ("DELETE", "/api/topics/t", None)]
    for method, path, body in routes:
        refused = client.request(method, path, json=body, headers=auth("u1"))  # a user's token
        assert refused.status_code == 401 and "needs a service token" in refused.json()["reason"], (method, path)
        for name, bad in BAD_TOKENS().items():
            headers = {"Authorization": f"Bearer {bad}"} if bad else {}
            assert client.request(method, path, json=body, headers=headers).status_code == 401, (name, method, path)
    assert Topic.select().count() == 0


def test_the_topic_api_bounds_its_input(client):
    def status(path, body=None, method="PUT"):
        return client.request(method, path, json=body, headers=SERVICE).status_code

    ok = "/api/topics/t/subscribers"
    assert status(ok, {"add": [f"user-{i}" for i in range(10_000)]}) == 200  # 10,000 ids: over NOTIF_MAX_BODY's 64 KiB
    assert Topic.get(Topic.name == "t").subscribers == 10_000
    assert status(ok, {"add": [f"x{i}" for i in range(10_001)]}) == 422
    assert status(ok, {"add": [f"a{i}" for i in range(6000)], "remove": [f"r{i}" for i in range(5000)]}) == 422
    assert status(ok, {"add": ["u" * 256]}) == 422
    assert status(ok, {"add": [""]}) == 422
    assert status(ok, {"add": ["u1"], "remove": ["u1"]}) == 422
    assert status(ok, {"add": ["u1"], "extra": 1}) == 422
    assert status(ok, {"add": "u1"}) == 422
    for bad in ("-dash", "x" * 129, "a%20b", "a%2Fb"):
        assert status(f"/api/topics/{bad}/subscribers", {"add": ["u1"]}) in (404, 422), bad
    assert status("/api/topics?limit=1001", method="GET") == 422
    assert status("/api/topics?limit=0", method="GET") == 422
    assert status("/api/topics?cursor=!!!", method="GET") == 400
    assert status("/api/topics/t/subscribers?cursor=" + "a" * 1001, method="GET") == 422
    assert Topic.get(Topic.name == "t").subscribers == 10_000


# -- ingest and fan-out ----------------------------------------------------------------
def members(topic, n, prefix="m"):
    return change(topic, [f"{prefix}{i:05d}" for i in range(n)], [])


def chunked(runtime, size):
    return replace(runtime, settings=replace(runtime.settings, fanout_chunk=size))


def run_fanout(rt, fanout_id, steps=None):
    """Step a fan-out to its end (or ``steps`` times) as the actor chain would; returns the chunks."""
    done = []
    while steps is None or len(done) < steps:
        chunk = fanout.step(rt, fanout_id)
        done.append(chunk)
        if not chunk.more:
            break
    return done


def test_a_topic_message_fans_out_in_chunks_each_its_own_transaction(runtime, sqs, queues, pg):
    members("branch-north", 25)
    rt = chunked(runtime, 10)
    put(sqs, queues["low"], {"id": "announce-1", "topic": "branch-north", "title": "Hi", "message": "all",
                             "channels": ["in_app", "push"]})
    started = []
    outcome = ingest_batch(rt, receive(sqs, queues["low"], "low", expect=1), Enqueued(), start_fanouts=started.extend)
    assert outcome.new_messages == 1 and outcome.stored == 0  # nothing for the members yet: recorded, then started
    assert queue_counts(sqs, queues["low"]) == (0, 0)  # acknowledged
    [(fanout_id, priority)] = started
    assert priority == "low" and Notification.select().count() == 0

    chunks = run_fanout(rt, fanout_id)
    assert [c.stored for c in chunks] == [10, 10, 5] and [c.more for c in chunks] == [True, True, False]
    assert pg_query(pg, "SELECT COUNT(DISTINCT xmin::text) FROM notif_notification") == [(3,)]  # three transactions
    rows = list(Notification.select().order_by(Notification.user_id))
    assert [r.user_id for r in rows] == [f"m{i:05d}" for i in range(25)]
    assert {(r.key, r.title, r.message, r.priority) for r in rows} == {("announce-1", "Hi", "all", "low")}
    assert Delivery.select().count() == 50  # one per (member, channel): the outbox
    assert sorted(q.channel for c in chunks for q in c.queued) == ["in_app"] * 25 + ["push"] * 25  # owed, to hand off
    assert {q.priority for c in chunks for q in c.queued} == {"low"}
    assert Fanout.get_by_id(fanout_id).outcome == "done" and Fanout.get_by_id(fanout_id).stored == 25


def test_a_fanout_interrupted_finishes_the_rest_once_and_a_redelivery_stores_nothing(runtime, sqs, queues, pg):
    members("everyone", 30)
    rt = chunked(runtime, 7)
    body = {"id": "announce-2", "topic": "everyone", "title": "Hi", "message": "all"}
    put(sqs, queues["normal"], body)
    started = []
    ingest_batch(rt, receive(sqs, queues["normal"], expect=1), Enqueued(), start_fanouts=started.extend)
    [(fanout_id, _)] = started
    run_fanout(rt, fanout_id, steps=2)  # then the worker dies
    assert Notification.select().count() == 14
    members("everyone", 5, prefix="late")  # subscribed after the message was ingested: not its audience

    put(sqs, queues["normal"], body)  # the producer sends it again (or SQS redelivers it)
    again = []
    outcome = ingest_batch(rt, receive(sqs, queues["normal"], expect=1), Enqueued(), start_fanouts=again.extend)
    assert outcome.duplicate_messages == 1 and again == [] and Fanout.select().count() == 1

    run_fanout(rt, fanout_id)  # resumed (the redelivered actor message, or the scheduler's sweep)
    run_fanout(rt, fanout_id)  # a second copy of the actor message: nothing left to do
    Fanout.update(cursor=0, finished_at=None, outcome="running").execute()  # even a chunk replayed from the start ...
    assert sum(c.stored for c in run_fanout(rt, fanout_id)) == 0  # ... stores nothing twice
    counts = pg_query(pg, "SELECT user_id, COUNT(*) FROM notif_notification GROUP BY user_id HAVING COUNT(*) > 1")
    assert counts == [] and Notification.select().count() == 30
    assert Notification.select().where(Notification.user_id.startswith("late")).count() == 0
    assert Delivery.select().count() == 30


def test_the_scheduler_resumes_a_stalled_fanout(runtime, sqs, queues, pg):
    members("t", 3)
    put(sqs, queues["normal"], {"topic": "t", "title": "a", "message": "b"})
    ingest_batch(runtime, receive(sqs, queues["normal"], expect=1), Enqueued())  # its actor message is lost
    assert fanout.resume_stalled(60) == []  # not stalled yet
    [(fanout_id, priority)] = fanout.resume_stalled(0)
    assert priority == "normal" and run_fanout(runtime, fanout_id)[-1].outcome == "done"
    assert fanout.resume_stalled(0) == []  # finished


@pytest.mark.parametrize("topic, outcome", [("nobody-here", "unknown_topic"), ("empty", "empty_topic")])
def test_a_message_for_an_unknown_or_empty_topic_is_acknowledged_and_logged(runtime, sqs, queues, pg, caplog,
                                                                              topic, outcome):
    change("empty", ["u1"], ["u1"])
    counted = metrics.TOPIC_MESSAGES.labels(outcome)._value.get()
    put(sqs, queues["normal"], {"id": "for-no-one", "topic": topic, "title": "a", "message": "b"})
    started = []
    with caplog.at_level(logging.WARNING, logger="notif.ingest"):
        result = ingest_batch(runtime, receive(sqs, queues["normal"], expect=1), Enqueued(), start_fanouts=started.extend)
    assert result.dead_lettered == [] and result.retry == [] and started == []
    assert queue_counts(sqs, queues["normal"]) == (0, 0) and queue_counts(sqs, queues["dlq"]) == (0, 0)
    record = next(r for r in caplog.records if r.getMessage().startswith("topic message for no one"))
    assert record.topic == topic and record.outcome == outcome and record.key == "for-no-one"
    assert metrics.TOPIC_MESSAGES.labels(outcome)._value.get() == counted + 1
    assert Fanout.get(Fanout.key == "for-no-one").outcome == outcome and Notification.select().count() == 0


def test_a_cancel_stops_a_fanout(runtime, sqs, queues, pg):
    members("t", 20)
    rt = chunked(runtime, 5)
    put(sqs, queues["normal"], {"id": "oops", "topic": "t", "title": "a", "message": "b"})
    started = []
    ingest_batch(rt, receive(sqs, queues["normal"], expect=1), Enqueued(), start_fanouts=started.extend)
    run_fanout(rt, started[0][0], steps=1)
    put(sqs, queues["normal"], {"cancel": "oops"})
    ingest_batch(rt, receive(sqs, queues["normal"], expect=1), Enqueued())
    assert run_fanout(rt, started[0][0])[-1].outcome == "cancelled" and Notification.select().count() == 5


def test_an_update_mid_fanout_reaches_every_member_and_a_retract_stops_it(runtime, sqs, queues, pg):
    members("t", 20)
    rt = chunked(runtime, 5)
    for key in ("news", "gaffe"):
        put(sqs, queues["normal"], {"id": key, "topic": "t", "title": "old", "message": "b", "ttl": 3600})
    started = []
    ingest_batch(rt, receive(sqs, queues["normal"], expect=2), Enqueued(), start_fanouts=started.extend)
    by_key = {Fanout.get_by_id(fid).key: fid for fid, _ in started}
    run_fanout(rt, by_key["news"], steps=1)
    run_fanout(rt, by_key["gaffe"], steps=1)
    put(sqs, queues["normal"], {"update": "news", "title": "new"})
    put(sqs, queues["normal"], {"retract": "gaffe"})
    ingest_batch(rt, receive(sqs, queues["normal"], expect=2), Enqueued())
    run_fanout(rt, by_key["news"])
    assert run_fanout(rt, by_key["gaffe"])[-1].outcome == "cancelled"
    news = list(Notification.select().where(Notification.key == "news"))
    assert len(news) == 20 and {n.title for n in news} == {"new"}  # the chunk before the update and those after
    assert all(n.expires_at is not None for n in news)  # the message's expiry reaches every member
    gaffe = Notification.select().where(Notification.key == "gaffe")
    assert gaffe.count() == 5 and all(n.retracted_at is not None for n in gaffe)  # no chunk after the retract


def test_an_update_or_retract_that_overtakes_a_topic_message_is_applied_to_it(runtime, sqs, queues, pg):
    members("t", 8)
    rt = chunked(runtime, 5)
    put(sqs, queues["normal"], {"update": "late", "title": "fixed"})
    put(sqs, queues["normal"], {"retract": "withdrawn"})
    ingest_batch(rt, receive(sqs, queues["normal"], expect=2), Enqueued())
    put(sqs, queues["normal"], {"id": "late", "topic": "t", "title": "typo", "message": "b"})
    put(sqs, queues["normal"], {"id": "withdrawn", "topic": "t", "title": "x", "message": "b"})
    started = []
    outcome = ingest_batch(rt, receive(sqs, queues["normal"], expect=2), Enqueued(), start_fanouts=started.extend)
    assert outcome.dropped == 1 and len(started) == 1
    run_fanout(rt, started[0][0])
    assert {n.title for n in Notification.select()} == {"fixed"} and Notification.select().count() == 8


def test_a_batch_of_long_recipient_lists_is_stored_in_transactions_of_a_chunk(runtime, sqs, queues, pg):
    rt = chunked(runtime, 1000)
    for m in range(3):
        put(sqs, queues["normal"], {"id": f"list-{m}", "recipients": [f"u{i}" for i in range(600)],
                                    "title": "a", "message": "b"})
    outcome = ingest_batch(rt, receive(sqs, queues["normal"], expect=3), Enqueued())
    assert outcome.stored == 1800 and outcome.new_messages == 3
    # 600 + 600 would pass the chunk: each message its own transaction, none split
    assert pg_query(pg, "SELECT COUNT(DISTINCT xmin::text) FROM notif_notification") == [(3,)]
    assert pg_query(pg, "SELECT key, COUNT(DISTINCT xmin::text) FROM notif_notification GROUP BY key ORDER BY key") == \
        [("list-0", 1), ("list-1", 1), ("list-2", 1)]


def test_topics_and_fanout_on_sqlite(settings, tmp_path):
    init_database(f"sqlite:///{tmp_path / 'notif.db'}")
    try:
        migrate()
        rt = Runtime.start(replace(settings, database_url=f"sqlite:///{tmp_path / 'notif.db'}", fanout_chunk=4))
        with database.connection_context():
            assert change("club", ["a", "b", "c", "d", "e", "f", "a"], ["f"]) == 5
            row = {"key": "k", "type": None, "title": "T", "message": "M", "html": None, "actions": [], "data": {"x": 1},
                   "recipient": None, "channel_content": None, "priority": "normal", "correlation_id": "c",
                   "sqs_message_id": None, "sqs_sent_at": None, "created_at": Notification.created_at.default(),
                   "send_at": None, "digest_id": None, "variables": None}
            with database.atomic():
                begun = fanout.begin("club", row, ["in_app"], False, row["created_at"])
            assert [c.stored for c in run_fanout(rt, begun.id)] == [4, 1]
            assert sorted(n.user_id for n in Notification.select()) == ["a", "b", "c", "d", "e"]
            assert Notification.get(Notification.user_id == "a").data == {"x": 1} and Delivery.select().count() == 5
            assert run_fanout(rt, begun.id)[0].stored == 0
        rt.redis.close()
    finally:
        database.close()
