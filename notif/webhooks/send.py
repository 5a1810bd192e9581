"""Sending one webhook event: one attempt, signed, through the outbound policy, and its outcome.

The row is claimed (``pending`` → ``sending``) before the request, so two copies of its
Dramatiq message (a retry, a sweep) cannot both send. The request:

- goes only to an endpoint ``NOTIF_WEBHOOK_URL`` lists *now* (a row whose endpoint the operator
  has since removed is dead-lettered, never sent), through :mod:`notif.outbound`'s policy: the
  configured https hosts are allowed as ``NOTIF_OUTBOUND_ALLOW`` entries would be (the operator
  named them; TLS still checks the certificate against the name), plain http only to a host
  ``NOTIF_OUTBOUND_ALLOW`` lists, never a redirect, never an environment proxy;
- is the row's ``body``, byte for byte, with the Standard Webhooks headers of this attempt
  (:mod:`.signing`): the same ``webhook-id`` on every attempt, a fresh ``webhook-timestamp``;
- uses one keep-alive session per process and short timeouts (``NOTIF_WEBHOOK_TIMEOUT``; at
  most 5 s to connect); at most 64 KiB of the answer is read.

The answer, as the spec suggests: 2xx is delivered; 429, 408, 5xx, timeouts and connection
errors are transient (retried with the retry policy's backoff and jitter, ``Retry-After``
honoured, until ``NOTIF_WEBHOOK_MAX_ATTEMPTS``); 410 Gone is permanent at once (the receiver
asks for no more: the event is dead-lettered and the log says to remove the URL), as are a 3xx
(redirects are not followed) and every other 4xx. A dead letter keeps its reason and its
webhook-id; ``notif dlq replay webhook:<id>`` sends it again.
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from ..config import Settings
from ..deliver import RetryLater
from ..errors import DeliveryError, PermanentError, TransientError, from_http_status
from ..models import WebhookEvent, utcnow
from ..outbound import Allowance, OutboundPolicy, OutboundRefused, OutboundSession
from ..retries import RetryPolicy
from ..runtime import Runtime
from . import states
from .signing import headers, secret_keys

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # seconds, at most
MAX_ANSWER = 65536  # bytes of an answer read (a reason for the log; the rest is dropped)
EARLY = 1.0  # seconds: a copy arriving this much before its retry is due waits for it (or for the sweep)
USER_AGENT = "notif-webhooks (Standard Webhooks)"


def shown(url: str) -> str:
    """An endpoint as logs and dead letters show it: no query or fragment (they may carry a token)."""
    return urlsplit(url)._replace(query="", fragment="").geturl()


def _allowance(settings: Settings) -> Allowance:
    """NOTIF_OUTBOUND_ALLOW, and each https webhook endpoint's host:port (the operator named it)."""
    entries = list(settings.outbound_allow)
    for url in settings.webhook_urls:
        parts = urlsplit(url)
        if parts.scheme.lower() == "https" and parts.hostname:
            host = parts.hostname.rstrip(".")
            entries.append(f"[{host}]:{parts.port or 443}" if ":" in host else f"{host}:{parts.port or 443}")
    return Allowance.parse(entries)


@dataclass
class Sender:
    """A process's webhook client: the endpoints, the key, the policies and one pooled session."""

    endpoints: frozenset[str]
    keys: tuple[bytes, ...]  # one per secret in NOTIF_WEBHOOK_SECRET (several while rotating)
    session: OutboundSession
    retry: RetryPolicy
    timeout: tuple[float, float]

    @classmethod
    def from_settings(cls, settings: Settings) -> Sender:
        return cls(endpoints=frozenset(settings.webhook_urls),
                   keys=secret_keys(settings.webhook_secret) if settings.webhook_secret else (),
                   session=OutboundSession(OutboundPolicy(allow=_allowance(settings),
                                                          plain=Allowance.parse(settings.outbound_allow))),
                   retry=RetryPolicy(max_attempts=max(1, settings.webhook_max_attempts), base_seconds=2.0,
                                     cap_seconds=3600.0),
                   timeout=(min(CONNECT_TIMEOUT, settings.webhook_timeout), settings.webhook_timeout))

    def post(self, event: WebhookEvent) -> int:
        """One attempt; the 2xx status, or a PermanentError / TransientError saying why not."""
        if event.endpoint not in self.endpoints:
            raise PermanentError("its endpoint is no longer in NOTIF_WEBHOOK_URL; add it back and replay, or purge")
        if not self.keys:  # (the settings refuse a URL without a secret; a row may outlive both)
            raise PermanentError("NOTIF_WEBHOOK_SECRET is not set")
        body = event.body.encode()
        signed = headers(self.keys, event.webhook_id, int(time.time()), body)
        try:
            response = self.session.post(event.endpoint, data=body, timeout=self.timeout, stream=True, headers={
                **signed, "content-type": "application/json", "user-agent": USER_AGENT})
        except OutboundRefused as exc:
            raise PermanentError(f"refused by the outbound policy: {exc.reason}") from None
        except requests.Timeout:
            raise TransientError(f"no answer within {self.timeout[1]:g} s") from None
        except requests.RequestException as exc:
            raise TransientError(f"could not reach the endpoint ({type(exc).__name__})") from None
        try:
            answer = response.raw.read(MAX_ANSWER, decode_content=True) or b""
        except Exception:  # the status is what counts
            answer = b""
        finally:
            response.close()
        status = response.status_code
        if 200 <= status < 300:
            return status
        text = answer[:200].decode(errors="replace").strip()
        if status == 410:
            raise PermanentError("HTTP 410 Gone: the receiver wants no more webhooks; remove its URL from "
                                 "NOTIF_WEBHOOK_URL")
        if 300 <= status < 400:
            raise PermanentError(f"HTTP {status}: redirects are not followed; set NOTIF_WEBHOOK_URL to where it "
                                 f"points ({response.headers.get('location') or 'no Location'})")
        raise from_http_status(status, text, response.headers.get("retry-after"))


