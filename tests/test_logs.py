"""Tokens never reach a log line: the real `notif serve`, access log on, asked every way a token travels."""
import socket

import httpx
import pytest

from helpers import SSE, wait_until
from notif.auth import make_token


def websocket_upgrade(base: str, target: str) -> bytes:
    """An upgrade request (uvicorn logs those on uvicorn.error, path and query included)."""
    host, port = base.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        return sock.recv(4096)


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_no_token_in_any_log_line(processes, log_format):
    processes.env["NOTIF_LOG_FORMAT"] = log_format
    base = processes.start_web()
    secret = processes.env["NOTIF_JWT_SECRET"]
    jwt = make_token(secret, "logged")
    not_a_jwt = "opaque-credential-4c1f9e"  # whatever a client puts in ?token=, JWT-shaped or not
    with httpx.Client(base_url=base, timeout=httpx.Timeout(10, read=10)) as http:
        assert http.get("/api/notifications", params={"token": jwt}).status_code == 200
        assert http.get("/api/notifications", headers={"Authorization": f"Bearer {jwt}"}).status_code == 200
        assert http.get(f"/api/notifications?%74oken={jwt}").status_code == 200  # the server decodes the name
        assert http.get("/api/notifications", params={"token": not_a_jwt}).status_code == 401
        assert http.get("/api/notifications", headers={"Authorization": f"Bearer {not_a_jwt}"}).status_code == 401
        with http.stream("GET", "/events", params={"token": jwt, "last_event_id": "0"}) as response:
            assert response.status_code == 200
            SSE(response).until_comment("connected")
    assert websocket_upgrade(base, f"/events?token={jwt}")  # answered (refused: no WebSocket route)

    def logged_all():
        text = processes.log("web")
        return text if text.count("/api/notifications") >= 5 and "WebSocket" in text and text.count("/events") >= 2 \
            else None
    lines = wait_until(logged_all, 15, message="the access log lines of every request").splitlines()

    leaks = [line for line in lines if jwt in line or not_a_jwt in line or jwt.split(".")[1] in line]
    assert not leaks
    assert any("/events?token=[redacted]&last_event_id=0 HTTP/1.1" in line for line in lines)
    assert any("WebSocket /events?token=[redacted]" in line for line in lines)
    assert any("?%74oken=[redacted]" in line for line in lines)
