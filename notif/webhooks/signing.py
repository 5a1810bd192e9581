"""Signing webhooks as Standard Webhooks says (https://www.standardwebhooks.com, symmetric ``v1``).

Each attempt carries three headers: ``webhook-id`` (the event's id, the same on every retry and
replay, so a receiver can drop a duplicate), ``webhook-timestamp`` (the attempt's time, unix seconds)
and ``webhook-signature``: ``v1,`` and the base64 HMAC-SHA256, keyed with the secret's bytes (the
base64 after ``whsec_``), of ``{id}.{timestamp}.{body}``, where ``body`` is exactly the bytes sent.

Rotating the secret: ``NOTIF_WEBHOOK_SECRET`` may hold several, comma-separated (the new one
first). Each attempt is then signed with every one of them — the header is the spec's
space-separated list of ``v1,…`` signatures — so a receiver verifies with either the old or
the new secret while it moves from one to the other; drop the old one from the setting once
every receiver has the new one.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid

PREFIX = "whsec_"
MIN_BYTES, MAX_BYTES = 24, 64  # the spec's range for a symmetric secret


def parse_secret(text: str) -> str:
    """``NOTIF_WEBHOOK_SECRET`` as given (several: comma-separated), once each is ``whsec_`` and 24 to 64 bytes of
    base64; returned with the separators normalised to ``,``.

    (A ValueError here never quotes the value: it is a secret.)
    """
    values = [part.strip() for part in text.split(",")]
    if len(values) > 1:
        for number, value in enumerate(values, 1):
            if not value:
                raise ValueError(f"secret {number} of {len(values)} (comma-separated) is empty")
            try:
                _parse_one(value)
            except ValueError as exc:
                raise ValueError(f"secret {number} of {len(values)} (comma-separated): {exc}") from None
        return ",".join(values)
    return _parse_one(values[0])


def _parse_one(value: str) -> str:
    if not value.startswith(PREFIX):
        raise ValueError(f"a webhook secret starts with `{PREFIX}`, followed by the secret's bytes in base64")
    key = secret_key(value)
    if not MIN_BYTES <= len(key) <= MAX_BYTES:
        raise ValueError(f"the secret after `{PREFIX}` decodes to {len(key)} bytes; Standard Webhooks asks for "
                         f"{MIN_BYTES} to {MAX_BYTES} random bytes")
    return value


def secret_key(secret: str) -> bytes:
    """The HMAC key: the base64 after ``whsec_`` decoded (padding optional); ValueError if it is not base64."""
    encoded = secret.strip().removeprefix(PREFIX)
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the secret after `{PREFIX}` is not base64") from None


def secret_keys(setting: str) -> tuple[bytes, ...]:
    """The HMAC keys of a (parsed) ``NOTIF_WEBHOOK_SECRET``: one per comma-separated secret, in order."""
    return tuple(secret_key(part) for part in setting.split(","))


def signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(key: bytes | tuple[bytes, ...], webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt; with several keys, one signature each."""
    keys = (key,) if isinstance(key, bytes) else key
    return {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(signature(k, webhook_id, timestamp, body) for k in keys)}


def new_webhook_id() -> str:
    """A fresh event id: ``msg_`` and 32 hex digits (random, so no two deployments or restores reuse one;
    no ``.``, which the signed string uses as its separator)."""
    return f"msg_{uuid.uuid4().hex}"
