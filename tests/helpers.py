"""Helpers shared by the tests: waiting on conditions, reading queues and tables."""
from __future__ import annotations

import os
import socket
import time
import warnings
from pathlib import Path

import jwt
import psycopg2
import pytest

from notif.auth import make_token
from notif.models import Notification

ROOT = Path(__file__).resolve().parent.parent


# the services the tests run against (README › Tests)
POSTGRES_ADMIN = os.environ.get("NOTIF_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("NOTIF_TEST_REDIS", "redis://127.0.0.1:6379/0")

#: every table a test may write, children before their parents (the `pg` fixture empties them; notif_schema_version
#: stays; tests/test_models.py checks the list against notif.models.MODELS)
EMPTIED_AFTER_EACH_TEST = (
    "notif_delivery_attempt", "notif_escalation", "notif_delivery", "notif_notification", "notif_push_subscription",
    "notif_preference", "notif_digest", "notif_cancellation", "notif_amendment", "notif_topic_member", "notif_fanout",
    "notif_topic", "notif_webhook_event")

def pg_admin():
    """An autocommit connection to the PostgreSQL server's admin database (to create and drop test databases)."""
    try:
        conn = psycopg2.connect(POSTGRES_ADMIN, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN} ({exc}); start it (see README › Tests)", pytrace=False)
    conn.autocommit = True
    return conn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail the test with ``message`` on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message} (last value: {last!r})")


def wait_healthy(base: str, timeout: float = 30) -> None:
    """Wait until a web process answers /healthz."""
    import httpx

    def up():
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, timeout, message=f"notif serve at {base}")


def drain(sqs, url: str, wait: int = 0) -> list[dict]:
    """Receive (and delete) every message on a queue, with its attributes."""
    out = []
    while True:
        response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait,
                                       MessageAttributeNames=["All"], AttributeNames=["All"])
        messages = response.get("Messages", [])
        if not messages:
            return out
        out.extend(messages)
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])


def queue_counts(sqs, url: str) -> tuple[int, int]:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def notification_count(**where) -> int:
    query = Notification.select()
    for name, value in where.items():
        query = query.where(getattr(Notification, name) == value)
    return query.count()




def pg_query(url: str, sql: str, params=()):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


WEB_SECRET = "web-test-secret-at-least-32-bytes-long"


def token(user, **kw):
    return make_token(WEB_SECRET, user, **kw)


def auth(user):
    return {"Authorization": f"Bearer {token(user)}"}


def other_algorithm(claims: dict, algorithm: str) -> str:
    """A token signed with the right secret under another algorithm (PyJWT warns the key is short for it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode(claims, WEB_SECRET, algorithm=algorithm)


def BAD_TOKENS():
    """Every kind of token the API must refuse, by name."""
    now = int(time.time())
    return {
        "missing": None,
        "malformed": "not-a-jwt",
        "expired": jwt.encode({"sub": "u", "exp": now - 10}, WEB_SECRET, algorithm="HS256"),
        "wrong signature": jwt.encode({"sub": "u", "exp": now + 60}, "another-secret-that-is-also-32-bytes-long",
                                      algorithm="HS256"),
        "alg none": jwt.encode({"sub": "u", "exp": now + 60}, None, algorithm="none"),
        "alg HS512": other_algorithm({"sub": "u", "exp": now + 60}, "HS512"),
        "alg HS384": other_algorithm({"sub": "u", "exp": now + 60}, "HS384"),
        "no exp": jwt.encode({"sub": "u"}, WEB_SECRET, algorithm="HS256"),
        "no sub": jwt.encode({"exp": now + 60}, WEB_SECRET, algorithm="HS256"),
    }


class SSE:
    """Reads Server-Sent Events from an httpx streaming response, one event at a time."""

    def __init__(self, response):
        self.response = response
        self.lines = response.iter_lines()
        self.comments: list[str] = []
        self.retry = None

    def next(self) -> dict:
        """The next event (comments and retry are recorded on the way)."""
        event: dict = {}
        for line in self.lines:
            if line == "":
                if "data" in event or "event" in event:
                    return event
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "retry":
                self.retry = int(value)
            else:
                event[name] = event.get(name, "") + value if name == "data" and name in event else value
        raise AssertionError("the stream ended")

    def until_comment(self, text: str) -> None:
        for line in self.lines:
            if line.startswith("retry:"):
                self.retry = int(line[6:])
            if line.startswith(":") and line[1:].strip() == text:
                self.comments.append(text)
                return
        raise AssertionError(f"the stream ended before the comment {text!r}")


def notif_send(env: dict, *args: str) -> None:
    """``notif send …`` as an operator would run it: the message goes onto SQS."""
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "notif.cli", "send", *args], env={**env, "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
