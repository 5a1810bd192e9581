"""The web API, in process (FastAPI's TestClient over the real app, PostgreSQL, Redis and SQS).

What needs a real socket (SSE, the inbox page, signals) is tested against `notif serve` in
test_events.py, test_page.py and the end-to-end tests."""
import pytest

from helpers import BAD_TOKENS, auth, token
from notif.models import Notification


@pytest.fixture
def server(asgi):
    return asgi


@pytest.fixture
def client(asgi, pg):
    return asgi["client"]


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


@pytest.mark.parametrize("case", list(BAD_TOKENS()))
def test_bad_tokens_get_401_with_a_reason(client, case):
    value = BAD_TOKENS()[case]
    headers = {"Authorization": f"Bearer {value}"} if value else {}
    response = client.get("/api/notifications", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized" and response.json()["reason"]


def test_openapi_spec_is_served(client):
    spec = client.get("/openapi.json").json()
    assert "/api/notifications" in spec["paths"]


def test_the_service_worker_is_served_for_the_whole_origin(client):
    response = client.get("/sw.js")
    assert response.status_code == 200 and "showNotification" in response.text
    assert response.headers["service-worker-allowed"] == "/"
    assert response.headers["content-type"].startswith("text/javascript")


def test_the_host_app_cancels_a_scheduled_send_with_a_service_token(client):
    import datetime as dt

    from notif.models import Delivery, utcnow
    later = utcnow() + dt.timedelta(hours=1)
    n = Notification.create(user_id="u1", key="sched-1", title="t", message="m", priority="normal",
                            correlation_id="c", send_at=later)
    Delivery.create(notification=n, channel="in_app", status="scheduled", next_attempt_at=later)
    sent = Notification.create(user_id="u1", key="sent-1", title="t", message="m", priority="normal", correlation_id="c")
    Delivery.create(notification=sent, channel="in_app", status="sent")
    service = {"Authorization": f"Bearer {token('host-app', service=True)}"}

    refused = client.delete("/api/scheduled/sched-1", headers=auth("u1"))  # a user's token is not the service's
    assert refused.status_code == 401 and "needs a service token" in refused.json()["reason"]
    assert client.get("/api/notifications", headers=service).status_code == 401  # nor the reverse
    assert client.delete("/api/scheduled/sched-1", headers=service).json() == \
        {"id": "sched-1", "cancelled": 1, "too_late": 0}
    assert Notification.select().where(Notification.key == "sched-1").count() == 0
    late = client.delete("/api/scheduled/sent-1", headers=service)
    assert late.status_code == 409 and late.json()["reason"] == "it has gone out already"
    early = client.delete("/api/scheduled/not-yet", headers=service)  # the send is still on its way
    assert early.status_code == 202 and early.json()["pending"] is True
