"""VAPID for Web Push: ``notif vapid`` prints a fresh key pair, ready for a .env file;
:class:`VapidTokens` signs the ``Authorization`` header once per push service and reuses it."""
from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def generate() -> tuple[str, str]:
    """(public key as browsers want it: uncompressed point, private key: raw 32 bytes), base64url."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    private = key.private_numbers().private_value.to_bytes(32, "big")
    return b64url(public), b64url(private)


class VapidTokens:
    """Signed VAPID ``Authorization`` headers, one per (push service origin, subject), reused until near expiry.

    pywebpush signs a new JWT (an ECDSA signature) for every request; a push service accepts the
    same token until its ``exp``, so one process signs once per origin per ``lifetime`` instead.
    A token is replaced when less than a twelfth of its lifetime is left (an hour of the default
    12 hours), so none is sent close to expiring. ``lifetime`` 0: a new token for each request.
    Thread-safe: Dramatiq's worker threads share one instance.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, Vapid] = {}
        self._tokens: dict[tuple[str, str, str], tuple[dict[str, str], int]] = {}

    def headers(self, private_key: str, endpoint: str, subject: str, lifetime: int) -> dict[str, str]:
        """The ``Authorization: vapid t=…, k=…`` header for a push to ``endpoint`` (a fresh dict)."""
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        now = int(self.clock())
        cache = (private_key, audience, subject)
        with self._lock:
            held = self._tokens.get(cache)
            if lifetime and held is not None and held[1] - now > lifetime / 12:
                return dict(held[0])
            key = self._keys.get(private_key)
            if key is None:
                key = self._keys[private_key] = Vapid.from_string(private_key=private_key)
            exp = now + (lifetime or 12 * 3600)
            signed = key.sign({"aud": audience, "exp": exp, "sub": subject})
            if lifetime:
                self._tokens[cache] = (signed, exp)
            return dict(signed)
