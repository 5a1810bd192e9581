"""Strings the store cannot hold (NUL, lone surrogates) get 422 naming the field, on every route:
query and path parameters, JSON bodies at any depth, values and keys."""
import json

import pytest
from test_body_limit import routes

from helpers import auth, token

JSON = {"content-type": "application/json"}


@pytest.fixture
def client(asgi, pg):
    return asgi["client"]


def send(client, method, path, document, user="u1"):
    # json.dumps escapes a lone surrogate as \ud800, as a browser's JSON.stringify does
    return client.request(method, path, content=json.dumps(document).encode(), headers={**auth(user), **JSON})


def refused(response, loc):
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == loc and error["type"] == "value_error"
    assert "cannot be stored" in error["msg"]
    return error["msg"]


def test_the_schemathesis_findings(client):
    """A NUL in DELETE /api/push/subscriptions's endpoint was a 500; in a preference key, stored with 200."""
    refused(send(client, "DELETE", "/api/push/subscriptions", {"endpoint": "https://push.example/\u0000"}),
            ["body", "endpoint"])
    msg = refused(send(client, "PUT", "/api/preferences", {"channels": {"em\u0000ail": False}}), ["body", "channels"])
    assert "key" in msg and "NUL" in msg
    assert client.get("/api/preferences", headers=auth("u1")).json()["channels"] == {}


def test_nested_values_list_items_and_lone_surrogates_are_named(client):
    subscription = {"endpoint": "https://push.example/1", "keys": {"p256dh": "abc\ud800", "auth": "x"}}
    assert "U+D800" in refused(send(client, "POST", "/api/push/subscriptions", subscription), ["body", "keys", "p256dh"])
    refused(send(client, "PUT", "/api/preferences", {"extra": ["fine", "b\u0000d"]}), ["body", "extra", 1])
    refused(send(client, "PUT", "/api/preferences", "\udfff"), ["body"])


def test_query_and_path_parameters(client):
    refused(client.get("/api/notifications?cursor=%00", headers=auth("u1")), ["query", "cursor"])
    refused(client.get("/api/notifications?x%00y=1", headers=auth("u1")), ["query", "x\u0000y"])
    refused(client.get("/events?token=%00"), ["query", "token"])
    refused(client.post("/api/notifications/1%00/read", headers=auth("u1")), ["path", "notification_id"])
    service = {"Authorization": f"Bearer {token('host-app', service=True)}"}
    refused(client.delete("/api/scheduled/report%0042", headers=service), ["path", "key"])


def test_every_route_refuses_them_before_it_runs(client):
    for method, path in routes(client.app):
        refused(client.request(method, f"{path}?q=%00", headers=auth("u1")), ["query", "q"])
        refused(send(client, method, path, {"deep": {"er": ["\u0000"]}}), ["body", "deep", "er", 0])


def test_the_answer_has_fastapis_shape_and_good_requests_pass(client):
    theirs = client.get("/api/notifications?limit=101", headers=auth("u1")).json()["detail"][0]
    ours = client.get("/api/notifications?cursor=%00", headers=auth("u1")).json()["detail"][0]
    assert {"loc", "msg", "type"} <= set(theirs) and set(ours) == {"loc", "msg", "type"}
    wanted = {"channels": {"email": False}, "types": {}, "type_channels": {}}
    assert send(client, "PUT", "/api/preferences", wanted).json() == wanted  # the body reaches the route intact
    malformed = client.put("/api/preferences", content=b'{"channels": ', headers={**auth("u1"), **JSON})
    assert malformed.status_code == 422 and malformed.json()["detail"][0]["type"] == "json_invalid"
    raw_nul = client.put("/api/preferences", content=b'{"channels": {"a\x00": false}}', headers={**auth("u1"), **JSON})
    assert raw_nul.status_code == 422 and raw_nul.json()["detail"][0]["type"] == "json_invalid"  # not JSON at all


def test_a_json_body_the_parser_cannot_read_is_422_not_400(client):
    for body, msg in [(b'{"channels": {"\xff": false}}', "not UTF-8"), (b"[" * 100_000 + b"]" * 100_000, None),
                      (b"[" * 20_000 + b"]" * 20_000, "nests too deep")]:
        response = client.put("/api/preferences", content=body, headers={**auth("u1"), **JSON})
        if msg is None:  # over the body limit before anything parses it
            assert response.status_code == 413
            continue
        assert response.status_code == 422, response.text
        [error] = response.json()["detail"]
        assert error["loc"] == ["body"] and error["type"] == "json_invalid" and msg in error["msg"]
