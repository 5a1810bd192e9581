"""How each ``NOTIF_*`` setting's text is read and checked (:mod:`notif.config` declares them).

Each reader takes the variable's text and returns the typed value, or raises ValueError with
a message that names the form expected (:func:`notif.config.load_settings` adds the variable's
name, and masks a secret's value); ``check_webhooks`` checks settings that only make sense
together.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError
from .outbound import Allowance, OutboundPolicy, OutboundRefused

PRIORITIES = ("high", "normal", "low")


def weights(text: str) -> dict[str, int]:
    weights: dict[str, int] = {}
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep or name not in PRIORITIES or not value.isdigit() or int(value) < 1:
            raise ValueError(f"expected high=N,normal=N,low=N with N >= 1, got {text!r}")
        weights[name] = int(value)
    missing = set(PRIORITIES) - set(weights)
    if missing:
        raise ValueError(f"missing weight for {', '.join(sorted(missing))} in {text!r}")
    return weights


def csv_list(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def outbound_allow(text: str) -> tuple[str, ...]:
    entries = csv_list(text)
    Allowance.parse(entries)  # ValueError names a bad entry
    return entries


_ORIGIN_FORM = ("expected an origin: scheme://host[:port] with http or https, no path, no trailing slash, "
                "no wildcard, e.g. https://app.example.com or http://localhost:3000")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(entry: str) -> str:
    """One CORS origin, as a browser sends it in ``Origin`` (lower case, no default port); ValueError otherwise."""
    parts = urlsplit(entry)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if "*" in entry:
        problem = "a wildcard is not allowed: list each origin"
    elif parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        problem = "it needs http:// or https:// and a host"
    elif parts.path or parts.query or parts.fragment or entry.endswith(("?", "#")):
        problem = "it has a path, query or fragment; an origin has none, not even a trailing slash"
    elif parts.username is not None or parts.password is not None:
        problem = "it has a user or password"
    elif port == -1 or port == 0 or parts.netloc.endswith(":"):
        problem = "its port is not a number from 1 to 65535"
    else:
        scheme = parts.scheme.lower()
        host = parts.netloc.lower() if port is None else parts.netloc.rsplit(":", 1)[0].lower()
        return f"{scheme}://{host}" + ("" if port in (None, _DEFAULT_PORTS[scheme]) else f":{port}")
    raise ValueError(f"{entry!r} is not an origin ({problem}); {_ORIGIN_FORM}")


def origins(text: str) -> tuple[str, ...] | None:
    """``NOTIF_CORS_ORIGINS``: origins separated by commas and/or spaces; None when there are none."""
    entries = [part for part in re.split(r"[\s,]+", text) if part]
    return tuple(dict.fromkeys(_origin(entry) for entry in entries)) or None


def webhook_urls(text: str) -> tuple[str, ...]:
    """``NOTIF_WEBHOOK_URL``: one or several URLs, separated by commas and/or spaces (each checked with the rest
    of the settings, in :func:`_check_webhooks`)."""
    return tuple(dict.fromkeys(part for part in re.split(r"[\s,]+", text) if part))


def webhook_timeout(text: str) -> float:
    """Seconds for a webhook receiver's answer: more than 0, at most 50 (the sender's actor has 60 in all)."""
    value = float(text)
    if not 0 < value <= 50:
        raise ValueError(f"expected seconds above 0 and at most 50, got {text!r}")
    return value


def check_webhooks(values: dict[str, Any]) -> None:
    """The webhook settings together: a secret for any URL, and each URL fit for the outbound policy (http(s),
    a host, no credentials; plain http only to a host NOTIF_OUTBOUND_ALLOW lists). ConfigError names the URL."""
    urls = values["webhook_urls"]
    if not urls:
        return
    if not values["webhook_secret"]:
        raise ConfigError("NOTIF_WEBHOOK_URL is set but NOTIF_WEBHOOK_SECRET is not: webhooks are signed (Standard "
                          "Webhooks); set it to whsec_ and 24 to 64 random bytes in base64, e.g. "
                          "`python -c 'import base64, secrets; "
                          "print(\"whsec_\" + base64.b64encode(secrets.token_bytes(32)).decode())'`")
    allow = Allowance.parse(values["outbound_allow"])
    policy = OutboundPolicy(allow=allow)
    for url in urls:
        try:
            scheme, host, port = policy.parse(url)
        except OutboundRefused as exc:
            raise ConfigError(f"NOTIF_WEBHOOK_URL: {url!r} cannot be used: {exc.reason}") from None
        if scheme == "http" and not (allow.host(host, port) or _allowed_literal(allow, host, port)):
            raise ConfigError(f"NOTIF_WEBHOOK_URL: {url!r} uses plain http, which goes only to a host "
                              f"NOTIF_OUTBOUND_ALLOW lists (add `{host}` there, or use https)")


def _allowed_literal(allow: Allowance, host: str, port: int) -> bool:
    try:
        return allow.address(ipaddress.ip_address(host.strip("[]")), port)
    except ValueError:
        return False


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true/false, got {text!r}")


_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
          "d": 86400, "day": 86400}
_LIMIT = re.compile(r"^(\d+)/(\d*)([a-z]+?)s?$")


def rate_limits(text: str) -> dict[str, tuple[int, float]]:
    """``push=10/minute,email=20/hour`` → {channel: (count, period seconds)}; also ``5/30s``."""
    limits: dict[str, tuple[int, float]] = {}
    if text.strip().lower() in ("off", "none"):
        return limits
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        channel, sep, spec = part.partition("=")
        match = _LIMIT.match(spec.lower()) if sep and channel else None
        unit = match and (_UNITS.get(match.group(3)) or _UNITS.get(match.group(3) + "s"))
        if not match or not unit or int(match.group(1)) < 1:
            raise ValueError(f"expected channel=COUNT/PERIOD such as push=10/minute or email=20/hour "
                             f"(periods: s, min, h, day, or e.g. 30s), got {part!r}")
        limits[channel] = (int(match.group(1)), float(int(match.group(2) or 1) * unit))
    return limits


FEATURES = ("sse", "push", "email", "digests", "rate_limits", "scheduling", "priorities")
FEATURE_OFF = {  # what each flag does when off: the old worker's behaviour, never an error
    "sse": "no live events: /events answers 404, the inbox still fills and can be polled",
    "push": "push deliveries are recorded as skipped",
    "email": "email deliveries are recorded as skipped",
    "digests": "batch_key and [digest] windows are ignored: every notification goes out on its own",
    "rate_limits": "no per-user limits: nothing is deferred",
    "scheduling": "send_at is ignored: scheduled notifications go out at once",
    "priorities": "one priority: every message is NORMAL and the poller shares receives equally",
}


def features(text: str) -> frozenset[str]:
    """``all`` (default), ``none``, a list (``sse,push``), or ``all,-digests`` to take some away."""
    items = [p.strip().lower() for p in text.split(",") if p.strip()]
    on: set[str] = set()
    for item in items:
        name = item.lstrip("-+")
        if name in ("all", "none"):
            on = set(FEATURES) if name == "all" and not item.startswith("-") else set()
        elif name in FEATURES:
            (on.discard if item.startswith("-") else on.add)(name)
        else:
            close = [f for f in FEATURES if f.startswith(name[:3])]
            raise ValueError(f"unknown feature {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                             + f"; features: {', '.join(FEATURES)}, or all / none")
    return frozenset(on)


def tls_verify(text: str) -> str:
    value = text.strip().lower()
    if value not in ("required", "none"):
        raise ValueError(f"expected `required` or `none`, got {text!r}")
    return value


def vapid_seconds(text: str) -> int:
    """A VAPID token's lifetime: RFC 8292 allows at most 24 hours."""
    value = count(text)
    if value > 86400:
        raise ValueError(f"a VAPID token lives at most 86400 seconds (RFC 8292), got {text!r}")
    return value


def deliver_batch(text: str) -> int:
    """Deliveries per ``deliver_many`` message: 1 to 100 (a batch's claim and INSERT stay small statements)."""
    value = int(text)
    if not 1 <= value <= 100:
        raise ValueError(f"NOTIF_DELIVER_BATCH is 1 to 100, got {text!r}")
    return value


def count(text: str) -> int:
    """A whole number >= 0 (a cap of 0 means no cap)."""
    value = int(text)
    if value < 0:
        raise ValueError(f"expected a whole number >= 0, got {text!r}")
    return value


def byte_size(text: str) -> int:
    """A size in bytes: ``65536``, ``64k``/``64KiB`` or ``1m``/``1MiB``."""
    match = re.fullmatch(r"(\d+)\s*(k|kb|kib|m|mb|mib)?", text.strip().lower())
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"expected a size in bytes such as 65536, 64k or 1m, got {text!r}")
    return int(match.group(1)) * {None: 1, "k": 1024, "m": 1024 * 1024}[match.group(2) and match.group(2)[0]]


def flag(text: str) -> bool | None:
    return None if text.strip().lower() in ("", "default") else boolean(text)
