"""NOTIF_CORS_ORIGINS: a host app's page on a listed origin may call /api/*, /events and /notif-inbox.js
from the browser, with a bearer token and never with credentials; any other origin gets no CORS headers."""
import httpx
import pytest

from helpers import SSE, auth, token
from notif.auth import make_token
from notif.config import load_settings
from notif.errors import ConfigError

HOST = "https://host.example"
OTHER = "http://localhost:3000"
EVIL = "https://evil.example"
PREFLIGHT_HEADERS = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}


@pytest.fixture
def client(app_client):
    return app_client(NOTIF_CORS_ORIGINS=f"{HOST}, {OTHER}", NOTIF_MAX_BODY="1k")


def cors_headers(response) -> dict:
    return {name: value for name, value in response.headers.items() if name.startswith("access-control-")}


def allowed(response, origin=HOST) -> None:
    assert response.headers["access-control-allow-origin"] == origin, (response.status_code, dict(response.headers))
    assert "origin" in [v.strip().lower() for v in response.headers["vary"].split(",")]
    assert "access-control-allow-credentials" not in response.headers


def test_a_listed_origin_may_read_every_kind_of_answer(client):
    ok = client.get("/api/notifications", headers={**auth("u1"), "Origin": HOST})
    assert ok.status_code == 200
    allowed(ok)
    assert ok.headers["access-control-expose-headers"] == "Retry-After"
    allowed(client.get("/api/notifications", headers={"Origin": OTHER}), OTHER)  # the second origin listed
    answers = [
        (401, client.get("/api/notifications/counts", headers={"Origin": HOST})),  # a page learns its token expired
        (401, client.get("/events", headers={"Origin": HOST})),  # the stream's own refusal
        (413, client.post("/api/notifications/seen", content=b"x" * 2000, headers={**auth("u1"), "Origin": HOST})),
        (422, client.get("/api/notifications?status=nope", headers={**auth("u1"), "Origin": HOST})),
        (422, client.get("/api/notifications?cursor=%00", headers={**auth("u1"), "Origin": HOST})),  # the edge's
        (404, client.post("/api/notifications/123456/archive", headers={**auth("u1"), "Origin": HOST})),
    ]
    for status, response in answers:
        assert response.status_code == status
        allowed(response)
    allowed(client.get("/notif-inbox.js", headers={"Origin": HOST}))  # the component's file is covered too


def test_a_preflight_from_a_listed_origin_is_answered(client):
    response = client.options("/api/notifications/seen", headers={"Origin": HOST, **PREFLIGHT_HEADERS})
    assert response.status_code == 204
    assert cors_headers(response) == {
        "access-control-allow-origin": HOST, "access-control-allow-methods": "GET, POST, PUT, DELETE",
        "access-control-allow-headers": "Authorization, Content-Type, Last-Event-ID", "access-control-max-age": "600"}
    events = client.options("/events", headers={"Origin": HOST, "Access-Control-Request-Method": "GET",
                                                 "Access-Control-Request-Headers": "authorization, last-event-id"})
    assert events.status_code == 204 and events.headers["access-control-allow-origin"] == HOST


def test_an_origin_not_listed_gets_no_cors_headers_at_all(client):
    for response in (client.get("/api/notifications", headers={**auth("u1"), "Origin": EVIL}),
                     client.get("/api/notifications", headers={"Origin": EVIL}),
                     client.get("/api/notifications", headers={**auth("u1"), "Origin": HOST + ":8443"}),
                     client.get("/api/notifications", headers={**auth("u1"), "Origin": "null"})):
        assert cors_headers(response) == {}
    refused = client.options("/api/notifications/seen", headers={"Origin": EVIL, **PREFLIGHT_HEADERS})
    assert refused.status_code == 403 and cors_headers(refused) == {}
    assert "NOTIF_CORS_ORIGINS" in refused.json()["reason"]


