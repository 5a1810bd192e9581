"""Versioned, reversible schema migrations: ``notif migrate`` up, ``notif migrate --to N`` down.

Each version has an up and a down step taking the database; the applied versions are kept
in ``notif_schema_version``. Running ``notif migrate`` twice, or from two release
processes at once (PostgreSQL serialises them with an advisory lock), changes nothing the
second time. Every step's schema is frozen here (0001's tables are defined in this file,
not by today's models). A down step never silently loses owed work: deliveries parked for
later are set to go out now, and items of open digest windows are sent on their own.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable

import peewee
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as apply

from .db import database, is_postgres
from .models import (
    Amendment,
    Cancellation,
    DeliveryAttempt,
    Digest,
    Escalation,
    Fanout,
    JSONField,
    Notification,
    Preference,
    PushSubscription,
    Topic,
    TopicMember,
    WebhookEvent,
    utcnow,
)

log = logging.getLogger(__name__)

ADVISORY_LOCK_ID = 7_370_001  # any constant shared by every notif process


class SchemaVersion(peewee.Model):
    version = peewee.IntegerField(primary_key=True)
    name = peewee.CharField(max_length=100)
    applied_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        database = database
        table_name = "notif_schema_version"


class _Frozen(peewee.Model):
    """Tables as migration 0001 made them: later columns come from later steps, so every
    step's schema stays what it was however the models change."""

    class Meta:
        database = database


class _V1Notification(_Frozen):
    id = peewee.BigAutoField()
    user_id = peewee.CharField(max_length=255)
    key = peewee.CharField(max_length=255)
    type = peewee.CharField(max_length=100, null=True)
    title = peewee.TextField()
    message = peewee.TextField()
    html = peewee.TextField(null=True)
    actions = JSONField(null=True)
    data = JSONField(null=True)
    recipient = JSONField(null=True)
    priority = peewee.CharField(max_length=10)
    correlation_id = peewee.CharField(max_length=64)
    sqs_message_id = peewee.CharField(max_length=128, null=True)
    sqs_sent_at = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    read_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "notif_notification"
        indexes = ((("user_id", "key"), True), (("user_id", "id"), False))


class _V1Delivery(_Frozen):
    id = peewee.BigAutoField()
    notification = peewee.ForeignKeyField(_V1Notification, on_delete="CASCADE", column_name="notification_id")
    channel = peewee.CharField(max_length=64)
    status = peewee.CharField(max_length=16, default="pending")
    attempts = peewee.IntegerField(default=0)
    last_error = peewee.TextField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    sent_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "notif_delivery"
        indexes = ((("notification", "channel"), True), (("status", "updated_at"), False))


def _columns(db: peewee.Database, table: str) -> set[str]:
    return {c.name for c in db.get_columns(table)}


def _add(db: peewee.Database, table: str, name: str, field: peewee.Field) -> None:
    if name not in _columns(db, table):  # databases made before 0001 was frozen already have it
        apply(SchemaMigrator.from_database(db).add_column(table, name, field))


def _drop(db: peewee.Database, table: str, *names: str) -> None:
    migrator = SchemaMigrator.from_database(db)
    for name in names:
        if name in _columns(db, table):
            for index in db.get_indexes(table):  # SQLite will not drop an indexed column
                if name in index.columns:
                    apply(migrator.drop_index(table, index.name))
            apply(migrator.drop_column(table, name))


NOTIFICATION, DELIVERY = "notif_notification", "notif_delivery"


def _unpark(db: peewee.Database) -> None:
    """Deliveries parked as 'scheduled' (a send_at, a rate limit) go out now: the schema
    going back cannot hold them any more, and nothing may be lost."""
    db.execute_sql(f"UPDATE {DELIVERY} SET status = 'pending' WHERE status = 'scheduled'")


def _0001_up(db: peewee.Database) -> None:
    db.create_tables([_V1Notification, _V1Delivery], safe=True)


def _0001_down(db: peewee.Database) -> None:
    db.drop_tables([_V1Delivery, _V1Notification], safe=True)


def _0002_up(db: peewee.Database) -> None:
    _add(db, DELIVERY, "next_attempt_at", peewee.DateTimeField(null=True))


def _0002_down(db: peewee.Database) -> None:
    _unpark(db)
    _drop(db, DELIVERY, "next_attempt_at")


def _0003_up(db: peewee.Database) -> None:
    db.create_tables([PushSubscription], safe=True)
    _add(db, NOTIFICATION, "channel_content", Notification.channel_content)


def _0003_down(db: peewee.Database) -> None:
    _drop(db, NOTIFICATION, "channel_content")
    db.drop_tables([PushSubscription], safe=True)


