"""Fixtures: real PostgreSQL, real Redis, SQS over HTTP (moto's server), per run isolated.

Each test run gets its own PostgreSQL database and its own Redis key prefix, so two runs
on one machine cannot see each other. The services must be up (``.ci/run`` starts them);
a missing one fails loudly instead of skipping.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid

import boto3
import psycopg2
import pytest
import redis as redis_lib

from helpers import EMPTIED_AFTER_EACH_TEST, POSTGRES_ADMIN, REDIS_URL, WEB_SECRET, free_port, pg_admin, wait_healthy, wait_until
from notif.config import load_settings
from notif.db import database, init_database
from notif.migrations import migrate

#: a test using one of these starts notif's real processes: not in the fast tier (`make test-fast`)
PROCESS_FIXTURES = {"processes", "web"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.processes)


RUN_ID = uuid.uuid4().hex[:8]


# -- PostgreSQL ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_url():
    name = f"notif_test_{RUN_ID}"
    admin = pg_admin()
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="session")
def _pg_schema(pg_url):
    init_database(pg_url)
    migrate()
    database.close()
    return pg_url


@pytest.fixture
def pg(_pg_schema):
    """A migrated PostgreSQL database bound to notif's handle, emptied after the test."""
    init_database(_pg_schema)
    yield _pg_schema
    database.close()
    conn = psycopg2.connect(_pg_schema)
    with conn, conn.cursor() as cur:  # DELETE, not TRUNCATE: 0.4 ms for these small tables, not 26
        cur.execute("; ".join(f"DELETE FROM {table}" for table in EMPTIED_AFTER_EACH_TEST))
        cur.execute("SELECT setval(c.oid::regclass, 1, false) FROM pg_class c WHERE c.relkind = 'S'")  # ids from 1
    conn.close()


# -- Redis -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_server():
    client = redis_lib.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        client.ping()
    except redis_lib.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({exc}); start it (see README › Tests)", pytrace=False)
    yield client
    for key in client.scan_iter(f"notif-test-{RUN_ID}*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def redis_prefix(redis_server):
    prefix = f"notif-test-{RUN_ID}-{uuid.uuid4().hex[:6]}"
    yield prefix
    for key in redis_server.scan_iter(f"{prefix}*", count=1000):
        redis_server.delete(key)


# -- SQS (moto's server over HTTP) -----------------------------------------------------
@pytest.fixture(scope="session")
def sqs_endpoint():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"

    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    wait_until(up, 30, message="moto's SQS server")
    yield endpoint
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def sqs(sqs_endpoint):
    return boto3.client("sqs", region_name="us-east-1", endpoint_url=sqs_endpoint,
                        aws_access_key_id="test", aws_secret_access_key="test")


@pytest.fixture
def queues(sqs):
    """Four fresh queues for this test (kept shallow: moto scans a queue on every call)."""
    tag = uuid.uuid4().hex[:8]
    urls = {role: sqs.create_queue(QueueName=f"t{tag}-{role}")["QueueUrl"] for role in ("high", "normal", "low", "dlq")}
    yield urls
    for url in urls.values():
        sqs.delete_queue(QueueUrl=url)


@pytest.fixture
def env(pg, redis_prefix, sqs_endpoint, queues, tmp_path):
    """The environment a notif process gets in tests (also used to start real processes)."""
    return {
        "DATABASE_URL": pg,
        "REDIS_URL": REDIS_URL,
        "NOTIF_REDIS_PREFIX": redis_prefix,
        "AWS_ENDPOINT_URL": sqs_endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_SQS_HIGH_PRIORITY_QUEUE_URL": queues["high"],
        "AWS_SQS_NOTIFICATION_QUEUE_URL": queues["normal"],
        "AWS_SQS_LOW_PRIORITY_QUEUE_URL": queues["low"],
        "AWS_SQS_DEAD_LETTER_QUEUE_URL": queues["dlq"],
        "NOTIF_JWT_SECRET": "test-secret-of-32-bytes-or-more-" + RUN_ID,
        "NOTIF_STATE_DIR": str(tmp_path / "state"),
        "NOTIF_POLL_WAIT_SECONDS": "1",
        "NOTIF_OUTBOUND_ALLOW": "127.0.0.1",  # the push service and receivers in the tests run on loopback
    }


@pytest.fixture
def settings(env):
    return load_settings(env, use_state=False)


@pytest.fixture
def runtime(settings):
    from notif.runtime import Runtime
    rt = Runtime.start(settings)
    yield rt
    rt.redis.close()


@pytest.fixture(autouse=True)
def _no_webhook_outbox_left_installed():
    """Runtime.start installs its webhook outbox process-wide (for notif.delivery_states): no test hands
    its own to the next one."""
    yield
    from notif.webhooks.outbox import WebhookOutbox, install
    install(WebhookOutbox.disabled())




# -- the web process -------------------------------------------------------------------
@pytest.fixture(scope="module")
def web(_pg_schema, sqs_endpoint, redis_server, tmp_path_factory):
    """`notif serve` on a free port (module-wide), with a Redis prefix of its own."""
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=sqs_endpoint,
                       aws_access_key_id="t", aws_secret_access_key="t")
    queue = sqs.create_queue(QueueName=f"web-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    port = free_port()
    prefix = f"notif-test-{RUN_ID}-web-{uuid.uuid4().hex[:6]}"
    env = {"DATABASE_URL": _pg_schema, "NOTIF_JWT_SECRET": WEB_SECRET, "REDIS_URL": REDIS_URL,
           "NOTIF_OUTBOUND_ALLOW": "127.0.0.1",
           "NOTIF_REDIS_PREFIX": prefix, "AWS_ENDPOINT_URL": sqs_endpoint, "AWS_ACCESS_KEY_ID": "t",
           "AWS_SECRET_ACCESS_KEY": "t", "AWS_SQS_NOTIFICATION_QUEUE_URL": queue,
           "NOTIF_STATE_DIR": str(tmp_path_factory.mktemp("state")),
           "NOTIF_SSE_PING_SECONDS": "1", "NOTIF_SSE_SEND_TIMEOUT": "2"}
    log = open(tmp_path_factory.mktemp("web") / "web.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "notif.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base)
    yield {"base": base, "port": port, "proc": proc, "env": env, "sqs": sqs, "queue": queue,
           "settings": load_settings(env, use_state=False)}
    proc.terminate()
    proc.wait(10)
    log.close()
    sqs.delete_queue(QueueUrl=queue)


@pytest.fixture(scope="module")
def asgi(_pg_schema, sqs_endpoint, redis_server, tmp_path_factory):
    """The web app in this process (no socket): FastAPI's TestClient, lifespan and all.

    The fast tier's way to test the HTTP API; `web` runs the real `notif serve` for what
    needs a socket (SSE, the page, signals)."""
    from fastapi.testclient import TestClient

    from notif.web.app import create_app

    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=sqs_endpoint,
                       aws_access_key_id="t", aws_secret_access_key="t")
    queue = sqs.create_queue(QueueName=f"asgi-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    env = {"DATABASE_URL": _pg_schema, "NOTIF_JWT_SECRET": WEB_SECRET, "REDIS_URL": REDIS_URL,
           "NOTIF_OUTBOUND_ALLOW": "127.0.0.1",
           "NOTIF_REDIS_PREFIX": f"notif-test-{RUN_ID}-asgi-{uuid.uuid4().hex[:6]}", "AWS_ENDPOINT_URL": sqs_endpoint,
           "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_SQS_NOTIFICATION_QUEUE_URL": queue,
           "NOTIF_STATE_DIR": str(tmp_path_factory.mktemp("state"))}
    settings = load_settings(env, use_state=False)
    with TestClient(create_app(settings)) as client:
        yield {"client": client, "sqs": sqs, "queue": queue, "env": env, "settings": settings}
    sqs.delete_queue(QueueUrl=queue)