def test_only_the_apis_paths_are_shared(client):
    for path in ("/", "/healthz", "/metrics", "/static/inbox.js", "/openapi.json"):
        response = client.get(path, headers={"Origin": HOST})
        assert response.status_code == 200 and cors_headers(response) == {}, path
    preflight = client.options("/", headers={"Origin": HOST, **PREFLIGHT_HEADERS})
    assert cors_headers(preflight) == {}


def test_without_the_setting_there_are_no_cors_headers(asgi, pg):
    client = asgi["client"]
    assert cors_headers(client.get("/api/notifications", headers={**auth("u1"), "Origin": HOST})) == {}
    preflight = client.options("/api/notifications", headers={"Origin": HOST, **PREFLIGHT_HEADERS})
    assert preflight.status_code == 405 and cors_headers(preflight) == {}


@pytest.mark.parametrize("entry,says", [
    ("https://host.example/", "trailing slash"), ("https://host.example/app", "path"), ("*", "wildcard"),
    ("https://*.host.example", "wildcard"), ("host.example", "http:// or https://"), ("ftp://host.example", "https://"),
    ("https://host.example:99999", "port"), ("https://user:pw@host.example", "user or password"),
])
def test_a_bad_entry_stops_start_up_naming_it_and_the_form_expected(entry, says):
    with pytest.raises(ConfigError) as info:
        load_settings({"NOTIF_CORS_ORIGINS": f"https://fine.example, {entry}"}, use_state=False)
    message = str(info.value)
    assert message.startswith("NOTIF_CORS_ORIGINS=") and f"{entry!r} is not an origin" in message and says in message
    assert "scheme://host[:port]" in message


def test_origins_are_read_as_a_browser_sends_them():
    settings = load_settings({"NOTIF_CORS_ORIGINS": "https://Host.Example:443 http://localhost:3000,https://b.example:8443"},
                             use_state=False)
    assert settings.cors_origins == ("https://host.example", "http://localhost:3000", "https://b.example:8443")
    assert load_settings({}, use_state=False).cors_origins is None


def test_the_live_stream_and_its_refusals_carry_the_headers_over_a_real_socket(processes):
    processes.env.update(NOTIF_CORS_ORIGINS=HOST, NOTIF_SSE_MAX_PER_USER="1")
    base = processes.start_web()
    secret = processes.env["NOTIF_JWT_SECRET"]
    bearer = {"Authorization": f"Bearer {make_token(secret, 'cors-user')}", "Origin": HOST}
    with httpx.Client(base_url=base, timeout=httpx.Timeout(10, read=10)) as http:
        with http.stream("GET", "/events", headers=bearer) as response:
            assert response.status_code == 200
            allowed(response)
            sse = SSE(response)  # (kept: dropping its line iterator would close the stream)
            sse.until_comment("connected")  # the stream itself flows
            full = http.get("/events", headers=bearer)  # one stream per user here: the second gets 429
            assert full.status_code == 429 and full.headers["retry-after"]
            allowed(full)
            assert full.headers["access-control-expose-headers"] == "Retry-After"
            assert sse.comments == ["connected"]
        refused = http.get("/events", headers={"Authorization": f"Bearer {token('x')}", "Origin": HOST})  # another secret
        assert refused.status_code == 401
        allowed(refused)
        assert cors_headers(http.get("/events", headers={"Origin": EVIL})) == {}  # (a 401: no stream to wait on)


def test_an_unhandled_error_is_a_500_the_page_can_read():
    """Starlette answers an unhandled error outside every middleware: without CORS answering it, a host's page
    would see an opaque network error instead of a 500."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from notif.web.cors import CORS

    def boom(request):
        raise RuntimeError("a bug")

    app = Starlette(routes=[Route("/api/boom", boom)], middleware=[Middleware(CORS, origins=[HOST])])
    with TestClient(app, raise_server_exceptions=False) as browser:
        response = browser.get("/api/boom", headers={"Origin": HOST})
    assert response.status_code == 500
    allowed(response)
    assert response.json()["error"] == "internal_error"