def _0004_up(db: peewee.Database) -> None:
    _add(db, NOTIFICATION, "send_at", Notification.send_at)


def _0004_down(db: peewee.Database) -> None:
    _unpark(db)
    _drop(db, NOTIFICATION, "send_at")


def _0005_up(db: peewee.Database) -> None:
    db.create_tables([Preference], safe=True)


def _0005_down(db: peewee.Database) -> None:
    db.drop_tables([Preference], safe=True)


def _0006_up(db: peewee.Database) -> None:
    db.create_tables([Digest, Cancellation], safe=True)
    _add(db, NOTIFICATION, "digest_id", Notification.digest_id)  # its index comes with it
    _add(db, NOTIFICATION, "variables", Notification.variables)


def _0006_down(db: peewee.Database) -> None:
    # Items still waiting in open windows are sent on their own, each to its window's channels.
    now = utcnow()
    for digest_id, channels in db.execute_sql("SELECT id, channels FROM notif_digest WHERE open_key IS NOT NULL").fetchall():
        for (notification_id,) in db.execute_sql(f"SELECT id FROM {NOTIFICATION} WHERE digest_id = {int(digest_id)}").fetchall():
            for channel in json.loads(channels):
                db.execute_sql(f"INSERT INTO {DELIVERY} (notification_id, channel, status, attempts, created_at, updated_at)"
                               f" VALUES ({int(notification_id)}, {db.param}, 'pending', 0, {db.param}, {db.param})",
                               (channel, now, now))
    db.execute_sql(f"DELETE FROM {NOTIFICATION} WHERE digest_id IN (SELECT id FROM notif_digest WHERE open_key IS NULL)")
    _drop(db, NOTIFICATION, "digest_id", "variables")
    db.drop_tables([Digest, Cancellation], safe=True)


def _0007_up(db: peewee.Database) -> None:
    # "deferred by a rate limit" was a 'scheduled' row whose last_error began "rate limited"
    _add(db, DELIVERY, "deferred_until", peewee.DateTimeField(null=True))
    db.execute_sql(f"UPDATE {DELIVERY} SET status = 'deferred', deferred_until = next_attempt_at "
                   f"WHERE status = 'scheduled' AND last_error LIKE {db.param}", ("rate limited%",))


def _0007_down(db: peewee.Database) -> None:
    db.execute_sql(f"UPDATE {DELIVERY} SET status = 'scheduled' WHERE status = 'deferred'")
    _drop(db, DELIVERY, "deferred_until")


def _0008_up(db: peewee.Database) -> None:
    db.create_tables([Topic, TopicMember, Fanout], safe=True)


def _0008_down(db: peewee.Database) -> None:
    # A fan-out still running stops where it is (DOWN_LOSES says so): what it stored stays.
    db.drop_tables([Fanout, TopicMember, Topic], safe=True)


UNREAD_INDEX = "notif_notification_unread"


def _0009_up(db: peewee.Database) -> None:
    _add(db, NOTIFICATION, "expires_at", peewee.DateTimeField(null=True))
    _add(db, NOTIFICATION, "updated_at", peewee.DateTimeField(null=True))
    _add(db, NOTIFICATION, "retracted_at", peewee.DateTimeField(null=True))
    db.create_tables([Amendment], safe=True)
    # An inbox that stays fast (docs/database.md): a user's unread rows, in id order, in a partial index
    # on the conditions that never change back by the clock (Notification.visible() adds the
    # clock's: send_at, expires_at; PostgreSQL carries them in the index for index-only counts).
    include = " INCLUDE (send_at, expires_at)" if isinstance(db, peewee.PostgresqlDatabase) else ""
    db.execute_sql(f"CREATE INDEX IF NOT EXISTS {UNREAD_INDEX} ON {NOTIFICATION} (user_id, id){include} "
                   "WHERE read_at IS NULL AND digest_id IS NULL AND retracted_at IS NULL")
    db.execute_sql(f"CREATE INDEX IF NOT EXISTS notif_notification_created_at ON {NOTIFICATION} (created_at)")


