"""The error hierarchy: every failure is either worth retrying or not.

``TransientError`` (network, timeouts, a database restart, HTTP 429/5xx) is retried with
backoff; ``PermanentError`` (bad input, unknown template, missing variable) never is: it
goes to a dead letter at once, carrying a reason a human can act on.
"""
from __future__ import annotations

import datetime as dt
from email.utils import parsedate_to_datetime


class NotifError(Exception):
    """Root of notif's own errors."""


class ConfigError(NotifError):
    """The environment is incomplete or wrong; the message says what to set."""


class DeliveryError(NotifError):
    """A notification could not be stored or delivered.

    ``reason`` is the sentence a dead-letter entry shows; ``field`` names the input field
    at fault, when there is one.
    """

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class TransientError(DeliveryError):
    """May succeed later: retry with backoff. ``retry_after`` (seconds) when the peer said."""

    def __init__(self, reason: str, *, field: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason, field=field)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """Will never succeed as it is: dead-letter now, do not retry."""


class Skipped(NotifError):
    """Nothing to do for this channel (no push subscription, no email address): recorded, not retried.

    ``code`` is what the delivery row keeps and the trace answers (a :mod:`notif.reasons` code
    such as ``no_push_subscription``; at most 32 characters, else ``skipped``)."""

    def __init__(self, reason: str, code: str = "skipped") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code if 0 < len(code) <= 32 else "skipped"


class InvalidMessage(PermanentError):
    """The input message is not valid JSON or breaks the schema; ``field`` names where."""


class TemplateError(PermanentError):
    """Unknown template, or a template that fails to render (e.g. a missing variable)."""


# -- classifying what the outside world throws at us ------------------------------------
def from_http_status(status: int, reason: str = "", retry_after: str | float | None = None) -> TransientError | PermanentError:
    """An HTTP answer as a notif error: 429 and 5xx may pass, other 4xx will not."""
    text = f"HTTP {status}" + (f": {reason}" if reason else "")
    if status == 429 or status >= 500 or status == 408:
        return TransientError(text, retry_after=parse_retry_after(retry_after))
    return PermanentError(text)


def from_smtp_code(code: int, message: str = "") -> TransientError | PermanentError:
    """An SMTP reply as a notif error: 4xx is a temporary failure, 5xx a permanent one."""
    text = f"SMTP {code}" + (f": {message}" if message else "")
    return TransientError(text) if 400 <= code < 500 else PermanentError(text)


def parse_retry_after(value: str | float | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if value is None or value == "":
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    try:
        when = parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def classify(exc: BaseException) -> DeliveryError:
    """Any exception as a notif error, with a reason; what we do not recognise is transient.

    (Unknown failures are retried a bounded number of times, then dead-lettered with
    their last error, so a bug shows up in the dead letters instead of looping forever.)
    """
    if isinstance(exc, DeliveryError):
        return exc
    reason = f"{type(exc).__name__}: {exc}"
    return TransientError(reason)
