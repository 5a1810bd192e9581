"""Reversible migrations: up → down → up with data in the tables, on PostgreSQL and SQLite."""
import datetime as dt
import subprocess
import sys
import uuid

import pytest

from helpers import POSTGRES_ADMIN, pg_admin
from notif.db import database, init_database
from notif.migrations import MIGRATIONS, current_version, latest_version, migrate
from notif.models import Delivery, DeliveryAttempt, Digest, Notification, Preference, PushSubscription, utcnow
from notif.topics import change


@pytest.fixture(params=["postgres", "sqlite"])
def fresh_db(request, tmp_path):
    """An empty database of its own: these tests take the schema up and down."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'notif.db'}"
        init_database(url)
        yield url
        database.close()
        return
    name = f"notif_mig_{uuid.uuid4().hex[:8]}"
    admin = pg_admin()
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    url = f"{POSTGRES_ADMIN.rsplit('/', 1)[0]}/{name}"
    init_database(url)
    yield url
    database.close()
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def columns(table):
    return {c.name for c in database.get_columns(table)}


def seed():
    """Something of every kind, including work that is owed later."""
    later = utcnow() + dt.timedelta(hours=1)
    plain = Notification.create(user_id="u1", key="plain", title="t", message="m", priority="normal", correlation_id="c")
    Delivery.create(notification=plain, channel="in_app", status="sent")
    scheduled = Notification.create(user_id="u1", key="later", title="t", message="m", priority="normal",
                                    correlation_id="c", send_at=later)
    Delivery.create(notification=scheduled, channel="push", status="scheduled", next_attempt_at=later)
    window = Digest.create(user_id="u2", batch_key="reports", open_key=Digest.bucket("u2", "reports"), priority="low",
                           channels=["in_app", "email"], closes_at=later)
    Notification.create(user_id="u2", key="held", title="t", message="m", priority="low", correlation_id="c",
                        digest_id=window.id, variables={"x": 1})
    Preference.create(user_id="u1", settings={"channels": {"email": False}})
    PushSubscription.create(user_id="u1", endpoint="https://push.example/1", p256dh="k", auth="a")
    change("club", ["u1", "u2"], [])


def test_topics_go_down_and_up_again(fresh_db):
    """0008: topics, their members and fan-outs."""
    migrate()
    change("club", ["u1", "u2", "u3"], ["u3"])
    migrate(to=7)
    assert current_version() == 7 and not {"notif_topic", "notif_topic_member", "notif_fanout"} & set(database.get_tables())
    assert database.table_exists("notif_notification")
    migrate()
    assert {"notif_topic", "notif_topic_member", "notif_fanout"} <= set(database.get_tables())
    assert change("club", ["u1"], []) == 1  # a topic again, from nothing


def test_up_down_up_keeps_the_data_and_loses_no_owed_work(fresh_db):
    versions = [v for v, *_ in MIGRATIONS]
    assert [s.split()[0] for s in migrate()] == [f"{v:04d}" for v in versions]
    seed()
    steps = migrate(to=3)
    assert [s[:9] for s in steps] == [f"{v:04d} down" for v in reversed(versions) if v > 3] and current_version() == 3
    assert not database.table_exists("notif_topic") and not database.table_exists("notif_fanout")
    assert {"send_at", "digest_id", "variables"}.isdisjoint(columns("notif_notification"))
    assert not database.table_exists("notif_digest") and not database.table_exists("notif_preference")
    # owed work was not lost: the scheduled send and the digest item go out now, on their own
    rows = database.execute_sql("SELECT n.key, d.channel, d.status FROM notif_delivery d "
                                "JOIN notif_notification n ON n.id = d.notification_id ORDER BY n.key, d.channel").fetchall()
    assert rows == [("held", "email", "pending"), ("held", "in_app", "pending"), ("later", "push", "pending"),
                    ("plain", "in_app", "sent")]
    assert database.execute_sql("SELECT COUNT(*) FROM notif_push_subscription").fetchone()[0] == 1  # 3 kept it

    migrate()  # and up again, over the data
    assert current_version() == latest_version()
    assert Notification.select().count() == 3 and Delivery.select().count() == 4
    assert Notification.get(Notification.key == "held").digest_id is None  # an ordinary notification now
    Preference.create(user_id="u9", settings={})  # the re-created tables work
    assert migrate() == []

    migrate(to=0)
    assert not database.table_exists("notif_notification") and current_version() == 0
    migrate()
    assert current_version() == latest_version() and Notification.select().count() == 0


def test_a_rate_limit_deferral_becomes_a_state_of_its_own_and_back(fresh_db):
    """0007: 'deferred' was a 'scheduled' row whose last_error said "rate limited"; now it is a state."""
    migrate(to=6)
    later = utcnow() + dt.timedelta(minutes=5)
    for key, error in (("deferred", "rate limited (push 10/60s per user): deferred until …"), ("scheduled", None)):
        database.execute_sql(
            f"INSERT INTO notif_notification (user_id, key, title, message, priority, correlation_id, created_at) "
            f"VALUES ('u1', {database.param}, 't', 'm', 'normal', 'c', {database.param})", (key, utcnow()))
        (nid,) = database.execute_sql(f"SELECT id FROM notif_notification WHERE key = {database.param}", (key,)).fetchone()
        database.execute_sql(
            f"INSERT INTO notif_delivery (notification_id, channel, status, attempts, last_error, next_attempt_at, "
            f"created_at, updated_at) VALUES ({nid}, 'push', 'scheduled', 0, {database.param}, {database.param}, "
            f"{database.param}, {database.param})", (error, later, utcnow(), utcnow()))
    migrate()
    by_key = {d.notification.key: d for d in Delivery.select(Delivery, Notification).join(Notification)}
    assert by_key["deferred"].status == "deferred" and by_key["deferred"].deferred_until == later
    assert by_key["scheduled"].status == "scheduled" and by_key["scheduled"].deferred_until is None
    migrate(to=6)
    assert "deferred_until" not in columns("notif_delivery")
    statuses = database.execute_sql("SELECT status, last_error FROM notif_delivery ORDER BY id").fetchall()
    assert [s for s, _ in statuses] == ["scheduled", "scheduled"] and statuses[0][1].startswith("rate limited")


@pytest.mark.processes  # runs the notif command: not in the fast tier
@pytest.mark.processes  # runs `notif migrate` as a process, several times
def test_the_cli_says_what_a_step_down_undoes_and_wants_yes(fresh_db, tmp_path):
    env = {"DATABASE_URL": fresh_db, "NOTIF_STATE_DIR": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"}
    run = lambda *args: subprocess.run([sys.executable, "-m", "notif.cli", "migrate", *args], env=env,  # noqa: E731
                                       capture_output=True, text=True, timeout=60)
    assert run().returncode == 0
    refused = run("--to", "4")
    assert refused.returncode == 2 and "loses users' preferences" in refused.stderr and "--yes" in refused.stderr
    done = run("--to", "4", "--yes")
    assert done.returncode == 0 and done.stdout.strip().endswith("schema at version 4")
    status = run("--status").stdout.splitlines()
    assert status[3].startswith("applied  0004") and status[4].startswith("pending  0005")


def test_0009_down_deletes_what_was_retracted_or_expired_and_keeps_the_rest(fresh_db):
    """0009 (update, retract, expiry): going back cannot hide a retracted or expired notification any
    more, so it is deleted; a withdrawn delivery becomes 'skipped'; the indexes come and go."""
    migrate()
    now = utcnow()
    keep = Notification.create(user_id="u1", key="keep", title="t", message="m", priority="normal", correlation_id="c",
                               expires_at=now + dt.timedelta(hours=1), updated_at=now)
    gone = Notification.create(user_id="u1", key="gone", title="t", message="m", priority="normal", correlation_id="c",
                               retracted_at=now)
    Delivery.create(notification=gone, channel="push", status="withdrawn", last_error="retracted by its producer")
    Notification.create(user_id="u1", key="old", title="t", message="m", priority="normal", correlation_id="c",
                        expires_at=now - dt.timedelta(seconds=1))
    Delivery.create(notification=keep, channel="push", status="withdrawn", last_error="expired")
    indexes = {i.name for i in database.get_indexes("notif_notification")}
    assert {"notif_notification_unread", "notif_notification_created_at"} <= indexes
    assert database.table_exists("notif_amendment")
    migrate(to=7)
    assert {"expires_at", "updated_at", "retracted_at"}.isdisjoint(columns("notif_notification"))
    assert not database.table_exists("notif_amendment")
    assert [k for (k,) in database.execute_sql("SELECT key FROM notif_notification").fetchall()] == ["keep"]
    assert database.execute_sql("SELECT status FROM notif_delivery").fetchall() == [("skipped",)]
    migrate()
    assert "notif_notification_unread" in {i.name for i in database.get_indexes("notif_notification")}


def test_0010_inbox_states_come_and_go_and_an_archived_notification_returns_to_the_inbox(fresh_db):
    """0010 (seen_at, archived_at, the unseen index): a row read before it counts as seen; going down
    keeps every notification, an archived one back in the inbox, read."""
    migrate(to=9)
    database.execute_sql("INSERT INTO notif_notification (user_id, key, title, message, priority, correlation_id, "
                         f"created_at, read_at) VALUES ('u1', 'old', 't', 'm', 'normal', 'c', {database.param}, "
                         f"{database.param})", (utcnow(), utcnow()))
    migrate()
    assert {"seen_at", "archived_at"} <= columns("notif_notification")
    assert "notif_notification_unseen" in {i.name for i in database.get_indexes("notif_notification")}
    old = Notification.get(Notification.key == "old")
    assert old.seen_at is None and old.to_dict()["seen"] is True and old.to_dict()["seen_at"] == old.to_dict()["read_at"]
    now = utcnow()
    Notification.create(user_id="u1", key="archived", title="t", message="m", priority="normal", correlation_id="c",
                        read_at=now, seen_at=now, archived_at=now)
    Notification.create(user_id="u1", key="new", title="t", message="m", priority="normal", correlation_id="c")
    new = Notification.get(Notification.key == "new").to_dict()
    assert (new["seen"], new["archived"], new["seen_at"], new["archived_at"]) == (False, False, None, None)

    migrate(to=9)
    assert {"seen_at", "archived_at"}.isdisjoint(columns("notif_notification"))
    assert "notif_notification_unseen" not in {i.name for i in database.get_indexes("notif_notification")}
    assert "notif_notification_unread" in {i.name for i in database.get_indexes("notif_notification")}
    rows = database.execute_sql("SELECT key, read_at IS NOT NULL FROM notif_notification ORDER BY key").fetchall()
    assert [(k, bool(r)) for k, r in rows] == [("archived", True), ("new", False), ("old", True)]
    migrate()
    assert Notification.get(Notification.key == "archived").archived_at is None  # in the inbox again, read
    assert "notif_notification_unseen" in {i.name for i in database.get_indexes("notif_notification")}


def test_0011_keeps_an_attempt_log_and_a_skipped_rows_code_and_goes_back(fresh_db):
    """0011 (the trace): the attempt log, reason codes (rows skipped before it get theirs from their
    text), and notifications by key; going back drops them and keeps every delivery's text."""
    migrate(to=10)
    n = Notification.create(user_id="u1", key="k", title="t", message="m", priority="normal", correlation_id="c")
    texts = {"in_app": None, "push": "the user has no push subscription", "email": "preference: the user opted out",
             "sms": "feature sms is off (NOTIF_FEATURES)", "fax": "channel 'fax' is not installed or is disabled",
             "pigeon": "the pigeon flew away"}
    for channel, text in texts.items():
        database.execute_sql(f"INSERT INTO notif_delivery (notification_id, channel, status, attempts, last_error, "
                             f"created_at, updated_at) VALUES ({n.id}, {database.param}, {database.param}, 0, "
                             f"{database.param}, {database.param}, {database.param})",
                             (channel, "sent" if text is None else "skipped", text, utcnow(), utcnow()))
    migrate()
    assert {d.channel: d.reason_code for d in Delivery.select()} == {
        "in_app": None, "push": "no_push_subscription", "email": "opted_out", "sms": "channel_off",
        "fax": "channel_unavailable", "pigeon": "skipped"}
    assert "notif_notification_key" in {i.name for i in database.get_indexes("notif_notification")}
    DeliveryAttempt.create(delivery=Delivery.get(Delivery.channel == "in_app"), attempt=1, outcome="sent")
    migrate(to=10)
    assert not database.table_exists("notif_delivery_attempt") and "reason_code" not in columns("notif_delivery")
    assert "notif_notification_key" not in {i.name for i in database.get_indexes("notif_notification")}
    rows = dict(database.execute_sql("SELECT channel, last_error FROM notif_delivery").fetchall())
    assert rows == texts
    migrate()
    assert DeliveryAttempt.select().count() == 0 and Delivery.select().count() == len(texts)
