"""The email channel: multipart text + HTML over SMTP, from the layout in ``templates/email/``.

The HTML part is the notification's HTML (or its message, escaped) inside
``layout.html``, with CSS inlined (css-inline) because mail clients drop <style>; the text
part comes from ``layout.txt``. Actions become buttons and links, but only safe links
(:func:`notif.inputs.link_problem`, checked again here for rows stored before that rule): an
unsafe one is shown as its label alone, and HTML holding an unsafe link is replaced by the
escaped text message. The address comes from
the message's recipient (``{"user_id": …, "email": …}``) or from a plugin implementing
``notif_email_address``. SMTP 4xx and connection trouble are transient, 5xx permanent;
every SMTP step has a timeout. Each worker thread keeps its SMTP connection for the next
message (:mod:`notif.smtp`, ``NOTIF_SMTP_IDLE_SECONDS``).
"""
from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import urljoin

import css_inline
import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape

from notif.channels import Channel, ChannelContext
from notif.errors import PermanentError, Skipped, TransientError, from_smtp_code
from notif.hookspecs import hookimpl
from notif.inputs import html_link_problem, is_safe_link
from notif.plugin_manager import manager_for
from notif.reasons import NO_EMAIL_ADDRESS
from notif.smtp import SMTPConnections
from notif.templates import builtin_dir

# (auto_reload off: the layouts ship with notif and never change under a running process; on, every email
# checked both files' modification times, 5 % of an email's CPU in the worker)
_env = ImmutableSandboxedEnvironment(loader=jinja2.FileSystemLoader(str(builtin_dir() / "email")),
                                     autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                                     auto_reload=False)
_env.tests["safe_link"] = is_safe_link  # the layouts write an href only for `… is safe_link`
_inliner = css_inline.CSSInliner(keep_style_tags=False)


def address_for(notification, settings, pm) -> str | None:
    recipient = notification.recipient or {}
    if recipient.get("email"):
        return recipient["email"]
    for found in pm.hook.notif_email_address(user_id=notification.user_id, settings=settings):
        if found:
            return found
    return None


def compose(notification, delivery, settings, to: str) -> EmailMessage:
    content = (notification.channel_content or {}).get("email", {})
    subject = content.get("subject") or notification.title
    html = content.get("html") or notification.html or ""
    body_html = Markup(html) if html and not html_link_problem(html) else escape(notification.message)
    body_text = content.get("text") or notification.message
    # the stored url is checked, not only the joined one: urljoin turns "//evil.example" into "https://evil.example"
    actions = [{"label": a.get("label", ""),
                "href": urljoin(settings.public_url or "", a["url"]) if is_safe_link(a["url"]) else None}
               for a in (notification.actions or []) if a.get("url")]
    unsubscribe = settings.unsubscribe_url.replace("{user_id}", notification.user_id) if settings.unsubscribe_url else None
    context = {"subject": subject, "title": notification.title, "body_html": body_html, "body_text": body_text,
               "actions": actions, "unsubscribe": unsubscribe}
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.email_from
    message["To"] = to
    # Date and Message-ID are ASCII by construction: set as they are, not parsed by the header registry
    # (its parser was a tenth of an email's CPU in the worker); an internationalized domain goes the usual way
    message.set_raw("Date", formatdate(localtime=False))
    domain = (settings.email_from or "notif.invalid").rsplit("@", 1)[-1].strip(">")
    message_id = f"<{delivery.idempotency_key}@{domain}>"  # the same on a re-send: clients dedupe
    if domain.isascii():
        message.set_raw("Message-ID", message_id)
    else:
        message["Message-ID"] = message_id
    message["X-Notif-Correlation-Id"] = notification.correlation_id
    if unsubscribe:
        message["List-Unsubscribe"] = f"<{unsubscribe}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(_env.get_template("layout.txt").render(context))
    message.add_alternative(_inliner.inline(_env.get_template("layout.html").render(context)), subtype="html")
    return message


def send_smtp(message: EmailMessage, settings, connections: SMTPConnections | None = None) -> None:
    """Send ``message`` on this thread's kept connection (``connections``) or a new one; notif errors out."""
    try:
        (connections or SMTPConnections()).send(message, settings.smtp_url, settings.smtp_timeout,
                                                settings.smtp_idle_seconds if connections else 0)
    except smtplib.SMTPRecipientsRefused as exc:
        code, reply = next(iter(exc.recipients.values()))
        raise from_smtp_code(code, reply.decode(errors="replace")) from None
    except smtplib.SMTPResponseException as exc:
        raise from_smtp_code(exc.smtp_code, exc.smtp_error.decode(errors="replace")
                             if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)) from None
    except (TimeoutError, smtplib.SMTPServerDisconnected, ConnectionError, OSError) as exc:
        raise TransientError(f"SMTP server unreachable: {type(exc).__name__}: {exc}") from None


class EmailChannel(Channel):
    name = "email"

    def __init__(self) -> None:
        self.connections = SMTPConnections()  # each worker thread's open SMTP connection, reused

    def send(self, notification, delivery, ctx: ChannelContext) -> None:
        settings = ctx.settings
        if not settings.smtp_url or not settings.email_from:
            raise PermanentError("email is not configured: set SMTP_URL and EMAIL_FROM")
        to = address_for(notification, settings, manager_for(settings))
        if not to:
            raise Skipped("no email address for the user (none in the message, none from notif_email_address)",
                          code=NO_EMAIL_ADDRESS)
        send_smtp(compose(notification, delivery, settings, to), settings, self.connections)

    def send_many(self, items, ctx: ChannelContext) -> list[Exception | None]:
        """Several deliveries, one after another on this thread's SMTP session (one connection for the
        batch, kept for the next); an outcome per item."""
        settings = ctx.settings
        if not settings.smtp_url or not settings.email_from:
            return [PermanentError("email is not configured: set SMTP_URL and EMAIL_FROM")] * len(items)
        pm = manager_for(settings)
        outcomes: list[Exception | None] = []
        for notification, delivery in items:
            try:
                to = address_for(notification, settings, pm)
                if not to:
                    raise Skipped("no email address for the user (none in the message, none from "
                                  "notif_email_address)", code=NO_EMAIL_ADDRESS)
                send_smtp(compose(notification, delivery, settings, to), settings, self.connections)
            except Exception as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes


@hookimpl
def notif_channels(settings):
    return [EmailChannel()]
