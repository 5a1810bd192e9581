"""Ingest against real PostgreSQL, Redis and SQS over HTTP, in-process (no Dramatiq)."""
import json
from dataclasses import replace

import pytest

from helpers import drain, pg_query, queue_counts, wait_until
from notif.errors import TransientError
from notif.ingest import ingest_batch
from notif.models import Delivery, Notification
from notif.poller.poller import to_received


def put(sqs, url, body):
    return sqs.send_message(QueueUrl=url, MessageBody=body if isinstance(body, str) else json.dumps(body))["MessageId"]


def receive(sqs, url, priority="normal", expect=None, visibility=30):
    """Receive everything on the queue as the poller would."""
    out = []
    while True:
        response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=visibility,
                                       MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
                                       MessageAttributeNames=["All"])
        batch = response.get("Messages", [])
        if not batch:
            break
        out.extend(to_received(m, priority) for m in batch)
    if expect is not None:
        assert len(out) == expect
    return out


class Enqueued(list):
    """An ``Enqueue`` that keeps (delivery id, priority) of what it was handed."""

    def __call__(self, queued):
        self.extend((q.delivery_id, q.priority) for q in queued)


def literal(user, key=None, **extra):
    body = {"user_id": user, "title": "Hello", "message": f"for {user}", **extra}
    if key:
        body["id"] = key
    return body


def test_a_batch_of_ten_is_one_transaction(runtime, sqs, queues, pg):
    for i in range(10):
        put(sqs, queues["normal"], literal(f"u{i}", f"k{i}"))
    enqueued = Enqueued()
    outcome = ingest_batch(runtime, receive(sqs, queues["normal"], expect=10), enqueued)
    assert outcome.stored == 10
    # every row written by the same PostgreSQL transaction
    assert pg_query(pg, "SELECT COUNT(DISTINCT xmin::text) FROM notif_notification") == [(1,)]
    assert pg_query(pg, "SELECT COUNT(DISTINCT xmin::text) FROM notif_delivery") == [(1,)]
    deliveries = list(Delivery.select())
    assert len(deliveries) == 10 and {d.status for d in deliveries} == {"pending"}
    assert sorted(enqueued) == sorted((d.id, "normal") for d in deliveries)
    assert queue_counts(sqs, queues["normal"]) == (0, 0)


def test_stored_notification_keeps_what_the_message_said(runtime, sqs, queues):
    put(sqs, queues["high"], {"id": "report-42", "type": "REPORT_SUBMITTED",
                              "recipients": ["u1", {"user_id": "u2", "email": "b@example.com"}],
                              "variables": {"submitterName": "Ana", "branchName": "North", "reportId": 42},
                              "data": {"reportId": 42}})
    ingest_batch(runtime, receive(sqs, queues["high"], "high", expect=1), Enqueued())
    rows = {n.user_id: n for n in Notification.select()}
    assert set(rows) == {"u1", "u2"}
    n = rows["u2"]
    assert (n.key, n.type, n.priority) == ("report-42", "REPORT_SUBMITTED", "high")
    assert n.message == "Ana has submitted a new report for North"
    assert n.actions[1]["api_endpoint"] == "/api/reports/42/approve"
    assert n.recipient == {"email": "b@example.com"} and n.data == {"reportId": 42}
    assert n.sqs_sent_at is not None and len(n.correlation_id) == 32
    assert n.channel_content["push"] == {"title": "Report from North", "body": "Ana submitted report #42"}
    # the template routes to in_app and push: one delivery row each
    statuses = {d.channel: (d.status, d.last_error) for d in Delivery.select().where(Delivery.notification == n)}
    assert statuses == {"in_app": ("pending", None), "push": ("pending", None)}