@functools.cache
def sender_for(settings: Settings) -> Sender:
    """The process's sender for these settings (made once: its session keeps connections alive)."""
    return Sender.from_settings(settings)


def send(rt: Runtime, event_id: int) -> str:
    """One attempt at one event; returns the state it ends in, or raises RetryLater (a transient failure)."""
    event = WebhookEvent.get_or_none(WebhookEvent.id == event_id)
    if event is None:
        log.warning("webhook event not found (deleted?)", extra={"webhook_event_id": event_id})
        return "missing"
    context = {"webhook_event_id": event.id, "webhook_id": event.webhook_id, "event_type": event.type,
               "endpoint": shown(event.endpoint), "correlation_id": event.correlation_id}
    if event.status != states.PENDING:
        log.info("webhook event already handled", extra={**context, "status": event.status})
        return event.status
    if event.next_attempt_at is not None and (event.next_attempt_at - utcnow()).total_seconds() > EARLY:
        return "not-due"  # an early copy: its own retry message, or the sweep, sends it when due
    if not states.claim(event_id):
        return "claimed-elsewhere"
    sender = sender_for(rt.settings)
    attempts = event.attempts + 1
    started = time.monotonic()
    error: DeliveryError
    try:
        status = sender.post(event)
    except DeliveryError as exc:
        error = exc
    except Exception as exc:  # a bug shows up in the dead letters after the retries, not as a loop
        error = TransientError(f"{type(exc).__name__}: {exc}")
    else:
        now = utcnow()
        states.move(event_id, states.SENDING, states.SENT, attempts=attempts, sent_at=now, last_error=None,
                    next_attempt_at=None)
        seconds = time.monotonic() - started
        rt.recorder.webhook(event.type, "sent", seconds, (now - event.created_at).total_seconds())
        log.info("webhook sent", extra={**context, "status_code": status, "attempts": attempts,
                                        "duration_ms": round(seconds * 1000, 1)})
        return states.SENT
    seconds = time.monotonic() - started
    kind = "permanent" if isinstance(error, PermanentError) else "transient"
    rt.recorder.error("webhook", kind, _label(error))
    if isinstance(error, PermanentError) or sender.retry.exhausted(attempts):
        reason = error.reason if isinstance(error, PermanentError) else \
            f"gave up after {attempts} attempts; last error: {error.reason}"
        states.move(event_id, states.SENDING, states.FAILED, attempts=attempts, last_error=reason[:2000],
                    next_attempt_at=None)
        rt.recorder.webhook(event.type, "failed", seconds)
        log.error("webhook dead-lettered", extra={**context, "reason": reason, "attempts": attempts,
                                                  "error_kind": kind})
        return states.FAILED
    delay = sender.retry.delay(attempts, error.retry_after if isinstance(error, TransientError) else None)
    states.move(event_id, states.SENDING, states.PENDING, attempts=attempts, last_error=error.reason[:2000],
                next_attempt_at=utcnow() + dt.timedelta(seconds=delay))
    rt.recorder.webhook(event.type, "retry", seconds)
    log.warning("webhook failed; will retry", extra={**context, "reason": error.reason, "attempts": attempts,
                                                     "retry_in_s": round(delay, 1)})
    raise RetryLater(delay, error.reason)


def _label(error: DeliveryError) -> str:
    """A short, bounded name for an error (the ``error`` label of notif_errors_total)."""
    reason = error.reason
    if reason.startswith("HTTP "):
        return reason.split(":")[0].replace(" ", "_").lower()
    for prefix, label in (("no answer", "timeout"), ("could not reach", "connection"), ("refused by", "outbound_policy"),
                          ("its endpoint", "endpoint_removed")):
        if reason.startswith(prefix):
            return label
    return "other"
