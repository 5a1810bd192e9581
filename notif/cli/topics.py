"""``notif topics add TOPIC USER… | remove TOPIC USER… | list | members TOPIC | delete TOPIC --yes``.

The twins of the ``/api/topics`` service routes, straight on the database. User ids come
from the arguments or, with ``-``, one per line on stdin; they are sent 10,000 at a time.
"""
from __future__ import annotations

import argparse
import json
import re
import sys

from .. import topics as store
from ..config import Settings
from ..db import database, init_database
from ..inputs import MAX_USER_ID, TOPIC_NAME


def add_parser(sub) -> None:
    p = sub.add_parser("topics", help="topics: named sets of user ids a message can name (\"topic\": NAME)")
    tsub = p.add_subparsers(dest="action", required=True)
    for name, text in (("add", "subscribe users to a topic (created if new)"),
                       ("remove", "unsubscribe users from a topic")):
        q = tsub.add_parser(name, help=text)
        q.add_argument("topic")
        q.add_argument("users", nargs="+", metavar="USER", help="user ids; `-` reads them from stdin, one a line")
        q.add_argument("--json", action="store_true", help="machine-readable output")
    q = tsub.add_parser("list", help="every topic with its subscriber count")
    q.add_argument("--json", action="store_true")
    q = tsub.add_parser("members", help="a topic's subscribers, one user id a line")
    q.add_argument("topic")
    q.add_argument("--json", action="store_true")
    q = tsub.add_parser("delete", help="delete a topic and its subscriptions")
    q.add_argument("topic")
    q.add_argument("--yes", action="store_true", help="really delete")
    q.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _users(args) -> list[str]:
    users: list[str] = []
    for user in args.users:
        if user == "-":
            users.extend(line.strip() for line in sys.stdin if line.strip())
        else:
            users.append(user)
    return users


def run(args: argparse.Namespace, settings: Settings) -> int:
    topic = getattr(args, "topic", None)
    if topic is not None and not re.match(TOPIC_NAME, topic):
        print(f"notif: topic {topic!r}: use letters, digits and `_ . : -`, at most 128, starting with a letter or digit",
              file=sys.stderr)
        return 2
    init_database(settings.database_url)
    with database.connection_context():
        return _act(args, topic or "")


def _act(args, topic: str) -> int:
    if args.action in ("add", "remove"):
        users = _users(args)
        too_long = [u for u in users if len(u) > MAX_USER_ID]
        if too_long:
            print(f"notif: user id {too_long[0][:40]!r}…: at most {MAX_USER_ID} characters", file=sys.stderr)
            return 2
        count = 0
        for start in range(0, len(users), store.MAX_IDS):
            part = users[start:start + store.MAX_IDS]
            count = store.change(topic, part if args.action == "add" else [], part if args.action == "remove" else [])
        print(json.dumps({"topic": topic, "subscribers": count}) if args.json
              else f"{topic}: {count} subscriber{'s' if count != 1 else ''}")
        return 0
    if args.action == "list":
        items, cursor = [], None
        while True:
            page = store.topics(store.MAX_PAGE, cursor)
            items.extend(page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        if args.json:
            print(json.dumps(items, indent=2))
        else:
            width = max([len("TOPIC")] + [len(t["topic"]) for t in items])
            print(f"{'TOPIC'.ljust(width)}  SUBSCRIBERS")
            for t in items:
                print(f"{t['topic'].ljust(width)}  {t['subscribers']}")
            print(f"{len(items)} topic{'s' if len(items) != 1 else ''}")
        return 0
    if args.action == "members":
        cursor = None
        while True:
            members = store.members(topic, store.MAX_PAGE, cursor)
            if members is None:
                print(f"notif: no topic {topic!r}", file=sys.stderr)
                return 1
            for item in members.items:
                print(json.dumps(item) if args.json else item["user_id"])
            if members.next_cursor is None:
                return 0
            cursor = members.next_cursor
    # delete
    if not args.yes:
        print(f"notif: delete would remove topic {topic!r} and its subscriptions; add --yes to do it", file=sys.stderr)
        return 1
    gone = store.delete(topic)
    if gone is None:
        print(f"notif: no topic {topic!r}", file=sys.stderr)
        return 1
    print(json.dumps({"topic": topic, "deleted": True, "subscribers": gone}) if args.json
          else f"deleted {topic} ({gone} subscriber{'s' if gone != 1 else ''})")
    return 0
