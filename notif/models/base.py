"""What every table shares: the timestamp convention, JSON columns, the database."""
from __future__ import annotations

import datetime as dt
import json

import peewee

from ..db import database


def utcnow() -> dt.datetime:
    """Naive UTC, the one timestamp convention in the database."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def isoformat(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"


class JSONField(peewee.TextField):
    """JSON kept as text, the same on PostgreSQL and SQLite."""

    def db_value(self, value):
        return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)

    def python_value(self, value):
        return None if value is None else json.loads(value)


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False
