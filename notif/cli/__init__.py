"""The ``notif`` command. Every flag that configures a process has an environment twin.

Each process command hands over to the one function that assembles that process
(:func:`notif.web.server.run_web`, :func:`notif.poller.process.run_poller`,
:func:`notif.scheduler.process.run_scheduler`; the worker is ``dramatiq notif.actors``).
"""
from __future__ import annotations

import argparse
import json
import sys

from ..auth import make_token
from ..config import PRIORITIES, load_settings
from ..db import database, init_database
from ..dev import run_dev
from ..errors import ConfigError, NotifError, TemplateError
from ..escalations import spec_for as escalation_for
from ..migrations import DOWN_LOSES, MIGRATIONS, applied_versions, current_version, migrate, plan
from ..models import utcnow
from ..outbound import OutboundPolicy, OutboundRefused
from ..plugin_manager import channels_for, manager_for, template_dirs
from ..poller.process import run_poller
from ..scheduler.process import run_scheduler
from ..shadow import parse_time, render, report
from ..sqs import client_for
from ..templates import TemplateStore, check_localized, digest_sample, output_problem, render_digest
from ..vapid import generate
from ..web.server import run_web
from . import dlq as dlq_command
from . import stats as stats_command
from . import topics as topics_command
from . import trace as trace_command


def cmd_migrate(args, settings) -> int:

    init_database(settings.database_url)
    if args.status:
        done = applied_versions()
        for version, name, _, _ in MIGRATIONS:
            print(f"{'applied' if version in done else 'pending'}  {version:04d}  {name}")
        return 0
    try:
        current, steps = plan(args.to)
    except ValueError as exc:
        print(f"notif: {exc}", file=sys.stderr)
        return 2
    downs = [(v, name) for v, name, direction in steps if direction == "down"]
    if downs and not args.yes:
        print(f"schema at version {current}; going down to {args.to} would undo:", file=sys.stderr)
        for version, name in downs:
            print(f"  {version:04d} {name}: loses {DOWN_LOSES[version]}", file=sys.stderr)
        print("run again with --yes to do it", file=sys.stderr)
        return 2
    taken = migrate(args.to)
    for step in taken:
        print(f"applied {step}")
    print(f"schema at version {current_version()}" + ("" if taken else " (nothing to do)"))
    return 0


def cmd_shadow(args, settings) -> int:

    try:
        since, until = parse_time(args.since), parse_time(args.until) if args.until else None
    except ValueError as exc:
        print(f"notif: {exc}", file=sys.stderr)
        return 2
    init_database(settings.database_url)
    with database.connection_context():
        data = report(since, until or utcnow(), args.top)
    print(json.dumps(data, indent=2) if args.json else render(data))
    return 0


def cmd_serve(args, settings) -> int:

    run_web(settings, host=args.host, port=args.port or settings.port)
    return 0


def cmd_poll(args, settings) -> int:

    run_poller(settings)
    return 0


def cmd_scheduler(args, settings) -> int:

    run_scheduler(settings)
    return 0


def cmd_token(args, settings) -> int:

    print(make_token(settings.require("jwt_secret"), args.user, args.ttl, service=args.service,
                     audience=settings.jwt_audience, issuer=settings.jwt_issuer))
    return 0


def cmd_check_url(args, settings) -> int:
    """Would notif call this URL? The outbound policy's verdict, with the addresses it checked."""
    try:
        target = OutboundPolicy.from_settings(settings).check(args.url)
    except OutboundRefused as exc:
        print(f"refused: {exc.reason}")
        return 1
    print(f"allowed: {target.scheme}://{target.host}:{target.port} at {', '.join(target.addresses)}")
    return 0


def cmd_vapid(args, settings) -> int:

    public, private = generate()
    print(f"VAPID_PUBLIC_KEY={public}")
    print(f"VAPID_PRIVATE_KEY={private}")
    return 0


def _parse_vars(pairs: list[str]) -> dict:
    variables = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--var expects NAME=VALUE, got {pair!r}")
        variables[name] = value
    return variables