@pytest.fixture
def app_client(asgi, pg):
    """``app_client(NOTIF_MAX_BODY="1k", …)``: a TestClient over an app built with those settings
    changed (the `asgi` fixture's environment otherwise), lifespan and all; closed after the test."""
    from fastapi.testclient import TestClient

    from notif.web.app import create_app

    clients = []

    def make(**overrides):
        client = TestClient(create_app(load_settings({**asgi["env"], **overrides}, use_state=False)))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


# -- real notif processes --------------------------------------------------------------
class Processes:
    """Starts notif's processes for one test; on teardown each must exit 0 on SIGTERM."""

    def __init__(self, env: dict, tmp_path):
        self.env = {**os.environ, "NOTIF_VISIBILITY_TIMEOUT": "3", "PYTHONUNBUFFERED": "1", **env}
        self.tmp_path = tmp_path
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs = {}

    def start(self, name: str, command: list[str]) -> subprocess.Popen:
        self.logs[name] = open(self.tmp_path / f"{name}.log", "w")
        # a session of its own: kill9() reaches a process and its children (dramatiq forks workers)
        self.procs[name] = subprocess.Popen(command, env=self.env, stdout=self.logs[name], stderr=subprocess.STDOUT,
                                            start_new_session=True)
        return self.procs[name]

    def kill9(self, name: str) -> None:
        """kill -9 the process and its children: no clean-up, no goodbye."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        self.logs.pop(name).close()

    def start_worker(self, threads: int = 4, name: str = "worker"):
        return self.start(name, [sys.executable, "-m", "dramatiq", "notif.actors", "--processes", "1",
                                 "--threads", str(threads), "--worker-shutdown-timeout", "20000"])

    def start_poller(self, name: str = "poller"):
        return self.start(name, [sys.executable, "-m", "notif.cli", "poll"])

    def start_scheduler(self, name: str = "scheduler"):
        return self.start(name, [sys.executable, "-m", "notif.cli", "scheduler"])

    def start_web(self, port: int | None = None, name: str = "web") -> str:
        port = port or free_port()
        self.start(name, [sys.executable, "-m", "notif.cli", "serve", "--host", "127.0.0.1", "--port", str(port)])
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base)
        return base

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text()

    def stop(self) -> list[str]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        unclean = []
        for name, proc in self.procs.items():
            try:
                code = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = "killed after 30 s"
            if code != 0:
                unclean.append(f"{name} exited {code}:\n{self.log(name)[-2000:]}")
            self.logs[name].close()
        return unclean


@pytest.fixture
def processes(env, tmp_path):
    procs = Processes(env, tmp_path)
    yield procs
    unclean = procs.stop()
    assert not unclean, "a process did not exit cleanly on SIGTERM: " + "\n".join(unclean)


# -- headless Chromium (the inbox page, the <notif-inbox> component) ---------------------
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is not installed: apt-get install chromium (.ci/run does it)", pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# -- SMTP ------------------------------------------------------------------------------
@pytest.fixture
def smtp():
    """A real SMTP server on a free loopback port: (its Inbox handler, its port)."""
    from aiosmtpd.controller import Controller

    from smtp_sink import Inbox
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, controller.port
    controller.stop()