def test_a_channel_that_is_not_installed_is_recorded_as_skipped(runtime, sqs, queues):
    put(sqs, queues["normal"], literal("u1", "k1", channels=["in_app", "carrier_pigeon"]))
    enqueued = Enqueued()
    ingest_batch(runtime, receive(sqs, queues["normal"], expect=1), enqueued)
    rows = {d.channel: d for d in Delivery.select()}
    assert rows["carrier_pigeon"].status == "skipped" and "not installed" in rows["carrier_pigeon"].last_error
    assert sorted(channel for channel, d in rows.items() if (d.id, "normal") in enqueued) == ["in_app"]


def test_duplicates_store_nothing_new_and_are_deleted(runtime, sqs, queues):
    put(sqs, queues["normal"], literal("u1", "same"))
    put(sqs, queues["normal"], literal("u1", "same"))  # same key in the same batch
    first = ingest_batch(runtime, receive(sqs, queues["normal"], expect=2), Enqueued())
    put(sqs, queues["normal"], literal("u1", "same"))  # and again later
    enqueued = Enqueued()
    second = ingest_batch(runtime, receive(sqs, queues["normal"], expect=1), enqueued)
    assert (first.stored, first.duplicates, second.stored, second.duplicates) == (1, 1, 0, 1)
    assert Notification.select().count() == 1 and Delivery.select().count() == 1
    assert enqueued == []
    assert queue_counts(sqs, queues["normal"]) == (0, 0)


def test_without_an_id_the_sqs_message_id_is_the_key(runtime, sqs, queues):
    message_id = put(sqs, queues["low"], literal("u1"))
    ingest_batch(runtime, receive(sqs, queues["low"], "low", expect=1), Enqueued())
    assert Notification.get().key == message_id


BAD = [
    ("{oops", "invalid_message", "body", "not valid JSON"),
    (json.dumps({"title": "t", "message": "m"}), "invalid_message", None, "user_id"),
    (json.dumps({"user_id": "u", "type": "NO_SUCH_TYPE"}), "template_error", "type", "unknown template"),
    (json.dumps({"user_id": "u", "type": "REPORT_SUBMITTED", "variables": {"submitterName": "Ana"}}),
     "template_error", "variables", "branchName"),
]


def test_bad_messages_go_to_the_dlq_with_their_reason_and_do_not_block_the_rest(runtime, sqs, queues):
    for body, *_ in BAD:
        put(sqs, queues["normal"], body)
    put(sqs, queues["normal"], literal("good", "g1"))
    outcome = ingest_batch(runtime, receive(sqs, queues["normal"], expect=5), Enqueued())
    assert outcome.stored == 1 and len(outcome.dead_lettered) == 4
    assert Notification.get().user_id == "good"
    assert queue_counts(sqs, queues["normal"]) == (0, 0)
    letters = {m["Body"]: m["MessageAttributes"] for m in drain(sqs, queues["dlq"])}
    assert len(letters) == 4
    for body, kind, field, words in BAD:
        attributes = letters[body]  # the original body, unchanged
        assert attributes["notif_error"]["StringValue"] == kind
        assert words in attributes["notif_reason"]["StringValue"]
        assert attributes.get("notif_field", {}).get("StringValue") == field
        assert attributes["notif_priority"]["StringValue"] == "normal"


UNSTORABLE = [  # JSON escapes SQS carries happily, that PostgreSQL (NUL) and UTF-8 (a lone surrogate) cannot hold
    ('{"id": "nul", "user_id": "u1", "title": "bad\\u0000title", "message": "m"}', "title", "a NUL character"),
    ('{"id": "sur", "user_id": "u1", "type": "REPORT_SUBMITTED", "variables": '
     '{"submitterName": "\\ud800", "branchName": "N", "reportId": 1}}', "variables.submitterName", "a lone surrogate"),
]


