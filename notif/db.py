"""The database: one peewee handle, bound at start-up from ``DATABASE_URL``.

PostgreSQL (``postgres://`` / ``postgresql://``, as Heroku writes it) gets a connection
pool with a connect timeout; SQLite (``sqlite:///path``, the embedded default) gets WAL and
a busy timeout so the poller, workers and web process can share one file.

The pool (:class:`Pool`) checks a connection before handing it out with a round trip
(``SELECT 1``, peewee's own check), except one given back less than ``TRUSTED_FOR``
seconds ago in a clean state: under load that round trip was half the database calls of
a request such as the unread count (docs/benchmarks.md › The inbox at 10 million rows).
"""
from __future__ import annotations

import time
from urllib.parse import urlparse

import peewee
from playhouse.db_url import connect, parse
from playhouse.pool import PooledPostgresqlDatabase

from .errors import ConfigError

database = peewee.DatabaseProxy()

POSTGRES_SCHEMES = {"postgres", "postgresql"}
# how every PostgreSQL connection is opened (the pool's, and the web process's on the event loop: notif.web.loop_count)
CONNECT_OPTIONS = {
    "connect_timeout": 5,
    # a dead peer is noticed (TCP keepalives) and no statement hangs a worker forever
    "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
    "options": "-c statement_timeout=30000",
}
TRUSTED_FOR = 1.0  # seconds a connection given back to the pool is handed out again without a round trip


class Pool(PooledPostgresqlDatabase):
    """peewee's PostgreSQL pool, without the ``SELECT 1`` on checkout of a recently returned connection.

    A connection comes back to the pool only after peewee has found it idle (a transaction
    left open is rolled back, a broken one closed); one handed out again within
    ``TRUSTED_FOR`` seconds is trusted if it is still idle by its local status. One the
    server dropped in that second fails its first statement, as it would had the server
    dropped it just after a check; psycopg2 then marks it closed and the pool discards it.
    Older ones get peewee's check, so a pool idle across a server restart reconnects
    without an error.
    """

    trusted_for = TRUSTED_FOR

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._returned: dict[int, float] = {}  # conn_key -> when it was given back

    def _is_closed(self, conn) -> bool:
        returned = self._returned.pop(self.conn_key(conn), None)
        if (returned is not None and time.monotonic() - returned < self.trusted_for and not conn.closed
                and self._adapter.txn_status(conn) == self._adapter.txn_idle):
            return False
        return super()._is_closed(conn)

    def _close(self, conn, close_conn: bool = False) -> None:
        if not close_conn:  # (before it is back in the pool; forgotten again if peewee closes it instead)
            self._returned[self.conn_key(conn)] = time.monotonic()
        super()._close(conn, close_conn)

    def _close_raw(self, conn) -> None:
        self._returned.pop(self.conn_key(conn), None)
        super()._close_raw(conn)


def postgres_params(url: str) -> dict:
    """psycopg2's connection parameters for a ``postgres://`` URL (CONNECT_OPTIONS included)."""
    params = parse(url)
    if not params.get("database"):
        raise ConfigError(f"DATABASE_URL names no database: {urlparse(url).scheme}://user@host:port/NAME")
    return {**params, **CONNECT_OPTIONS}


def make_database(url: str) -> peewee.Database:
    """Build (but do not open) a database from a URL."""
    scheme = urlparse(url).scheme
    if scheme in POSTGRES_SCHEMES:
        return Pool(
            **postgres_params(url),
            max_connections=32,
            stale_timeout=300,
            timeout=10,  # seconds to wait for a free pooled connection
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
