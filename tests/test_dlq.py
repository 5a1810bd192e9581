"""`notif dlq` as an operator runs it: real processes, PostgreSQL, Redis and SQS over HTTP."""
import json
import os
import subprocess
import sys

import pytest

from helpers import drain
from notif.ingest import ingest_batch
from notif.models import Delivery, Notification
from notif.poller.poller import to_received
from notif.redis_keys import deliver_queue, dramatiq_messages_key

pytestmark = pytest.mark.processes  # every test runs the notif command: not in the fast tier

def cli(env, *args):
    result = subprocess.run([sys.executable, "-m", "notif.cli", "dlq", *args], env={**os.environ, **env},
                            capture_output=True, text=True, timeout=60)
    return result


def ingest_all(runtime, sqs, url, priority="normal"):
    batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"]).get("Messages", [])
    return ingest_batch(runtime, [to_received(m, priority) for m in batch], lambda pending: None)


@pytest.fixture
def letters(runtime, sqs, queues):
    """One poison input (unknown template) and one failed delivery."""
    sqs.send_message(QueueUrl=queues["high"], MessageBody=json.dumps({"user_id": "u1", "type": "LATER_TEMPLATE"}))
    ingest_all(runtime, sqs, queues["high"], "high")
    n = Notification.create(user_id="u2", key="k", title="t", message="m", priority="low", correlation_id="cid-9")
    d = Delivery.create(notification=n, channel="in_app", status="failed", attempts=8,
                        last_error="gave up after 8 attempts; last error: HTTP 503")
    return d


def test_list_shows_both_kinds_with_their_reasons(env, letters):
    listing = cli(env, "list")
    assert listing.returncode == 0, listing.stderr
    assert "unknown template 'LATER_TEMPLATE'" in listing.stdout
    assert f"delivery:{letters.id}" in listing.stdout and "HTTP 503" in listing.stdout
    assert listing.stdout.rstrip().endswith("2 dead letters")
    items = json.loads(cli(env, "list", "--json").stdout)
    kinds = {i["kind"]: i for i in items}
    assert kinds["input"]["priority"] == "high" and kinds["input"]["details"]["field"] == "type"
    assert kinds["delivery"]["correlation_id"] == "cid-9" and kinds["delivery"]["details"]["attempts"] == 8
    shown = json.loads(cli(env, "show", kinds["input"]["id"], "--json").stdout)
    assert json.loads(shown["details"]["body"]) == {"user_id": "u1", "type": "LATER_TEMPLATE"}
    assert cli(env, "list", "--json").stdout.count('"id"') == 2  # looking hides nothing


def test_replaying_an_input_after_the_fix_stores_it_once(env, letters, runtime, sqs, queues, tmp_path):
    # the fix: the deployment ships the missing template
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "LATER_TEMPLATE.toml").write_text('title = "Now it exists"\nmessage = "hello"\n')
    runtime.templates.directories.insert(0, tmp_path / "templates")
    input_id = json.loads(cli(env, "list", "--json", "--kind", "input").stdout)[0]["id"]
    replay = cli(env, "replay", input_id)
    assert replay.returncode == 0 and replay.stdout.strip() == "replayed 1 dead letter"
    ingest_all(runtime, sqs, queues["high"], "high")
    assert [n.title for n in Notification.select().where(Notification.user_id == "u1")] == ["Now it exists"]
    assert drain(sqs, queues["dlq"]) == []


def test_replaying_an_input_without_id_twice_stores_it_once(env, runtime, sqs, queues):
    sqs.send_message(QueueUrl=queues["normal"], MessageBody=json.dumps({"user_id": "u3", "title": "t",
                                                                         "message": "m", "chanels": ["x"]}))
    ingest_all(runtime, sqs, queues["normal"])  # dead-lettered: unknown field
    (letter,) = drain(sqs, queues["dlq"])
    for _ in range(2):  # the same dead letter replayed twice (say, by two operators), fixed in between
        body = json.dumps({"user_id": "u3", "title": "t", "message": "m"})
        sqs.send_message(QueueUrl=queues["normal"], MessageBody=body, MessageAttributes={
            "notif_replay_of": {"DataType": "String", "StringValue": letter["MessageAttributes"]
                                ["notif_source_message_id"]["StringValue"]}})
        ingest_all(runtime, sqs, queues["normal"])
    assert Notification.select().where(Notification.user_id == "u3").count() == 1


def test_replaying_a_delivery_puts_it_back_on_its_queue(env, letters, settings, redis_server):
    result = cli(env, "replay", f"delivery:{letters.id}", "--json")
    assert json.loads(result.stdout) == {"replayed": 1, "missing": []}
    row = Delivery.get_by_id(letters.id)
    assert (row.status, row.attempts) == ("pending", 0) and "replayed" in row.last_error
    assert redis_server.hlen(dramatiq_messages_key(settings, deliver_queue("low"))) == 1
    assert cli(env, "replay", f"delivery:{letters.id}").returncode == 1  # no longer a dead letter


def test_purge_needs_yes_and_then_empties(env, letters, sqs, queues):
    refused = cli(env, "purge", "--all")
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert cli(env, "purge", "--all", "--yes").stdout.strip() == "purged 2 dead letters"
    assert cli(env, "list").stdout.strip() == "no dead letters"
    assert Delivery.get_by_id(letters.id).status == "discarded"


def test_unknown_ids_are_named(env, letters):
    result = cli(env, "replay", "delivery:999999")
    assert result.returncode == 1 and "no dead letter delivery:999999" in result.stderr
