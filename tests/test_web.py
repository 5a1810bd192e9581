"""The web process, run as `notif serve` on a real socket, read with a real HTTP client."""
import os
import subprocess
import sys
import time

import httpx
import jwt
import pytest

from helpers import free_port, wait_until
from notif.auth import make_token
from notif.models import Notification

SECRET = "web-test-secret-at-least-32-bytes-long"


@pytest.fixture(scope="module")
def server(_pg_schema, sqs_endpoint, redis_server, tmp_path_factory):
    import boto3
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=sqs_endpoint,
                       aws_access_key_id="t", aws_secret_access_key="t")
    queue = sqs.create_queue(QueueName=f"web-{free_port()}")["QueueUrl"]
    port = free_port()
    env = {**os.environ, "DATABASE_URL": _pg_schema, "NOTIF_JWT_SECRET": SECRET,
           "REDIS_URL": os.environ.get("NOTIF_TEST_REDIS", "redis://127.0.0.1:6379/0"),
           "AWS_ENDPOINT_URL": sqs_endpoint, "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t",
           "AWS_SQS_NOTIFICATION_QUEUE_URL": queue, "NOTIF_STATE_DIR": str(tmp_path_factory.mktemp("state"))}
    proc = subprocess.Popen([sys.executable, "-m", "notif.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, 30, message="notif serve")
    yield {"base": base, "proc": proc, "env": env, "sqs": sqs, "queue": queue}
    proc.terminate()
    proc.wait(10)
    sqs.delete_queue(QueueUrl=queue)


@pytest.fixture
def client(server, pg):
    with httpx.Client(base_url=server["base"], timeout=10) as c:
        yield c


def token(user, **kw):
    return make_token(SECRET, user, **kw)


def auth(user):
    return {"Authorization": f"Bearer {token(user)}"}


def add(user, n, start=0):
    for i in range(start, start + n):
        Notification.create(user_id=user, key=f"k{i}", title=f"t{i}", message="m", priority="normal", correlation_id="c")


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok", "sqs": "ok"}


def test_readiness_names_the_dependency_that_fails(server, client):
    server["sqs"].delete_queue(QueueUrl=server["queue"])
    try:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["database"] == "ok" and checks["redis"] == "ok" and checks["sqs"].startswith("error")
    finally:
        server["sqs"].create_queue(QueueName=server["queue"].rsplit("/", 1)[1])


def test_a_user_sees_only_their_own_notifications_newest_first(client):
    add("alice", 3)
    add("bob", 2, start=10)
    body = client.get("/api/notifications", headers=auth("alice")).json()
    assert [item["title"] for item in body["items"]] == ["t2", "t1", "t0"]
    assert body["next_cursor"] is None
    assert client.get("/api/notifications", params={"token": token("bob")}).json()["items"][0]["title"] == "t11"
    assert client.get("/api/notifications/unread-count", headers=auth("bob")).json() == {"unread": 2}


def test_pagination_walks_every_item_once(client):
    add("carol", 25)
    seen, cursor = [], None
    while True:
        params = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/notifications", headers=auth("carol"), params=params).json()
        seen += [item["title"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"t{i}" for i in range(24, -1, -1)]


def test_unread_filter(client):
    add("dave", 3)
    Notification.update(read_at=Notification.created_at).where(Notification.key == "k1").execute()
    items = client.get("/api/notifications", headers=auth("dave"), params={"unread": 1}).json()["items"]
    assert [i["title"] for i in items] == ["t2", "t0"]


@pytest.mark.parametrize("params,field", [({"limit": 101}, "limit"), ({"limit": 0}, "limit"),
                                          ({"cursor": "abc"}, "cursor")])
def test_bad_parameters_are_422_naming_the_field(client, params, field):
    response = client.get("/api/notifications", headers=auth("erin"), params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == field


def _tokens():
    now = int(time.time())
    return {
        "missing": None,
        "malformed": "not-a-jwt",
        "expired": jwt.encode({"sub": "u", "exp": now - 10}, SECRET, algorithm="HS256"),
        "wrong signature": jwt.encode({"sub": "u", "exp": now + 60}, "another-secret-that-is-also-32-bytes-long", algorithm="HS256"),
        "alg none": jwt.encode({"sub": "u", "exp": now + 60}, None, algorithm="none"),
        "no exp": jwt.encode({"sub": "u"}, SECRET, algorithm="HS256"),
    }


@pytest.mark.parametrize("case", list(_tokens()))
def test_bad_tokens_get_401_with_a_reason(client, case):
    value = _tokens()[case]
    headers = {"Authorization": f"Bearer {value}"} if value else {}
    response = client.get("/api/notifications", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized" and response.json()["reason"]


def test_openapi_spec_is_served(client):
    spec = client.get("/openapi.json").json()
    assert "/api/notifications" in spec["paths"]
