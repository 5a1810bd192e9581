"""The Web Push channel: every browser the user subscribed gets the notification (pywebpush, VAPID).

TTL (capped by the time left before `expires_at`) and Urgency follow the priority; the
Topic is derived from the delivery's idempotency key, so a re-send replaces an undelivered
copy instead of doubling it. The payload stays
under the 4 KB Web Push limit. Push service answers: 404/410 remove that subscription;
429 and 5xx (and timeouts) are transient, honouring Retry-After; 400/401/403/413 are
permanent and logged loudly (a bad VAPID key or an oversized payload is a bug, not bad luck).

Every request goes through the outbound policy (notif/outbound.py): an endpoint that breaks it
(stored before the rule, or whose host now resolves to a private address) is removed, and
when no device is left the delivery fails permanently with the reason. Redirects are not
followed: a push service answers, it does not send us elsewhere.

Per process, requests to a push service reuse keep-alive connections (the runtime's pooled
session, which checks each new connection's address) and one signed VAPID token per push
service origin until it nears expiry (``NOTIF_VAPID_TOKEN_SECONDS``); the payload is
encrypted for each message. A batch of deliveries (``send_many``) reads its users' subscriptions
in one query.
"""
from __future__ import annotations

import hashlib
import json
from urllib.parse import urljoin, urlsplit

import requests
from pywebpush import WebPusher, WebPushException

from notif.channels import Channel, ChannelContext
from notif.errors import PermanentError, Skipped, TransientError, from_http_status
from notif.hookspecs import hookimpl
from notif.inputs import is_safe_link
from notif.models import PushSubscription, utcnow
from notif.outbound import OutboundRefused, matches_suffix
from notif.reasons import NO_PUSH_SUBSCRIPTION
from notif.vapid import VapidTokens

MAX_PAYLOAD = 3800  # bytes of JSON, leaving room for encryption overhead under 4096
TTL = {"high": 3600, "normal": 24 * 3600, "low": 7 * 24 * 3600}


def ttl_for(notification, now=None) -> int:
    """The push service keeps it this long: the priority's TTL, or less when it expires sooner."""
    ttl = TTL.get(notification.priority, TTL["normal"])
    if notification.expires_at is not None:
        remaining = (notification.expires_at - (now or utcnow())).total_seconds()
        ttl = max(1, min(ttl, int(remaining)))
    return ttl
URGENCY = {"high": "high", "normal": "normal", "low": "low"}


def endpoint_problem(endpoint: str, settings) -> str | None:
    """Why NOTIF_PUSH_SERVICES refuses ``endpoint`` (None: accepted or no list configured)."""
    if not settings.push_services:
        return None
    host = (urlsplit(endpoint).hostname or "").lower()
    if matches_suffix(host, settings.push_services) or host in settings.outbound_allow:
        return None
    return f"the endpoint's host `{host}` is not a push service NOTIF_PUSH_SERVICES lists"


def payload(notification, public_url: str | None) -> bytes:
    content = (notification.channel_content or {}).get("push", {})
    actions = notification.actions or []

    def absolute(url):
        """A link safe to open (rows stored before the link rule are checked here too), made absolute."""
        if not is_safe_link(url):
            return None
        return urljoin(public_url, url) if public_url else url

    body = {
        "id": notification.id,
        "title": content.get("title") or notification.title,
        "body": content.get("body") or notification.message,
        "tag": f"notif-{notification.id}",
        "actions": [{"action": a.get("id", str(i)), "title": a.get("label", "")} for i, a in enumerate(actions)][:2],
        "data": {"notification_id": notification.id, "priority": notification.priority,
                 "actions": [{**a, "url": absolute(a.get("url"))} if a.get("url") else a for a in actions][:2],
                 "url": absolute((notification.data or {}).get("url") if isinstance(notification.data, dict) else None)},
    }
    data = json.dumps(body, separators=(",", ":")).encode()
    while len(data) > MAX_PAYLOAD and len(body["body"]) > 20:  # shorten the text, never break the JSON
        body["body"] = body["body"][: max(20, len(body["body"]) - (len(data) - MAX_PAYLOAD) - 1)] + "…"
        data = json.dumps(body, separators=(",", ":")).encode()
    if len(data) > MAX_PAYLOAD:
        raise PermanentError(f"push payload is {len(data)} bytes even shortened; the limit is {MAX_PAYLOAD}")
    return data


