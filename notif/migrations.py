"""Versioned schema migrations: ``notif migrate`` applies the missing ones, in order.

Each migration is a function that takes the database; the applied versions are kept in
``notif_schema_version``. Running ``notif migrate`` twice, or from two release processes
at once (PostgreSQL serialises them with an advisory lock), changes nothing the second time.
"""
from __future__ import annotations

import logging
from typing import Callable

import peewee

from .db import database, is_postgres
from .models import Cancellation, Delivery, Digest, Notification, Preference, PushSubscription, utcnow

log = logging.getLogger(__name__)

ADVISORY_LOCK_ID = 7_370_001  # any constant shared by every notif process


class SchemaVersion(peewee.Model):
    version = peewee.IntegerField(primary_key=True)
    name = peewee.CharField(max_length=100)
    applied_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        database = database
        table_name = "notif_schema_version"


def _0001_initial(db: peewee.Database) -> None:
    db.create_tables([Notification, Delivery], safe=True)  # (at today's columns: later steps check first)


def _0002_delivery_next_attempt(db: peewee.Database) -> None:
    from playhouse.migrate import SchemaMigrator, migrate as apply
    table = Delivery._meta.table_name
    if "next_attempt_at" not in {c.name for c in db.get_columns(table)}:  # absent unless 0001 made it
        apply(SchemaMigrator.from_database(db).add_column(table, "next_attempt_at",
                                                          peewee.DateTimeField(null=True)))


def _0003_push_and_channel_content(db: peewee.Database) -> None:
    from playhouse.migrate import SchemaMigrator, migrate as apply
    db.create_tables([PushSubscription], safe=True)
    table = Notification._meta.table_name
    if "channel_content" not in {c.name for c in db.get_columns(table)}:
        apply(SchemaMigrator.from_database(db).add_column(table, "channel_content", Notification.channel_content))


def _0004_notification_send_at(db: peewee.Database) -> None:
    from playhouse.migrate import SchemaMigrator, migrate as apply
    table = Notification._meta.table_name
    if "send_at" not in {c.name for c in db.get_columns(table)}:
        apply(SchemaMigrator.from_database(db).add_column(table, "send_at", Notification.send_at))


def _0005_preferences(db: peewee.Database) -> None:
    db.create_tables([Preference], safe=True)


def _0006_digests(db: peewee.Database) -> None:
    from playhouse.migrate import SchemaMigrator, migrate as apply
    db.create_tables([Digest, Cancellation], safe=True)
    table = Notification._meta.table_name
    columns = {c.name for c in db.get_columns(table)}
    migrator = SchemaMigrator.from_database(db)
    if "digest_id" not in columns:
        apply(migrator.add_column(table, "digest_id", Notification.digest_id))  # its index comes with it
    if "variables" not in columns:
        apply(migrator.add_column(table, "variables", Notification.variables))


MIGRATIONS: list[tuple[int, str, Callable[[peewee.Database], None]]] = [
    (1, "initial: notifications and deliveries", _0001_initial),
    (2, "deliveries: next_attempt_at (retry schedule, seen by the outbox sweeper)", _0002_delivery_next_attempt),
    (3, "push subscriptions; per-channel content of notifications", _0003_push_and_channel_content),
    (4, "notifications: send_at (scheduled sends)", _0004_notification_send_at),
    (5, "users' notification preferences", _0005_preferences),
    (6, "digest windows, remembered cancels; notifications: digest_id, variables", _0006_digests),
]


def current_version() -> int:
    if not database.table_exists(SchemaVersion._meta.table_name):
        return 0
    latest = SchemaVersion.select(peewee.fn.MAX(SchemaVersion.version)).scalar()
    return latest or 0


def migrate() -> list[str]:
    """Apply every migration not yet applied; returns the names applied."""
    applied: list[str] = []
    with database.atomic():
        if is_postgres():
            database.execute_sql("SET LOCAL statement_timeout = 0")  # a migration may take its time
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_ID,))
        database.create_tables([SchemaVersion], safe=True)
        done = {row.version for row in SchemaVersion.select(SchemaVersion.version)}
        for version, name, apply in MIGRATIONS:
            if version in done:
                continue
            apply(database.obj)
            SchemaVersion.create(version=version, name=name)
            log.info("migration applied", extra={"version": version, "migration": name})
            applied.append(f"{version:04d} {name}")
    return applied


def latest_version() -> int:
    return MIGRATIONS[-1][0]
