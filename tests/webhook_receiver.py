"""A host app's webhook endpoint for the tests: a threaded HTTP server on loopback that checks every
request with the official Standard Webhooks library (an implementation of the spec that is not
notif's) and records what it got, by webhook-id.

    receiver = Receiver(SECRET)             # answers 204 to every valid request
    receiver.status = 503                   # or a function (payload) -> status
    receiver.down(); receiver.up()          # closed port (connection refused), then back on the same port
"""
from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError

from helpers import free_port

SECRET = "whsec_" + base64.b64encode(b"notif-test-webhook-signing-key-32b").decode()


@dataclass
class Request:
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    payload: dict | None  # the verified JSON (None: the signature did not verify)
    error: str | None = None

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


class Receiver:
    def __init__(self, secret: str = SECRET, port: int | None = None) -> None:
        self.verifier = Webhook(secret)
        self.status: int | Callable[[dict], int] = 204
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.port = port or free_port()
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/notif"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint would

            def setup(self):
                super().setup()
                with receiver.lock:
                    receiver._connections.add(self.connection)

            def finish(self):
                with receiver.lock:
                    receiver._connections.discard(self.connection)
                super().finish()

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    payload = receiver.verifier.verify(body, headers)
                    error = None
                except WebhookVerificationError as exc:
                    payload, error = None, str(exc)
                status = 401 if payload is None else (
                    receiver.status(payload) if callable(receiver.status) else receiver.status)
                with receiver.lock:
                    receiver.requests.append(Request(headers, body, status, payload, error))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        """Stop listening and drop the open (keep-alive) connections: connections are refused until :meth:`up`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self.lock:
            open_now = list(self._connections)
        for conn in open_now:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- what it got ---------------------------------------------------------------------
    def all(self) -> list[Request]:
        with self.lock:
            return list(self.requests)

    def unverified(self) -> list[Request]:
        return [r for r in self.all() if r.payload is None]

    def delivered(self) -> dict[str, list[Request]]:
        """Requests the receiver accepted (2xx), by webhook-id."""
        got: dict[str, list[Request]] = {}
        for r in self.all():
            if r.payload is not None and 200 <= r.status < 300:
                got.setdefault(r.webhook_id, []).append(r)
        return got

    def events(self, type_: str | None = None) -> list[dict]:
        """The accepted events (one per webhook-id), optionally of one type."""
        found = [requests[0].payload for requests in self.delivered().values()]
        return [p for p in found if p is not None and (type_ is None or p["type"] == type_)]

    def close(self) -> None:
        self.down()


def body_of(request: Request) -> dict:
    return json.loads(request.body)