def test_strings_the_store_cannot_hold_are_dead_lettered_at_once_and_the_rest_is_stored(runtime, sqs, queues, pg):
    for body, *_ in UNSTORABLE:
        put(sqs, queues["normal"], body)
    for i in range(3):
        put(sqs, queues["normal"], literal(f"good{i}", f"g{i}"))
    outcome = ingest_batch(runtime, receive(sqs, queues["normal"], expect=5), Enqueued())  # no exception: no retry
    assert outcome.stored == 3 and outcome.retry == []
    assert sorted(n.user_id for n in Notification.select()) == ["good0", "good1", "good2"]
    assert queue_counts(sqs, queues["normal"]) == (0, 0)  # deleted from the input queue, not left to come back
    letters = {m["Body"]: m["MessageAttributes"] for m in drain(sqs, queues["dlq"])}
    assert len(letters) == 2
    for body, field, words in UNSTORABLE:
        attributes = letters[body]  # the original body, unchanged
        assert attributes["notif_error"]["StringValue"] == "invalid_message"
        assert attributes["notif_field"]["StringValue"] == field
        reason = attributes["notif_reason"]["StringValue"]
        assert reason.startswith(f"{field}: contains {words}") and "cannot be stored" in reason


@pytest.fixture
def failing_trigger(pg):
    """Make PostgreSQL refuse notifications for some users, the way a real failure looks."""
    pg_query(pg, """
        CREATE OR REPLACE FUNCTION notif_test_fail() RETURNS trigger AS $$
        BEGIN
          IF NEW.user_id = 'explode' THEN RAISE EXCEPTION 'simulated database failure'; END IF;
          IF NEW.user_id = 'baddata' THEN RAISE EXCEPTION 'value out of range' USING ERRCODE = '22003'; END IF;
          RETURN NEW;
        END $$ LANGUAGE plpgsql;
        CREATE TRIGGER notif_test_fail BEFORE INSERT ON notif_notification
          FOR EACH ROW EXECUTE FUNCTION notif_test_fail();""")
    yield
    pg_query(pg, "DROP TRIGGER IF EXISTS notif_test_fail ON notif_notification; DROP FUNCTION IF EXISTS notif_test_fail()")


def test_a_failed_database_write_leaves_the_message_on_sqs(runtime, sqs, queues, failing_trigger):
    put(sqs, queues["normal"], literal("explode", "e1"))
    for i in range(3):
        put(sqs, queues["normal"], literal(f"ok{i}", f"ok{i}"))
    with pytest.raises(TransientError, match="1 of 4"):
        ingest_batch(runtime, receive(sqs, queues["normal"], expect=4), Enqueued())
    # the three good ones are stored and deleted; the failed one is still on SQS (in flight)
    assert sorted(n.user_id for n in Notification.select()) == ["ok0", "ok1", "ok2"]
    assert queue_counts(sqs, queues["normal"]) == (0, 1)
    assert drain(sqs, queues["dlq"]) == []


def test_data_the_database_rejects_is_dead_lettered(runtime, sqs, queues, failing_trigger):
    put(sqs, queues["normal"], literal("baddata", "b1"))
    put(sqs, queues["normal"], literal("fine", "f1"))
    ingest_batch(runtime, receive(sqs, queues["normal"], expect=2), Enqueued())
    assert [n.user_id for n in Notification.select()] == ["fine"]
    (letter,) = drain(sqs, queues["dlq"])
    assert letter["MessageAttributes"]["notif_error"]["StringValue"] == "database_rejected"
    assert "value out of range" in letter["MessageAttributes"]["notif_reason"]["StringValue"]


def test_a_message_received_too_often_is_dead_lettered_with_its_last_error(runtime, sqs, queues, failing_trigger):
    rt = replace(runtime, settings=replace(runtime.settings, max_receives=1))
    put(sqs, queues["normal"], literal("explode", "e1"))
    with pytest.raises(TransientError):
        ingest_batch(rt, receive(sqs, queues["normal"], expect=1, visibility=1), Enqueued())
    # SQS hands it out again once its visibility timeout has passed: the second receive is one too many
    again = wait_until(lambda: receive(sqs, queues["normal"]), 10, message="the message to come back")
    assert again[0].receives == 2
    ingest_batch(rt, again, Enqueued())
    (letter,) = drain(sqs, queues["dlq"])
    reason = letter["MessageAttributes"]["notif_reason"]["StringValue"]
    assert "received 2 times" in reason and "simulated database failure" in reason
    assert letter["MessageAttributes"]["notif_error"]["StringValue"] == "gave_up"
    assert queue_counts(sqs, queues["normal"]) == (0, 0)