def cmd_send(args, settings) -> int:

    if args.body:
        body = sys.stdin.read() if args.body == "-" else args.body
    else:
        message: dict = {"recipients" if len(args.user) > 1 else "user_id": args.user if len(args.user) > 1 else args.user[0]}
        if args.type:
            message["type"] = args.type
        if args.title is not None:
            message["title"] = args.title
        if args.message is not None:
            message["message"] = args.message
        if args.var:
            message["variables"] = _parse_vars(args.var)
        if args.channel:
            message["channels"] = args.channel
        if args.id:
            message["id"] = args.id
        if args.send_at:
            message["send_at"] = args.send_at
        if args.batch_key:
            message["batch_key"] = args.batch_key
        if args.batch_window:
            message["batch_window"] = args.batch_window
        body = json.dumps(message)
    response = client_for(settings).send_message(QueueUrl=settings.queue_url(args.priority), MessageBody=body)
    print(response["MessageId"])
    return 0


def cmd_templates(args, settings) -> int:

    store = TemplateStore.from_settings(settings, template_dirs(manager_for(settings), settings))
    if args.action == "check":
        failures = 0
        for type_ in store.types():
            try:
                template = store.get(type_)
                escalation_for(None, template, (), channels_for(settings))  # [escalate] names loaded channels
                problem = output_problem(store.render(type_, template.sample))  # what ingest would refuse
                if problem:
                    raise TemplateError(f"{problem[0]}: {problem[1]} (with the [sample] variables)")
                if template.digest.get("title"):
                    render_digest(store, type_, digest_sample(store, template))
                print(f"ok      {type_}" + ("  (and its [digest])" if template.digest.get("title") else ""))
            except NotifError as exc:
                failures += 1
                print(f"FAILED  {type_}: {exc}")
        checked = len(store.types())
        for locale in store.locales():  # templates/<locale>/: each against its default
            for type_ in sorted({p.stem for d in store.directories for p in (d / locale).glob("*.toml")}):
                checked += 1
                try:
                    template = check_localized(store, type_, locale)
                    print(f"ok      {locale}/{type_}" + ("  (and its [digest])" if template.digest.get("title") else ""))
                except NotifError as exc:
                    failures += 1
                    print(f"FAILED  {locale}/{type_}: {exc}")
        print(f"{checked - failures} ok, {failures} failed")
        return 1 if failures else 0
    template = store.get(args.type, args.locale)
    sample = template.sample or store.get(args.type).sample
    rendered = store.render(args.type, {**sample, **_parse_vars(args.var or [])}, args.locale)
    content = rendered.channel_content or {}
    print(json.dumps({
        "in_app": {"title": rendered.title, "message": rendered.message, "html": rendered.html,
                   "actions": rendered.actions},
        "push": {"title": content.get("push", {}).get("title", rendered.title),
                 "body": content.get("push", {}).get("body", rendered.message),
                 "actions": [a.get("label") for a in rendered.actions][:2]},
        "email": {"subject": content.get("email", {}).get("subject", rendered.title),
                  "text": content.get("email", {}).get("text", rendered.message),
                  "html": content.get("email", {}).get("html", rendered.html),
                  "buttons": [a.get("label") for a in rendered.actions if a.get("url")]},
    }, indent=2, ensure_ascii=False))
    return 0


