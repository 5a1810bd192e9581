"""Logging: one JSON object per line on stdout (Heroku's router reads stdout).

Context travels as ``extra=`` fields (``correlation_id``, ``sqs_message_id``,
``delivery_id``, ``channel``, …). ``NOTIF_LOG_FORMAT=console`` prints a readable line for
humans instead.
"""
from __future__ import annotations

import logging
import re
import sys

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


SECRET_QUERY = re.compile(r"((?:^|[?&])(?:token|access_token|auth)=)[^&\s]*", re.IGNORECASE)


def redact(text: str) -> str:
    """Hide credentials carried in a URL's query (EventSource puts the JWT there)."""
    return SECRET_QUERY.sub(r"\1[redacted]", text)


class RedactQuerySecrets(logging.Filter):
    """For uvicorn's access log, whose third argument is the path with its query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def configure_logging(fmt: str = "json", level: str = "INFO", process: str = "") -> None:
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "console":
        handler.setFormatter(ConsoleFormatter())
    else:
        handler.setFormatter(JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"process_type": process} if process else None,
            timestamp=False,
        ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").addFilter(RedactQuerySecrets())
    for noisy in ("botocore", "boto3", "urllib3", "pika"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
