"""A push service on loopback for the tests: checks the VAPID JWT and decrypts the aes128gcm payload.

It plays both sides a real push service connects: it accepts what a push service accepts
(POST to the subscription's endpoint) and opens it as the subscribed browser would, with
the subscriber's private key. ``/push/<name>?status=410`` answers with that status instead.
It speaks HTTP/1.1 with keep-alive, as push services do, and counts the TCP connections it
accepted (``connections``) and keeps each request's ``Authorization`` header (``authorizations``).
"""
from __future__ import annotations

import base64
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from helpers import free_port


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Subscriber:
    """A browser's side of a subscription: its keys, and what it received."""

    def __init__(self, endpoint: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.endpoint = endpoint
        self.received: list[dict] = []
        self.headers: list[dict] = []

    def subscription(self) -> dict:
        public = self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                    serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": self.endpoint, "keys": {"p256dh": b64e(public), "auth": b64e(self.auth)}}


class PushService:
    def __init__(self, vapid_public_key: str) -> None:
        self.vapid_public_key = vapid_public_key
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.subscribers: dict[str, Subscriber] = {}
        self.errors: list[str] = []
        self.requests = 0
        self.connections = 0
        self.authorizations: list[str] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: a client may send many requests on one connection

            def do_POST(self):
                service.requests += 1
                service.authorizations.append(self.headers.get("Authorization", ""))
                url = urlparse(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = int(parse_qs(url.query).get("status", ["201"])[0])
                if status == 201:
                    try:
                        service.accept(url.path, self.headers, body)  # (names case-insensitive)
                    except Exception as exc:  # recorded for the test to see
                        service.errors.append(f"{type(exc).__name__}: {exc}")
                        status = 400
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "30")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            def process_request(self, request, client_address):
                service.connections += 1
                super().process_request(request, client_address)

        self.server = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def subscriber(self, name: str, status: int | None = None) -> Subscriber:
        endpoint = f"{self.origin}/push/{name}" + (f"?status={status}" if status else "")
        sub = Subscriber(endpoint)
        self.subscribers[f"/push/{name}"] = sub
        return sub

    def accept(self, path: str, headers, body: bytes) -> None:
        sub = self.subscribers[path]
        scheme, _, params = headers.get("Authorization", "").partition(" ")
        assert scheme == "vapid", f"Authorization scheme {scheme!r}"
        fields = dict(p.strip().split("=", 1) for p in params.split(","))
        assert fields["k"] == self.vapid_public_key, "signed with another VAPID key"
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64d(fields["k"]))
        claims = jwt.decode(fields["t"], public, algorithms=["ES256"], audience=self.origin)
        assert claims["exp"] > time.time() and claims["sub"].startswith(("mailto:", "https:"))
        assert headers.get("Content-Encoding") == "aes128gcm"
        plain = http_ece.decrypt(body, private_key=sub.key, auth_secret=sub.auth, version="aes128gcm")
        sub.received.append(json.loads(plain))
        sub.headers.append({k: headers.get(k) for k in ("TTL", "Urgency", "Topic")})

    def close(self) -> None:
        self.server.shutdown()
