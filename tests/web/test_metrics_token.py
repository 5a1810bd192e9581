"""NOTIF_METRICS_TOKEN: /metrics only with it, /readyz's details only with it; both open without it."""
import pytest

OPERATOR = "operator-token-for-the-scraper"


@pytest.fixture
def guarded(app_client):
    return app_client(NOTIF_METRICS_TOKEN=OPERATOR)


def bearer(value):
    return {"Authorization": f"Bearer {value}"}


def test_metrics_need_the_token(guarded):
    for headers in ({}, bearer("wrong"), {"Authorization": OPERATOR}, bearer(OPERATOR + "x")):
        refused = guarded.get("/metrics", headers=headers)
        assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
        assert refused.headers["www-authenticate"] == "Bearer" and "notif_" not in refused.text
    allowed = guarded.get("/metrics", headers=bearer(OPERATOR))
    assert allowed.status_code == 200 and "notif_" in allowed.text


def test_readiness_says_only_its_status_without_the_token(guarded, asgi):
    assert guarded.get("/readyz").json() == {"status": "ready"}
    assert guarded.get("/readyz", headers=bearer("wrong")).json() == {"status": "ready"}
    detailed = guarded.get("/readyz", headers=bearer(OPERATOR)).json()
    assert detailed["checks"] == {"database": "ok", "redis": "ok", "sqs": "ok"} and "features" in detailed
    asgi["sqs"].delete_queue(QueueUrl=asgi["queue"])
    try:
        down = guarded.get("/readyz")
        assert down.status_code == 503 and down.json() == {"status": "not ready"}  # no queue URL, no error text
        assert guarded.get("/readyz", headers=bearer(OPERATOR)).json()["checks"]["sqs"].startswith("error")
    finally:
        asgi["sqs"].create_queue(QueueName=asgi["queue"].rsplit("/", 1)[1])


def test_without_a_token_both_are_open_as_before(asgi, pg):
    client = asgi["client"]
    assert client.get("/metrics").status_code == 200
    assert "checks" in client.get("/readyz").json()
