"""SMTP connections kept per worker thread: one connection carries many messages.

Opening one costs a TCP handshake, EHLO, often STARTTLS (a TLS handshake), LOGIN and QUIT;
:class:`SMTPConnections` does that once per thread and server, and reuses the connection
for the next message until it has been idle ``NOTIF_SMTP_IDLE_SECONDS`` (then it is closed
with QUIT before a fresh one is opened; ``0``: a connection per message, as a plain loop of
smtplib calls does).

A reused connection the server has dropped meanwhile fails at the first command (``MAIL``);
that message is then sent once more on a fresh connection. Only then: a failure after the
server answered ``MAIL`` is raised as it is (the caller's retry decides), so no message is
sent twice by this module. A connection is kept only after a message it carried succeeded.
"""
from __future__ import annotations

import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlparse


class _SMTP(smtplib.SMTP):
    answered_mail = False  # has the server answered MAIL since this flag was cleared?

    def mail(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        reply = super().mail(*args, **kwargs)
        self.answered_mail = True
        return reply


class _SMTP_SSL(smtplib.SMTP_SSL, _SMTP):  # noqa: N801 (smtplib's name)
    pass


def connect(smtp_url: str, timeout: float) -> smtplib.SMTP:
    """A logged-in connection as ``SMTP_URL`` says: smtps (TLS from the start) or STARTTLS when offered."""
    url = urlparse(smtp_url)
    host, port = url.hostname or "localhost", url.port
    client: smtplib.SMTP
    if url.scheme == "smtps":
        client = _SMTP_SSL(host, port or 465, timeout=timeout, context=ssl.create_default_context())
    else:
        client = _SMTP(host, port or 587, timeout=timeout)
    try:
        client.ehlo()
        if url.scheme != "smtps" and client.has_extn("starttls"):
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        if url.username:
            client.login(unquote(url.username), unquote(url.password or ""))
    except BaseException:
        close(client)
        raise
    return client


def close(client: smtplib.SMTP) -> None:
    """QUIT and close, ignoring a connection that is already gone."""
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


@dataclass
class _Held:
    client: smtplib.SMTP
    last_used: float


class SMTPConnections:
    """Per thread, one open connection per (SMTP_URL, timeout)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._local = threading.local()

    def _held(self) -> dict[tuple[str, float], _Held]:
        held = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = {}
        return held

    def send(self, message: EmailMessage, smtp_url: str, timeout: float, idle_seconds: float) -> None:
        """Send ``message``; smtplib's exceptions (and OSError) propagate for the caller to classify."""
        if idle_seconds <= 0:
            client = connect(smtp_url, timeout)
            try:
                client.send_message(message)
            finally:
                close(client)
            return
        held = self._held()
        key = (smtp_url, timeout)
        kept = held.pop(key, None)
        if kept is not None and self.clock() - kept.last_used > idle_seconds:
            close(kept.client)
            kept = None
        if kept is not None:
            client = kept.client
            client.answered_mail = False  # type: ignore[attr-defined]
            try:
                client.send_message(message)
            except (smtplib.SMTPServerDisconnected, ConnectionError):
                close(client)
                if getattr(client, "answered_mail", True):
                    raise
                # dropped while idle: nothing of this message reached the server; it goes on a fresh connection
            except BaseException:
                close(client)
                raise
            else:
                held[key] = _Held(client, self.clock())
                return
        client = connect(smtp_url, timeout)
        try:
            client.send_message(message)
        except BaseException:
            close(client)
            raise
        held[key] = _Held(client, self.clock())

    def close_all(self) -> None:
        """Close this thread's connections."""
        held = self._held()
        while held:
            close(held.popitem()[1].client)
