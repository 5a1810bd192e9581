"""The database: one peewee handle, bound at start-up from ``DATABASE_URL``.

PostgreSQL (``postgres://`` / ``postgresql://``, as Heroku writes it) gets a connection
pool with a connect timeout; SQLite (``sqlite:///path``, the embedded default) gets WAL and
a busy timeout so the poller, workers and web process can share one file.
"""
from __future__ import annotations

from urllib.parse import urlparse

import peewee
from playhouse.db_url import connect

from .errors import ConfigError

database = peewee.DatabaseProxy()

POSTGRES_SCHEMES = {"postgres", "postgresql"}


def make_database(url: str) -> peewee.Database:
    """Build (but do not open) a database from a URL."""
    scheme = urlparse(url).scheme
    if scheme in POSTGRES_SCHEMES:
        return connect(
            url.replace(f"{scheme}://", "postgresql+pool://", 1),
            max_connections=32,
            stale_timeout=300,
            timeout=10,  # seconds to wait for a free pooled connection
            connect_timeout=5,
            # a dead peer is noticed (TCP keepalives) and no statement hangs a worker forever
            keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3,
            options="-c statement_timeout=30000",
        )
    if scheme == "sqlite":
        return connect(
            url,
            pragmas={"journal_mode": "wal", "busy_timeout": 10000, "foreign_keys": 1, "synchronous": "normal"},
            returning_clause=True,
            timeout=10,
        )
    raise ConfigError(f"DATABASE_URL scheme {scheme!r} is not supported; use postgres://… or sqlite:///path")


def init_database(url: str) -> peewee.Database:
    """Bind the shared handle to ``url`` and return the database."""
    db = make_database(url)
    database.initialize(db)
    return db


def is_postgres() -> bool:
    return isinstance(database.obj, peewee.PostgresqlDatabase)
