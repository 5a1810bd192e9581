"""Channel connection reuse (issue 18, part): N pushes and N emails, reuse off then on, in one run.

`python -m bench.channel_reuse [--n 500]`. The push channel sends to the loopback push service of
the tests (tests/push_service.py: HTTP/1.1 keep-alive; it checks the VAPID JWT and decrypts each
payload, on the same cores), the email channel to aiosmtpd on loopback; both through the channels'
``send`` as a worker calls it, one thread, a SQLite database for the subscription lookup. Push is
timed three ways: a new connection and a new VAPID signature for each push; the pooled keep-alive
session only (what notif did before this change); pooled session and one VAPID token per origin.
Email: a connection per message (``NOTIF_SMTP_IDLE_SECONDS=0``), then one kept per thread; each
also timed without composing (``smtp_only``: N more sends of one composed message, outside the
session counts). The SMTP server offers neither STARTTLS nor AUTH, so a connection here costs
only TCP, EHLO and QUIT on loopback.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from aiosmtpd.controller import Controller

from .common import ROOT, free_port, machine, say

sys.path.insert(0, str(ROOT / "tests"))  # the loopback push service of the tests

from notif.channels import ChannelContext  # noqa: E402
from notif.config import load_settings  # noqa: E402
from notif.db import init_database  # noqa: E402
from notif.migrations import migrate  # noqa: E402
from notif.models import Delivery, Notification, PushSubscription  # noqa: E402
from notif.vapid import generate  # noqa: E402
from notif_plugins.email import EmailChannel, compose, send_smtp  # noqa: E402
from notif_plugins.push import PushChannel  # noqa: E402
from push_service import PushService  # noqa: E402

log = logging.getLogger("bench.channel_reuse")


class Sink:
    def __init__(self) -> None:
        self.messages = 0
        self.ehlos = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802 (aiosmtpd's name)
        self.ehlos += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages += 1
        return "250 OK"


def timed(send, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        send()
    return time.perf_counter() - started


def run(n: int) -> dict:
    public, private = generate()
    service = PushService(public)
    sink = Sink()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings({
            "DATABASE_URL": f"sqlite:///{Path(tmp) / 'bench.db'}", "NOTIF_OUTBOUND_ALLOW": "127.0.0.1",
            "VAPID_PUBLIC_KEY": public, "VAPID_PRIVATE_KEY": private, "VAPID_SUBJECT": "mailto:ops@example.com",
            "SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "EMAIL_FROM": "Reports <notify@example.com>",
            "NOTIF_PUBLIC_URL": "https://app.example.com"}, use_state=False)
        init_database(settings.database_url)
        migrate()
        info = service.subscriber("bench").subscription()
        PushSubscription.create(user_id="u1", endpoint=info["endpoint"], p256dh=info["keys"]["p256dh"],
                                auth=info["keys"]["auth"])
        notification = Notification.create(user_id="u1", key="k", title="New report submitted",
                                           message="Ana has submitted a new report for North", priority="normal",
                                           correlation_id="c", recipient={"email": "ana@example.com"},
                                           actions=[{"id": "view", "label": "View report", "url": "/reports/42"}])
        push_delivery = Delivery.create(notification=notification, channel="push")
        email_delivery = Delivery.create(notification=notification, channel="email")
        results: dict = {"n": n, "machine": machine(), "push": {}, "email": {}}

        def push(mode: str) -> None:
            channel = PushChannel()
            signing = replace(settings, vapid_token_seconds=0 if mode in ("off", "http") else 43200)
            shared = ChannelContext(signing, None, log)

            def one() -> None:
                if mode == "off":  # a new session: a new connection for each push
                    ctx = ChannelContext(signing, None, log)
                    channel.send(notification, push_delivery, ctx)
                    ctx.http().close()
                else:
                    channel.send(notification, push_delivery, shared)

            channel.send(notification, push_delivery, ChannelContext(signing, None, log))  # warm-up (imports)
            before = service.connections, service.requests
            seconds = timed(one, n)
            assert not service.errors, service.errors
            results["push"][mode] = {"seconds": round(seconds, 3), "per_s": round(n / seconds, 1),
                                     "connections": service.connections - before[0],
                                     "requests": service.requests - before[1]}
            say(f"push {mode}: {results['push'][mode]}")

        def mail(mode: str) -> None:
            channel = EmailChannel()
            ctx = ChannelContext(replace(settings, smtp_idle_seconds=0 if mode == "off" else 30.0), None, log)
            before = sink.ehlos, sink.messages + 1
            channel.send(notification, email_delivery, ctx)  # warm-up (templates); its session is counted
            seconds = timed(lambda: channel.send(notification, email_delivery, ctx), n)
            sessions, messages = sink.ehlos - before[0], sink.messages - before[1]
            message = compose(notification, email_delivery, ctx.settings, "ana@example.com")
            smtp_only = timed(lambda: send_smtp(message, ctx.settings, channel.connections), n)
            channel.connections.close_all()
            results["email"][mode] = {"seconds": round(seconds, 3), "per_s": round(n / seconds, 1),
                                      "smtp_sessions": sessions, "messages": messages,
                                      "smtp_only_seconds": round(smtp_only, 3)}
            say(f"email {mode}: {results['email'][mode]}")

        for mode in ("off", "http", "on"):
            push(mode)
        for mode in ("off", "on"):
            mail(mode)
    smtp.stop()
    service.close()
    p, e = results["push"], results["email"]
    results["ratio"] = {"push_on_vs_off": round(p["off"]["seconds"] / p["on"]["seconds"], 2),
                        "push_on_vs_http_only": round(p["http"]["seconds"] / p["on"]["seconds"], 2),
                        "email_on_vs_off": round(e["off"]["seconds"] / e["on"]["seconds"], 2),
                        "email_smtp_only_on_vs_off": round(e["off"]["smtp_only_seconds"] / e["on"]["smtp_only_seconds"], 2)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.channel_reuse")
    parser.add_argument("--n", type=int, default=500, help="pushes and emails each way")
    print(json.dumps(run(parser.parse_args().n), indent=2))


if __name__ == "__main__":
    main()
