"""Logging: one JSON object per line on stdout (Heroku's router reads stdout).

Context travels as ``extra=`` fields (``correlation_id``, ``sqs_message_id``,
``delivery_id``, ``channel``, …). ``NOTIF_LOG_FORMAT=console`` prints a readable line for
humans instead.
"""
from __future__ import annotations

import logging
import re
import sys
from urllib.parse import unquote_plus

from pythonjsonlogger.json import JsonFormatter

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class ConsoleFormatter(logging.Formatter):
    """``time level logger: message key=value …`` for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        base = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = " ".join(f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD)
        text = f"{base} {extras}" if extras else base
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


SECRET_NAMES = frozenset({"token", "access_token", "auth", "authorization", "jwt"})
_QUERY_PAIR = re.compile(r"([?&])([^=&#\s\"']*)=([^&#\s\"']*)")
_BEARER = re.compile(r"(\bbearer\s+)[^\s,;\"']+", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*")  # header.payload.signature; every JWT's header starts `{"`


def _query_pair(match: re.Match) -> str:
    name = unquote_plus(match.group(2)).strip().lower()  # `?%74oken=` is `?token=` to the server
    return f"{match.group(1)}{match.group(2)}=[redacted]" if name in SECRET_NAMES else match.group(0)


def redact(text: str) -> str:
    """Hide credentials in a log line: a URL query's token (EventSource puts the JWT there),
    an ``Authorization: Bearer`` value, and anything shaped like a JWT."""
    if "=" in text:
        text = _QUERY_PAIR.sub(_query_pair, text)
    if "eyJ" in text:
        text = _JWT.sub("[redacted jwt]", text)
    if "earer" in text:
        text = _BEARER.sub(r"\1[redacted]", text)
    return text


class Redacting(logging.Formatter):
    """Wraps the formatter of the one handler every log line goes through, and redacts the
    whole line it makes: message, extra fields and traceback alike. (uvicorn's access log
    puts the path with its query in a line; so do its WebSocket lines, on uvicorn.error.)"""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


def configure_logging(fmt: str = "json", level: str = "INFO", process: str = "") -> None:
    handler = logging.StreamHandler(sys.stdout)
    formatter: logging.Formatter
    if fmt == "console":
        formatter = ConsoleFormatter()
    else:
        formatter = JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"process_type": process} if process else None,
            timestamp=False,
        )
    handler.setFormatter(Redacting(formatter))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("botocore", "boto3", "urllib3", "pika"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
