"""A webhook channel: POST the notification as JSON to WEBHOOK_CHANNEL_URL.

It posts with ``ctx.http()``, notif's outbound client: https only, no private or loopback
address unless NOTIF_OUTBOUND_ALLOW lists it, no redirects (docs/security.md). A channel
that calls a URL a user or a stored row supplies should always go through it.
"""
from __future__ import annotations

import os

import requests

from notif.channels import Channel
from notif.errors import PermanentError, TransientError, from_http_status
from notif.hookspecs import hookimpl
from notif.outbound import OutboundRefused


class WebhookChannel(Channel):
    name = "webhook"

    def send(self, notification, delivery, ctx):
        url = os.environ.get("WEBHOOK_CHANNEL_URL")
        if not url:
            raise PermanentError("WEBHOOK_CHANNEL_URL is not set")
        body = {"user_id": notification.user_id, **notification.to_dict()}
        try:
            response = ctx.http().post(url, json=body, timeout=10,
                                       headers={"Idempotency-Key": delivery.idempotency_key})
        except OutboundRefused as exc:
            raise PermanentError(f"WEBHOOK_CHANNEL_URL refused: {exc.reason}") from None
        except requests.RequestException as exc:
            raise TransientError(f"webhook unreachable: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise from_http_status(response.status_code, response.text[:200], response.headers.get("Retry-After"))


@hookimpl
def notif_channels(settings):
    return [WebhookChannel()]