class PushChannel(Channel):
    name = "push"

    def __init__(self) -> None:
        self.tokens = VapidTokens()  # the process's signed VAPID headers, per push service origin

    def send(self, notification, delivery, ctx: ChannelContext) -> None:
        subscriptions = list(PushSubscription.select().where(PushSubscription.user_id == notification.user_id))
        self._send_to(notification, delivery, subscriptions, ctx)

    def send_many(self, items, ctx: ChannelContext) -> list[Exception | None]:
        """Several deliveries: every user's subscriptions read in one query, the pushes sent one after another
        on the process's pooled session; an outcome per item."""
        held: dict[str, list[PushSubscription]] = {}
        users = list({notification.user_id for notification, _ in items})
        for sub in PushSubscription.select().where(PushSubscription.user_id.in_(users)).order_by(PushSubscription.id):
            held.setdefault(sub.user_id, []).append(sub)
        outcomes: list[Exception | None] = []
        for notification, delivery in items:
            try:
                self._send_to(notification, delivery, held.get(notification.user_id, []), ctx)
            except Exception as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes

    def _send_to(self, notification, delivery, subscriptions: list[PushSubscription], ctx: ChannelContext) -> None:
        settings = ctx.settings
        key = settings.vapid_private_key
        if not key:
            raise PermanentError("VAPID_PRIVATE_KEY is not set; `notif vapid` makes a key pair")
        if not subscriptions:
            raise Skipped("the user has no push subscription", code=NO_PUSH_SUBSCRIPTION)
        data = payload(notification, settings.public_url)
        topic = hashlib.sha256(delivery.idempotency_key.encode()).hexdigest()[:32]
        transient: list[TransientError] = []
        refused: list[str] = []
        count = len(subscriptions)
        for sub in list(subscriptions):  # (a removed one leaves the list: send_many shares it among a user's items)
            try:
                problem = endpoint_problem(sub.endpoint, settings)
                if problem:
                    raise OutboundRefused(problem)
                headers = self.tokens.headers(key, sub.endpoint, settings.vapid_subject,
                                              settings.vapid_token_seconds)
                headers.update({"Urgency": URGENCY.get(notification.priority, "normal"), "Topic": topic})
                # encrypted for each message (its own salt and keys); sent on the process's pooled session
                response = WebPusher(sub.info(), requests_session=ctx.http()).send(
                    data, headers, ttl=ttl_for(notification), timeout=settings.push_timeout)
                if response.status_code > 202:  # as pywebpush's webpush() does
                    raise WebPushException(f"Push failed: {response.status_code} {response.reason}\n"
                                           f"Response body:{response.text}", response=response)
            except OutboundRefused as exc:
                sub.delete_instance()  # it would be refused on every send: the user subscribes again from a browser
                subscriptions.remove(sub)
                refused.append(exc.reason)
                ctx.log.warning("push endpoint refused by the outbound policy; subscription removed", extra={
                    "reason": exc.reason, "user_id": sub.user_id, "correlation_id": notification.correlation_id})
            except WebPushException as exc:
                response = exc.response
                status = response.status_code if response is not None else None
                if status in (404, 410):
                    sub.delete_instance()  # the browser unsubscribed or the subscription expired
                    subscriptions.remove(sub)
                    ctx.log.info("push subscription gone; removed", extra={"status": status, "user_id": sub.user_id})
                    continue
                if status is None:
                    transient.append(TransientError(f"push service unreachable: {exc.message}"))
                    continue
                error = from_http_status(status, (response.text or "")[:200], response.headers.get("Retry-After"))
                if 300 <= status < 400:
                    error = PermanentError(f"the push service answered HTTP {status} (a redirect to "
                                           f"{response.headers.get('Location', 'nowhere')!r}); redirects are not followed")
                if isinstance(error, PermanentError):
                    ctx.log.error("push service refused the notification", extra={
                        "status": status, "reason": error.reason, "user_id": sub.user_id,
                        "correlation_id": notification.correlation_id})
                    raise error from exc
                transient.append(error)
            except (requests.Timeout, requests.ConnectionError) as exc:
                transient.append(TransientError(f"push service unreachable: {type(exc).__name__}"))
        if refused and len(refused) == count:
            raise PermanentError(f"push endpoint refused: {refused[0]}; the subscription was removed")
        if transient:
            waits = [e.retry_after for e in transient if e.retry_after is not None]
            raise TransientError(f"{len(transient)} of {count} devices failed: {transient[0].reason}",
                                 retry_after=max(waits) if waits else None)


@hookimpl
def notif_channels(settings):
    return [PushChannel()]
