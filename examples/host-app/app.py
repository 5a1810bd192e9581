"""An example host app: another origin that embeds notif's inbox with one script tag and one element.

It stands for *your* web app. It has its own users (a cookie session: pick a name at /login),
and it mints a short-lived notif token for whoever is signed in, signed with the secret it
shares with notif (NOTIF_JWT_SECRET). notif never sees the app's cookies; the app's own API
(the "Approve" action) never sees notif's token.

    NOTIF_URL=http://127.0.0.1:8000 NOTIF_JWT_SECRET=… python examples/host-app/app.py

Python's standard library only, so it reads as what a host needs in any language: an HS256 JWT
with ``sub`` and ``exp``, a page with two lines, and an endpoint that hands out a fresh token.
Settings: NOTIF_URL (notif's origin), NOTIF_JWT_SECRET (or the ``.notif/jwt_secret`` that
``notif dev`` writes), HOST_PORT (8100), HOST_TOKEN_TTL (seconds a token lives, 600).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import os
import secrets
import sys
import threading
import time
from http import cookies
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Acme Reports</title>
  <link rel="stylesheet" href="/app.css">
  <script src="{notif}/notif-inbox.js" defer></script>
  <script src="/app.js" defer></script>
</head>
<body>
  <nav>
    <strong>Acme Reports</strong>
    <span class="spacer"></span>
    <span id="user">{user}</span>
    <notif-inbox server="{notif}" token="{token}"></notif-inbox>
  </nav>
  <main>
    <h1>Hello, {user}</h1>
    <p>This page is served by the host app on its own origin; the bell is notif's, from {notif}.</p>
    <p>Approved reports: <span id="approved">{approved}</span></p>
  </main>
</body>
</html>
"""

LOGIN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme Reports · sign in</title>
<link rel="stylesheet" href="/app.css"></head>
<body><main><h1>Sign in</h1>
<form method="post" action="/login"><label>User <input name="user" required autofocus></label>
<button type="submit">Sign in</button></form></main></body></html>
"""

# The host's side of token refresh: when notif refuses the token (it expired), fetch a new one with the
# app's own session and hand it to the element, which resumes its live stream where it stopped.
APP_JS = """"use strict";
document.addEventListener("notif-token-expired", async (event) => {
  const response = await fetch("/notif-token", { credentials: "same-origin" });
  if (!response.ok) { location.href = "/login"; return; }
  event.target.token = (await response.json()).token;
});
"""

APP_CSS = """body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d2330; }
nav { display: flex; align-items: center; gap: 12px; padding: 10px 20px; border-bottom: 1px solid #e4e7ec; }
.spacer { flex: 1; } main { padding: 20px; max-width: 48rem; }
"""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(secret: str, user: str, ttl: int) -> str:
    """An HS256 JWT for ``user``: what notif verifies (``sub``, ``exp``)."""
    now = int(time.time())
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps({"sub": user, "iat": now, "exp": now + ttl}).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


class HostApp:
    def __init__(self, notif_url: str, secret: str, ttl: int = 600) -> None:
        self.notif_url = notif_url.rstrip("/")
        self.secret = secret
        self.ttl = ttl
        self.session_key = secrets.token_bytes(32)
        self.approved: dict[str, list[str]] = {}  # user -> report ids approved through a notification's button
        self.tokens_minted = 0
        self.lock = threading.Lock()

    def session(self, user: str) -> str:
        mac = hmac.new(self.session_key, user.encode(), hashlib.sha256).hexdigest()
        return f"{_b64(user.encode())}.{mac}"

    def user_of(self, cookie_header: str | None) -> str | None:
        jar = cookies.SimpleCookie(cookie_header or "")
        if "session" not in jar:
            return None
        encoded, _, mac = jar["session"].value.partition(".")
        try:
            user = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except ValueError:
            return None
        return user if hmac.compare_digest(mac, self.session(user).partition(".")[2]) else None

    def token(self, user: str) -> str:
        with self.lock:
            self.tokens_minted += 1
        return mint(self.secret, user, self.ttl)


def handler_for(app: HostApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args) -> None:  # quiet; errors still go to stderr
            pass

        def _send(self, status: int, body: str | bytes, content_type: str = "text/html; charset=utf-8",
                  headers: dict[str, str] | None = None) -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            user = app.user_of(self.headers.get("Cookie"))
            if path == "/app.js":
                return self._send(200, APP_JS, "text/javascript; charset=utf-8")
            if path == "/app.css":
                return self._send(200, APP_CSS, "text/css; charset=utf-8")
            if path == "/login":
                return self._send(200, LOGIN)
            if user is None:
                return self._send(303, "", headers={"Location": "/login"})
            if path == "/":
                with app.lock:
                    approved = ", ".join(app.approved.get(user, [])) or "none"
                return self._send(200, PAGE.format(notif=html.escape(app.notif_url), user=html.escape(user),
                                                   token=html.escape(app.token(user)), approved=html.escape(approved)))
            if path == "/notif-token":
                return self._send(200, json.dumps({"token": app.token(user)}), "application/json")
            if path.startswith("/reports/"):
                return self._send(200, f"<h1>Report {html.escape(path.rsplit('/', 1)[-1])}</h1>")
            return self._send(404, "not found", "text/plain")

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            length = min(int(self.headers.get("Content-Length") or 0), 4096)
            body = self.rfile.read(length).decode(errors="replace")
            if path == "/login":
                user = (parse_qs(body).get("user") or [""])[0].strip()[:100]
                if not user:
                    return self._send(400, LOGIN)
                return self._send(303, "", headers={"Location": "/",
                                                    "Set-Cookie": f"session={app.session(user)}; HttpOnly; SameSite=Lax; Path=/"})
            user = app.user_of(self.headers.get("Cookie"))
            parts = path.strip("/").split("/")  # /api/reports/<id>/approve: an action's api_endpoint
            if len(parts) == 4 and parts[:2] == ["api", "reports"] and parts[3] == "approve":
                if user is None:  # the host's own API: the host's session, never notif's token
                    return self._send(401, json.dumps({"error": "sign in"}), "application/json")
                with app.lock:
                    app.approved.setdefault(user, []).append(parts[2])
                return self._send(200, json.dumps({"approved": parts[2]}), "application/json")
            return self._send(404, "not found", "text/plain")

    return Handler


def serve(app: HostApp, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), handler_for(app))
    server.daemon_threads = True
    return server


def main() -> int:
    secret = os.environ.get("NOTIF_JWT_SECRET")
    if not secret and Path(".notif/jwt_secret").exists():
        secret = Path(".notif/jwt_secret").read_text().strip()
    if not secret:
        print("host-app: set NOTIF_JWT_SECRET (the secret notif verifies tokens with), or run this in the folder "
              "where `notif dev` runs (it keeps one in .notif/jwt_secret)", file=sys.stderr)
        return 2
    notif_url = os.environ.get("NOTIF_URL", "http://127.0.0.1:8000")
    port = int(os.environ.get("HOST_PORT", "8100"))
    app = HostApp(notif_url, secret, int(os.environ.get("HOST_TOKEN_TTL", "600")))
    server = serve(app, port)
    print(f"host-app: http://127.0.0.1:{port}/ embeds notif from {notif_url} "
          f"(notif must list http://127.0.0.1:{port} in NOTIF_CORS_ORIGINS)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