def _0009_down(db: peewee.Database) -> None:
    # The schema going back cannot hide these any more: what was retracted or has expired is deleted
    # (never shown again), and withdrawn deliveries become 'skipped' with their reason kept.
    now = utcnow()
    db.execute_sql(f"DELETE FROM {DELIVERY} WHERE notification_id IN (SELECT id FROM {NOTIFICATION} "
                   f"WHERE retracted_at IS NOT NULL OR expires_at <= {db.param})", (now,))
    db.execute_sql(f"DELETE FROM {NOTIFICATION} WHERE retracted_at IS NOT NULL OR expires_at <= {db.param}", (now,))
    db.execute_sql(f"UPDATE {DELIVERY} SET status = 'skipped' WHERE status = 'withdrawn'")
    db.execute_sql("DROP INDEX IF EXISTS notif_notification_created_at")
    db.execute_sql(f"DROP INDEX IF EXISTS {UNREAD_INDEX}")
    _drop(db, NOTIFICATION, "expires_at", "updated_at", "retracted_at")
    db.drop_tables([Amendment], safe=True)


UNSEEN_INDEX = "notif_notification_unseen"


def _0010_up(db: peewee.Database) -> None:
    # Inbox states (docs/database.md): seen_at, archived_at. A row read before this step has no seen_at and
    # is seen all the same (read implies seen: Notification.to_dict); no row is rewritten.
    _add(db, NOTIFICATION, "seen_at", peewee.DateTimeField(null=True))
    _add(db, NOTIFICATION, "archived_at", peewee.DateTimeField(null=True))
    # the unseen count's partial index, built as the unread one (0009) is
    include = " INCLUDE (send_at, expires_at)" if isinstance(db, peewee.PostgresqlDatabase) else ""
    db.execute_sql(f"CREATE INDEX IF NOT EXISTS {UNSEEN_INDEX} ON {NOTIFICATION} (user_id, id){include} "
                   "WHERE seen_at IS NULL AND read_at IS NULL AND digest_id IS NULL AND retracted_at IS NULL")


def _0010_down(db: peewee.Database) -> None:
    # Archived notifications are back in the inbox (read, as they were); seen times go.
    db.execute_sql(f"DROP INDEX IF EXISTS {UNSEEN_INDEX}")
    _drop(db, NOTIFICATION, "seen_at", "archived_at")


KEY_INDEX = "notif_notification_key"
#: 0011's backfill: the code of a skipped row from the reason its last_error gave (before rows kept a code)
_SKIP_CODES = (("preference:%", "opted_out"), ("feature % is off%", "channel_off"),
               ("channel % is not installed%", "channel_unavailable"), ("%no push subscription%", "no_push_subscription"),
               ("no email address%", "no_email_address"))


def _0011_up(db: peewee.Database) -> None:
    # The trace (GET /api/messages/{key}, notif trace): each delivery's attempts, why a skipped row was skipped,
    # and a message's notifications found by key, in id order (a page of recipients), without a scan.
    db.create_tables([DeliveryAttempt], safe=True)  # with its (delivery_id, id) index
    _add(db, DELIVERY, "reason_code", peewee.CharField(max_length=32, null=True))
    for pattern, code in _SKIP_CODES:
        db.execute_sql(f"UPDATE {DELIVERY} SET reason_code = {db.param} "
                       f"WHERE status = 'skipped' AND reason_code IS NULL AND last_error LIKE {db.param}", (code, pattern))
    db.execute_sql(f"UPDATE {DELIVERY} SET reason_code = 'skipped' WHERE status = 'skipped' AND reason_code IS NULL")
    db.execute_sql(f"CREATE INDEX IF NOT EXISTS {KEY_INDEX} ON {NOTIFICATION} (key, id)")


def _0011_down(db: peewee.Database) -> None:
    db.execute_sql(f"DROP INDEX IF EXISTS {KEY_INDEX}")
    _drop(db, DELIVERY, "reason_code")
    db.drop_tables([DeliveryAttempt], safe=True)


def _0012_up(db: peewee.Database) -> None:
    # Webhooks (notif.webhooks): the outbox of events owed to the host app's endpoints, with its (status, updated_at)
    # index. A table of its own, touching no other: the step is independent of its neighbours.
    db.create_tables([WebhookEvent], safe=True)


def _0012_down(db: peewee.Database) -> None:
    db.drop_tables([WebhookEvent], safe=True)


ESCALATION_DUE_INDEX = "notif_escalation_due"


def _0013_up(db: peewee.Database) -> None:
    # Escalations (notif.escalations): a table of its own, touching no other, so the step is independent of its
    # neighbours. The due scan reads pending rows by due time from a partial index: only what is owed, however many
    # notifications and settled escalations there are.
    db.create_tables([Escalation], safe=True)
    db.execute_sql(f"CREATE INDEX IF NOT EXISTS {ESCALATION_DUE_INDEX} ON notif_escalation (due_at) "
                   "WHERE state = 'pending'")


def _0013_down(db: peewee.Database) -> None:
    db.drop_tables([Escalation], safe=True)  # its index with it


