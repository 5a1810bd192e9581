"""The error hierarchy: every failure is either worth retrying or not.

``TransientError`` (network, timeouts, a database restart, HTTP 429/5xx) is retried with
backoff; ``PermanentError`` (bad input, unknown template, missing variable) never is: it
goes to a dead letter at once, carrying a reason a human can act on.
"""
from __future__ import annotations


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


class InvalidMessage(PermanentError):
    """The input message is not valid JSON or breaks the schema; ``field`` names where."""


class TemplateError(PermanentError):
    """Unknown template, or a template that fails to render (e.g. a missing variable)."""