def test_sqlite_stores_a_batch_too(tmp_path, redis_prefix, sqs, queues, env):
    from notif.config import load_settings
    from notif.db import database
    from notif.migrations import migrate
    from notif.runtime import Runtime
    settings = load_settings({**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'n.db'}"}, use_state=False)
    rt = Runtime.start(settings)
    migrate()
    try:
        for i in range(3):
            put(sqs, queues["normal"], literal(f"u{i}", "same-key"))
        put(sqs, queues["normal"], literal("u0", "same-key"))
        outcome = ingest_batch(rt, receive(sqs, queues["normal"], expect=4), Enqueued())
        assert (outcome.stored, outcome.duplicates) == (3, 1)
        assert Notification.select().count() == 3 and Delivery.select().count() == 3
    finally:
        database.close()
        rt.redis.close()


def test_an_old_worker_message_is_stored_like_a_new_one(runtime, sqs, queues):
    put(sqs, queues["normal"], {"userId": "u1", "title": "Report", "message": "Ana sent one",
                                "type": "REPORT_SUBMITTED", "data": {"reportId": 42}})
    enqueued = Enqueued()
    outcome = ingest_batch(runtime, receive(sqs, queues["normal"], expect=1), enqueued)
    assert outcome.stored == 1 and len(enqueued) == 1
    n = Notification.get()
    assert (n.user_id, n.title, n.message, n.type, n.data) == ("u1", "Report", "Ana sent one", "REPORT_SUBMITTED",
                                                               {"reportId": 42})


def test_the_worker_delivers_a_batchs_in_app_rows_itself_and_enqueues_the_rest(runtime, sqs, queues):
    from notif.deliver import deliver_batch
    for i in range(3):
        put(sqs, queues["normal"], literal(f"u{i}", f"k{i}", channels=["in_app", "push"]))
    enqueued = Enqueued()
    ingest_batch(runtime, receive(sqs, queues["normal"], expect=3), enqueued, deliver_now=deliver_batch)
    in_app = Delivery.select().where(Delivery.channel == "in_app")
    assert {d.status for d in in_app} == {"sent"}  # no Dramatiq hop for these
    push = Delivery.select().where(Delivery.channel == "push")
    assert sorted(enqueued) == sorted((d.id, "normal") for d in push) and {d.status for d in push} == {"pending"}


HOSTILE_TEMPLATES = {  # TOML literal strings ('…'): no escapes
    "BOMB": """title = 't'\nmessage = '{{ "x" * n }}'\n""",
    "LOOPS": """title = 't'\nmessage = '{% for i in range(n) %}{% for j in range(n) %}x{% endfor %}{% endfor %}'\n""",
    "LINKED": """title = 't'\nmessage = 'm'\nhtml = '<p><a href="{{ link }}">open</a></p>'\n"""
              """[[actions]]\nid = 'go'\nlabel = 'Go'\nurl = '{{ url }}'\n"""
              """[[actions]]\nid = 'call'\nlabel = 'Call'\napi_endpoint = '{{ endpoint }}'\nmethod = 'POST'\n""",
    "NUL_IN_TEMPLATE": 'title = "a\\u0000b"\nmessage = "m"\n',  # a basic string: the escape is a NUL
}
SAFE_LINKS = {"url": "https://app.example.com/r/7", "endpoint": "/api/r/7/approve", "link": "mailto:ops@example.com"}


def hostile(type_, key, **variables):
    return {"id": key, "user_id": "u1", "type": type_, "variables": variables}


@pytest.fixture
def hostile_runtime(runtime, tmp_path):
    from notif.templates import TemplateStore
    for name, text in HOSTILE_TEMPLATES.items():
        (tmp_path / f"{name}.toml").write_text(text)
    runtime.templates = TemplateStore([tmp_path, *runtime.templates.directories])
    return runtime


UNSAFE = [  # (message, error kind, field, the reason's words)
    (hostile("BOMB", "bomb", n=10**9), "template_error", "variables",
     "template BOMB message: `*` repetition would make 1000000000 characters; the limit is 262144"),
    (hostile("LOOPS", "loops-range", n=10**9), "template_error", "variables",
     "template LOOPS message: range() of 1000000000 numbers; at most 10000"),
    (hostile("LOOPS", "loops-nested", n=10_000), "template_error", "variables",
     "template LOOPS message: more than 100000 loop iterations"),
    (hostile("LINKED", "js-url", **{**SAFE_LINKS, "url": "javascript:alert(1)"}), "invalid_message", "actions.0.url",
     "actions.0.url: uses the `javascript:` scheme; links may be https:, http:, mailto: or relative paths "
     "(rendered by template LINKED)"),
    (hostile("LINKED", "data-endpoint", **{**SAFE_LINKS, "endpoint": "data:text/html,<script>x</script>"}),
     "invalid_message", "actions.1.api_endpoint", "actions.1.api_endpoint: uses the `data:` scheme"),
    (hostile("LINKED", "js-html", **{**SAFE_LINKS, "link": "JavaScript:alert(1)"}), "invalid_message", "html",
     "html: <a href>: uses the `javascript:` scheme"),
    (hostile("COMMENT_ADDED", "other-host", authorName="Cy", comment="c", threadUrl="//evil.example/x"),
     "invalid_message", "actions.0.url", "actions.0.url: starts with // (a link to another host)"),
    (literal("u1", "data-url", data={"url": "java\tscript:alert(1)"}), "invalid_message", "data.url",
     "data.url: contains whitespace or a control character"),
    (literal("u1", "data-url-type", data={"url": 42}), "invalid_message", "data.url", "data.url: must be a string"),
    (hostile("NUL_IN_TEMPLATE", "nul-template"), "invalid_message", "title",
     "title: contains a NUL character, which cannot be stored (rendered by template NUL_IN_TEMPLATE)"),
]


def test_unsafe_links_and_template_bombs_are_dead_lettered_naming_the_field(hostile_runtime, sqs, queues):
    for body, *_ in UNSAFE:
        put(sqs, queues["normal"], body)
    good = [hostile("LINKED", "safe-links", **SAFE_LINKS), hostile("BOMB", "small", n=3),
            literal("u1", "data-url-ok", data={"url": "/reports/7", "reportId": 7}),
            literal("u1", "data-not-a-link", data={"link": "javascript:kept-as-data"})]
    for body in good:
        put(sqs, queues["normal"], body)
    outcome = ingest_batch(hostile_runtime, receive(sqs, queues["normal"], expect=len(UNSAFE) + len(good)), Enqueued())
    assert outcome.retry == [] and outcome.stored == len(good)
    assert sorted(n.key for n in Notification.select()) == sorted(body["id"] for body in good)
    linked = Notification.get(Notification.key == "safe-links")
    assert [a.get("url") or a.get("api_endpoint") for a in linked.actions] == [SAFE_LINKS["url"], SAFE_LINKS["endpoint"]]
    assert 'href="mailto:ops@example.com"' in linked.html
    assert queue_counts(sqs, queues["normal"]) == (0, 0)
    letters = {json.loads(m["Body"])["id"]: m["MessageAttributes"] for m in drain(sqs, queues["dlq"])}
    assert len(letters) == len(UNSAFE)
    for body, kind, field, words in UNSAFE:
        attributes = letters[body["id"]]
        assert (attributes["notif_error"]["StringValue"], attributes["notif_field"]["StringValue"]) == (kind, field)
        assert words in attributes["notif_reason"]["StringValue"], body["id"]