Step = Callable[[peewee.Database], None]
MIGRATIONS: list[tuple[int, str, Step, Step]] = [
    (1, "initial: notifications and deliveries", _0001_up, _0001_down),
    (2, "deliveries: next_attempt_at (retry schedule, seen by the outbox sweeper)", _0002_up, _0002_down),
    (3, "push subscriptions; per-channel content of notifications", _0003_up, _0003_down),
    (4, "notifications: send_at (scheduled sends)", _0004_up, _0004_down),
    (5, "users' notification preferences", _0005_up, _0005_down),
    (6, "digest windows, remembered cancels; notifications: digest_id, variables", _0006_up, _0006_down),
    (7, "deliveries: 'deferred' (by a rate limit) is a state of its own; deferred_until", _0007_up, _0007_down),
    (8, "topics and their members; fan-outs (a topic message stored in chunks)", _0008_up, _0008_down),
    (9, "update, retract, expiry (expires_at, updated_at, retracted_at, amendments); unread and age indexes",
     _0009_up, _0009_down),
    (10, "inbox states: seen_at, archived_at; unseen index", _0010_up, _0010_down),
    (11, "the trace: delivery attempts, skipped deliveries' reason codes, notifications by key", _0011_up, _0011_down),
    (12, "webhooks: the outbox of events owed to the host app's endpoints", _0012_up, _0012_down),
    (13, "escalations: unread notifications sent on other channels after a while", _0013_up, _0013_down),
]
DOWN_LOSES = {  # what going below a version takes away, for the operator to confirm
    1: "DROPS every notification and delivery",
    2: "retry schedules (owed retries and deferrals are sent now)",
    3: "push subscriptions (browsers must subscribe again) and per-channel renderings",
    4: "scheduled sends' times (they are sent now)",
    5: "users' preferences",
    6: "digests (items of open windows are sent on their own; items already digested are removed, "
       "their digest stays) and remembered cancels",
    7: "nothing owed: deferred deliveries are parked as 'scheduled' again, as before (deferred_until is dropped)",
    8: "topics and their members; a topic message still fanning out stops where it is (its remaining members get "
       "nothing)",
    9: "expiry times and retractions (expired and retracted notifications are deleted), remembered "
       "updates/retracts; 'withdrawn' deliveries become 'skipped'",
    10: "seen and archived states (archived notifications are back in the inbox, read; seen times are dropped)",
    11: "the delivery attempt log and skipped deliveries' reason codes (their last_error keeps the reason's text)",
    12: "webhook events not sent yet and the webhook dead letters (they are never sent)",
    13: "escalations: those not due yet are never sent; the record of those made goes (their deliveries stay)",
}


def current_version() -> int:
    return max(applied_versions(), default=0)


def plan(to: int | None = None) -> tuple[int, list[tuple[int, str, str]]]:
    """(current version, steps as (version, name, "up" | "down")) to reach ``to`` (default: latest)."""
    target = latest_version() if to is None else to
    if not 0 <= target <= latest_version():
        raise ValueError(f"no schema version {target}: versions are 0 to {latest_version()}")
    done = applied_versions()
    current = max(done, default=0)
    if target >= current:
        return current, [(v, name, "up") for v, name, _, _ in MIGRATIONS if v <= target and v not in done]
    return current, [(v, name, "down") for v, name, _, _ in reversed(MIGRATIONS) if v > target and v in done]


def applied_versions() -> set[int]:
    if not database.table_exists(SchemaVersion._meta.table_name):
        return set()
    return {row.version for row in SchemaVersion.select(SchemaVersion.version)}


def migrate(to: int | None = None) -> list[str]:
    """Bring the schema to version ``to`` (default: the latest), up or down, in one
    transaction; returns the steps taken ("0006 up …")."""
    steps = {v: (up, down) for v, _, up, down in MIGRATIONS}
    taken: list[str] = []
    with database.atomic():
        if is_postgres():
            database.execute_sql("SET LOCAL statement_timeout = 0")  # a migration may take its time
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_ID,))
        database.create_tables([SchemaVersion], safe=True)
        _, todo = plan(to)
        for version, name, direction in todo:
            up, down = steps[version]
            if direction == "up":
                up(database.obj)
                SchemaVersion.create(version=version, name=name)
            else:
                down(database.obj)
                SchemaVersion.delete().where(SchemaVersion.version == version).execute()
            log.info("migration applied", extra={"version": version, "migration": name, "direction": direction})
            taken.append(f"{version:04d} {direction:<4} {name}")
    return taken


def latest_version() -> int:
    return MIGRATIONS[-1][0]