def cmd_dev(args, settings) -> int:

    return run_dev(port=args.port, threads=args.threads)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="notif", description="notif: SQS in; in-app, live SSE, push and email out.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("dev", help="run the whole stack locally on embedded defaults")
    p.add_argument("--port", type=int, default=None, help="web port (env PORT, default 8000)")
    p.add_argument("--threads", type=int, default=4, help="worker threads")
    p.set_defaults(func=cmd_dev)

    p = sub.add_parser("serve", help="run the web process (ASGI, uvicorn)")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=None, help="env PORT, default 8000")
    p.set_defaults(func=cmd_serve)

    sub.add_parser("poll", help="run the SQS poller").set_defaults(func=cmd_poll)
    sub.add_parser("scheduler", help="run the periodic jobs (outbox sweep); one of many acts").set_defaults(
        func=cmd_scheduler)
    p = sub.add_parser("shadow", help="shadow mode (NOTIF_SHADOW): what notif would have sent")
    ssub = p.add_subparsers(dest="action", required=True)
    rp = ssub.add_parser("report", help="counts per type, channel and user over a time range")
    rp.add_argument("--since", default="24h", help="ISO 8601 time, or a duration back from now (90m, 24h, 7d); default 24h")
    rp.add_argument("--until", help="ISO 8601 time or a duration back from now; default now")
    rp.add_argument("--top", type=int, default=20, help="users listed in the text output (--json lists all)")
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(func=cmd_shadow)

    p = sub.add_parser("migrate", help="create or upgrade the database schema (safe to repeat); --to N goes back")
    p.add_argument("--to", type=int, metavar="VERSION", help="bring the schema to this version, up or down (0: nothing)")
    p.add_argument("--yes", action="store_true", help="confirm a step down (it says first what each step undoes)")
    p.add_argument("--status", action="store_true", help="list every version, applied or pending")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("send", help="put a notification on an input queue")
    p.add_argument("--user", action="append", default=[], help="recipient user id (repeat for several)")
    p.add_argument("--title")
    p.add_argument("--message")
    p.add_argument("--type", help="template id, e.g. REPORT_SUBMITTED")
    p.add_argument("--var", action="append", help="template variable NAME=VALUE (repeatable)")
    p.add_argument("--channel", action="append", help="channel (repeatable); default: the template's")
    p.add_argument("--id", help="idempotency key")
    p.add_argument("--priority", choices=PRIORITIES, default="normal")
    p.add_argument("--send-at", help="ISO 8601 time with a zone: a scheduled send")
    p.add_argument("--batch-key", help="digest key: notifications for the same user and key are grouped")
    p.add_argument("--batch-window", type=int, help="digest window in seconds")
    p.add_argument("--body", help="send this raw JSON body instead ('-' reads stdin)")
    p.set_defaults(func=cmd_send)

    dlq_command.add_parser(sub)
    stats_command.add_parser(sub)
    topics_command.add_parser(sub)
    trace_command.add_parser(sub)

    p = sub.add_parser("token", help="print a JWT for a user (for testing), or a service token")
    p.add_argument("user", help="the user id (with --service: the calling service's name)")
    p.add_argument("--service", action="store_true",
                   help="a service token (scope service) for service routes such as DELETE /api/scheduled/{id}")
    p.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("check-url", help="would notif call this URL (push endpoint, webhook)? the outbound policy's "
                                         "verdict (NOTIF_OUTBOUND_ALLOW)")
    p.add_argument("url")
    p.set_defaults(func=cmd_check_url)

    sub.add_parser("vapid", help="print a new VAPID key pair for Web Push (VAPID_PUBLIC_KEY=… lines)").set_defaults(
        func=cmd_vapid)

    p = sub.add_parser("templates", help="check or preview notification templates")
    tsub = p.add_subparsers(dest="action", required=True)
    tsub.add_parser("check", help="render every template (and every locale's) with its sample variables")
    pv = tsub.add_parser("preview", help="render one template")
    pv.add_argument("type")
    pv.add_argument("--var", action="append", help="NAME=VALUE (repeatable)")
    pv.add_argument("--locale", help="in this locale (templates/<locale>/, with its fallback), e.g. fr-CA")
    p.set_defaults(func=cmd_templates)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "send" and not args.body and (not args.user or not (args.type or (args.title and args.message))):
            parser.error("send needs --user and either --type or both --title and --message (or --body)")
        settings = load_settings()
        return args.func(args, settings) or 0
    except ConfigError as exc:
        print(f"notif: {exc}", file=sys.stderr)
        return 2
    except NotifError as exc:
        print(f"notif: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

