"""NOTIF_MAX_BODY: a request body over the limit gets 413 with a JSON reason, on every route,
whether it declares its length or streams it in chunks."""
import asyncio
import re
import socket

import pytest

from helpers import auth
from notif.web.body_limit import BodyLimit
from notif.web.topics import TOPIC_BODY

LIMIT = 1024


@pytest.fixture
def client(app_client):
    return app_client(NOTIF_MAX_BODY="1k")


UNDOCUMENTED = [("GET", "/events"), ("GET", "/metrics"), ("GET", "/"), ("GET", "/sw.js"), ("GET", "/static/inbox.css")]


def routes(app):
    """(method, path) of every route the app serves, path parameters filled in."""
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            yield method.upper(), re.sub(r"\{\w+\}", "1", path)
    yield from UNDOCUMENTED


def test_every_route_refuses_a_body_over_the_limit_by_its_length(client):
    served = list(routes(client.app))
    assert ("PUT", "/api/preferences") in served and ("GET", "/events") in served and len(served) > 15
    for method, path in served:
        # a topic's subscribers come 10,000 ids at a time: those routes allow more (TOPIC_BODY), and no more
        limit = TOPIC_BODY if path.startswith("/api/topics/") else LIMIT
        response = client.request(method, path, content=b"x" * (limit + 1), headers=auth("u1"))
        assert response.status_code == 413, (method, path, response.status_code)
        assert response.json()["error"] == "body_too_large"
        assert "NOTIF_MAX_BODY" in response.json()["reason"] and str(limit) in response.json()["reason"]


def test_a_body_within_the_limit_is_served(client):
    body = {"channels": {"email": False}, "types": {}, "type_channels": {}}
    padded = b'{"channels": {"email": false}, "types": {}, "type_channels": {}}'.ljust(LIMIT, b" ")
    response = client.put("/api/preferences", content=padded, headers={**auth("u1"), "content-type": "application/json"})
    assert response.status_code == 200 and response.json() == body


def test_a_streamed_body_without_a_length_is_counted(client):
    def chunks():
        for _ in range(8):
            yield b" " * 200

    response = client.put("/api/preferences", content=chunks(), headers={**auth("u1"), "content-type": "application/json"})
    assert "content-length" not in response.request.headers  # sent chunked
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"


@pytest.mark.parametrize("headers", [[(b"transfer-encoding", b"chunked")],
                                     [(b"content-length", b"10"), (b"transfer-encoding", b"chunked")]],
                         ids=["chunked", "chunked with a small content-length"])
def test_counting_stops_the_route_reading_at_the_chunk_that_passes_the_limit(headers):
    """BodyLimit on its own: chunks of a body framed as chunked arrive one by one."""
    chunks = [b"a" * 400, b"b" * 400, b"c" * 400, b"d" * 400]
    read: list[bytes] = []
    sent: list[dict] = []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            read.append(message["body"])
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"the route's answer"})

    async def receive():
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(BodyLimit(app, LIMIT)(scope, receive, send))
    assert read == [b"a" * 400, b"b" * 400]  # the third chunk passes 1024: the route never sees it
    assert sent[0]["status"] == 413 and len(sent) == 2  # and its own answer goes nowhere
    assert b"body_too_large" in sent[1]["body"]


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or b"body_too_large" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        return answer


def test_notif_serve_refuses_a_chunked_upload_over_the_default_limit(web):
    """Over a real socket: 64 KiB by default, in 8 KiB chunks, no Content-Length."""
    head = (f"PUT /api/preferences HTTP/1.1\r\nHost: x\r\nAuthorization: {auth('u1')['Authorization']}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    chunk = b"2000\r\n" + b" " * 0x2000 + b"\r\n"
    answer = _raw(web["port"], head + chunk * 9 + b"0\r\n\r\n")  # 72 KiB
    assert answer.startswith(b"HTTP/1.1 413") and b"body_too_large" in answer
    small = _raw(web["port"], head + b"2\r\n{}\r\n0\r\n\r\n")
    assert small.startswith(b"HTTP/1.1 200")
    # a small Content-Length beside the chunked framing (uvicorn's parser refuses the pair; BodyLimit counts it too)
    smuggled = _raw(web["port"], head.replace(b"Transfer-Encoding", b"Content-Length: 2\r\nTransfer-Encoding")
                    + chunk * 9 + b"0\r\n\r\n")
    assert smuggled.startswith((b"HTTP/1.1 413", b"HTTP/1.1 400")), smuggled[:200]


def test_the_openapi_document_says_so(client):
    for path, operations in client.app.openapi()["paths"].items():
        for method, operation in operations.items():
            assert operation["responses"]["413"]["description"], (method, path)
