"""`python -m bench.inbox_explain [ROWS] [USERS]`: the inbox's queries under EXPLAIN (ANALYZE, BUFFERS)
on a generated table (bench (b)'s shape), for docs/database.md. The SQL is what
notif/web/inbox.py, notif/live.py and notif/web/events.py send (peewee's, parameters inlined)."""
from __future__ import annotations

import sys

import psycopg2

from .common import database, say
from .inbox_scale import generate

VISIBLE = ("(send_at IS NULL OR send_at <= now() AT TIME ZONE 'utc') AND digest_id IS NULL AND retracted_at IS NULL "
           "AND (expires_at IS NULL OR expires_at > now() AT TIME ZONE 'utc')")
QUERIES = {
    "inbox page (GET /api/notifications?limit=20)":
        f"SELECT * FROM notif_notification WHERE user_id = 'user-4242' AND {VISIBLE} AND archived_at IS NULL "
        "ORDER BY id DESC LIMIT 21",
    "next page (?cursor=)":
        f"SELECT * FROM notif_notification WHERE user_id = 'user-4242' AND {VISIBLE} AND archived_at IS NULL "
        "AND id < {cursor} ORDER BY id DESC LIMIT 21",
    "unread page (?unread=1)":
        f"SELECT * FROM notif_notification WHERE user_id = 'user-4242' AND {VISIBLE} AND read_at IS NULL "
        "ORDER BY id DESC LIMIT 21",
    "unread count":
        f"SELECT COUNT(*) FROM notif_notification WHERE user_id = 'user-4242' AND read_at IS NULL AND {VISIBLE}",
    "unseen count (GET /api/notifications/counts)":
        f"SELECT COUNT(*) FROM notif_notification WHERE user_id = 'user-4242' AND seen_at IS NULL AND read_at IS NULL "
        f"AND {VISIBLE}",
    "total count (GET /api/notifications/counts)":
        f"SELECT COUNT(*) FROM notif_notification WHERE user_id = 'user-4242' AND archived_at IS NULL AND {VISIBLE}",
    "archive page (?status=archived)":
        f"SELECT * FROM notif_notification WHERE user_id = 'user-4242' AND {VISIBLE} AND archived_at IS NOT NULL "
        "ORDER BY id DESC LIMIT 21",
    "read-all (POST /api/notifications/read-all)":
        f"UPDATE notif_notification SET read_at = now() AT TIME ZONE 'utc' WHERE user_id = 'user-4243' AND {VISIBLE} "
        "AND read_at IS NULL",
    "SSE replay (Last-Event-ID)":
        f"SELECT * FROM notif_notification WHERE user_id = 'user-4242' AND {VISIBLE} AND id > {{cursor}} "
        "ORDER BY id LIMIT 500",
    "SSE replay, late commits":
        f"SELECT n.* FROM notif_notification n JOIN notif_delivery d ON d.notification_id = n.id "
        f"WHERE n.user_id = 'user-4242' AND {VISIBLE.replace('send_at', 'n.send_at')} AND n.id < {{cursor}} "
        "AND d.channel = 'in_app' AND d.sent_at > now() AT TIME ZONE 'utc' - interval '1 minute' ORDER BY n.id",
    "retention batch":
        "SELECT id FROM notif_notification n WHERE created_at < now() AT TIME ZONE 'utc' - interval '90 days' "
        "AND NOT EXISTS (SELECT 1 FROM notif_delivery d WHERE d.notification_id = n.id AND d.status IN "
        "('pending', 'sending', 'scheduled', 'deferred')) ORDER BY created_at LIMIT 1000",
}


def main(rows: int, users: int) -> None:
    with database() as url:
        say(f"generating {rows:,} notifications over {users:,} users …")
        print(generate(url, rows, users))
        conn = psycopg2.connect(url)
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM notif_notification WHERE user_id = 'user-4242' ORDER BY id DESC OFFSET 20 LIMIT 1")
            cursor = cur.fetchone()[0]
            for title, sql in QUERIES.items():
                cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql.format(cursor=cursor))
                print(f"\n-- {title}\n" + "\n".join(r[0] for r in cur.fetchall()))
            conn.rollback()
        conn.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000, int(sys.argv[2]) if len(sys.argv) > 2 else 100_000)
