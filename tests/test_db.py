"""The PostgreSQL pool: a connection given back a moment ago is handed out without a round trip; an
older one is checked first, so a connection the server dropped is replaced, not used."""
import peewee
import psycopg2
import pytest

from notif.db import Pool, make_database


def backend_pid(db) -> int:
    with db.connection_context():
        return db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]


def terminate(url: str, pid: int) -> None:
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
    admin.close()


@pytest.fixture
def pool(pg_url):
    db = make_database(pg_url)
    assert isinstance(db, Pool)
    yield db
    db.close_all()


def count_checks(monkeypatch, db) -> list:
    calls: list = []
    real = db._adapter.is_connection_closed
    monkeypatch.setattr(db._adapter, "is_connection_closed", lambda conn: calls.append(1) or real(conn))
    return calls


def test_a_connection_given_back_a_moment_ago_is_reused_without_a_round_trip(pool, monkeypatch):
    pid = backend_pid(pool)
    checks = count_checks(monkeypatch, pool)
    assert [backend_pid(pool) for _ in range(3)] == [pid] * 3
    assert checks == []


def test_an_older_connection_is_checked_and_one_the_server_dropped_is_replaced(pool, pg_url, monkeypatch):
    pool.trusted_for = 0  # every pooled connection is "older"
    pid = backend_pid(pool)
    checks = count_checks(monkeypatch, pool)
    assert backend_pid(pool) == pid and len(checks) == 1
    terminate(pg_url, pid)
    assert backend_pid(pool) != pid  # the check found it gone: a new connection, no error


def test_a_trusted_connection_the_server_dropped_fails_once_and_is_discarded(pool, pg_url):
    pid = backend_pid(pool)
    terminate(pg_url, pid)
    with pytest.raises(peewee.OperationalError):  # (the same as a drop just after a check)
        backend_pid(pool)
    assert backend_pid(pool) != pid
