"""`python -m bench.escalation_explain [ROWS] [PENDING]`: the escalation pass's due scan under EXPLAIN (ANALYZE,
BUFFERS) at scale, for docs/database.md. ROWS notifications (bench (b)'s table), each with an escalation
(the worst case: every message escalates), all settled but PENDING, a tenth of which are due now. The SQL is
what :func:`notif.escalations.escalate_due` sends (peewee's, parameters inlined), then its claim is timed."""
from __future__ import annotations

import sys
import time

import psycopg2

from .common import database, say
from .inbox_scale import generate

SQL_ESCALATIONS = """
INSERT INTO notif_escalation (notification_id, after, channels, state, due_at, decided_at, created_at)
SELECT id, 600, '["email"]',
       CASE WHEN id > %(rows)s - %(pending)s THEN 'pending' WHEN id %% 3 = 0 THEN 'escalated' ELSE 'read' END,
       CASE WHEN id > %(rows)s - %(pending)s / 10 THEN now() AT TIME ZONE 'utc' - interval '1 second'
            WHEN id > %(rows)s - %(pending)s THEN now() AT TIME ZONE 'utc' + interval '10 minutes'
            ELSE created_at + interval '10 minutes' END,
       CASE WHEN id > %(rows)s - %(pending)s THEN NULL ELSE created_at + interval '10 minutes' END,
       created_at
FROM notif_notification
"""


def main(rows: int, pending: int) -> None:
    from notif.db import database as notif_db
    from notif.db import init_database
    from notif.escalations import PENDING, _claim
    from notif.models import Escalation, Notification, utcnow

    with database() as url:
        say(f"generating {rows:,} notifications and as many escalations ({pending:,} pending) …")
        print(generate(url, rows, max(1, rows // 100)))
        conn = psycopg2.connect(url)
        conn.autocommit = True
        with conn.cursor() as cur:
            started = time.monotonic()
            cur.execute("DROP INDEX notif_escalation_due")
            cur.execute(SQL_ESCALATIONS, {"rows": rows, "pending": pending})
            cur.execute("CREATE INDEX notif_escalation_due ON notif_escalation (due_at) WHERE state = 'pending'")
            cur.execute("VACUUM ANALYZE notif_escalation")
            cur.execute("SELECT pg_size_pretty(pg_total_relation_size('notif_escalation')), "
                        "pg_size_pretty(pg_relation_size('notif_escalation_due'))")
            table, index = cur.fetchone()
            print({"escalations": rows, "pending": pending, "load_s": round(time.monotonic() - started, 1),
                   "table": table, "due_index": index})
        init_database(url)
        now = utcnow()
        due = (Escalation.select(Escalation.notification, Escalation.after, Escalation.channels, Escalation.due_at)
               .where((Escalation.state == PENDING) & (Escalation.due_at <= now))
               .order_by(Escalation.due_at).limit(1000))
        with conn.cursor() as cur:
            sql, params = due.sql()
            cur.execute(sql, params)
            ids = [row[0] for row in cur.fetchall()]
            notifications = (Notification.select(
                Notification.id, Notification.user_id, Notification.key, Notification.type, Notification.priority,
                Notification.correlation_id, Notification.read_at, Notification.retracted_at, Notification.expires_at)
                .where(Notification.id.in_(ids)))
            for title, query in (("due scan (a pass's first SELECT)", due), ("their notifications (the second)",
                                                                            notifications)):
                cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + cur.mogrify(*query.sql()).decode())
                print(f"\n-- {title}\n" + "\n".join(r[0] for r in cur.fetchall()))
        with notif_db.atomic() as txn:
            started = time.monotonic()
            claimed = _claim(ids, now)
            print(f"\n-- the claim (one conditional UPDATE … RETURNING): {len(claimed):,} rows in "
                  f"{(time.monotonic() - started) * 1000:.1f} ms")
            txn.rollback()
        notif_db.close()
        conn.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000, int(sys.argv[2]) if len(sys.argv) > 2 else 10_000)
