"""A topic of N subscribers (a million by default): one message → every inbox row and in-app delivery.

One stack (`notif poll`, `dramatiq notif.actors` 1 process × 8 threads, `notif serve`), its own
database. The members are loaded with COPY (set-up, not measured). Then, in the same run:

(a) one LOW message names the topic: recipients/s from its send until every member's
    notification is committed and its in-app delivery `sent`, against PostgreSQL's own COPY
    of as many rows into a table shaped like notif_notification (indexes and all);
(c) HIGH's latency (SQS send → SSE arrival, 10 users) alone, then while a second N-member
    LOW announcement fans out; the ratio of the p99s.

`python -m bench topic --subscribers 100000` picks a size (env BENCH_TOPIC_SUBSCRIBERS).
"""
from __future__ import annotations

import asyncio
import io
import json
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

from .common import Procs, database, free_port, moto_sqs, notif_env, percentiles, say, sqs_client, sqs_env, wait_for
from .e2e_latency import USERS, paced_send, sse_clients


def _pg(url: str):
    import psycopg2
    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


def _one(url: str, sql: str, params=()):
    with _pg(url) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()


def load_members(url: str, topic: str, n: int) -> None:
    """N members (`user-0000000`…) with COPY, and the topic's count: the set-up."""
    with _pg(url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO notif_topic (name, subscribers, created_at, updated_at) VALUES (%s, %s, now(), now()) "
                    "RETURNING id", (topic, n))
        (topic_id,) = cur.fetchone()
        data = io.StringIO("".join(f"{topic_id}\tuser-{i:07d}\t2026-01-01 00:00:00\n" for i in range(n)))
        cur.copy_expert("COPY notif_topic_member (topic_id, user_id, created_at) FROM STDIN", data)
        cur.execute("ANALYZE notif_topic_member")


def copy_rate(url: str, n: int) -> dict:
    """PostgreSQL's own bulk path: COPY n notification-shaped rows into a table like notif_notification."""
    row = "user-{i:07d}\tannounce\tSYSTEM_ANNOUNCEMENT\tTitle\tA message for everyone\tlow\tcorr\t2026-01-01 00:00:00\n"
    data = io.StringIO("".join(row.format(i=i) for i in range(n)))
    with _pg(url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE bench_copy (LIKE notif_notification INCLUDING ALL)")
        started = time.monotonic()
        cur.copy_expert("COPY bench_copy (user_id, key, type, title, message, priority, correlation_id, created_at) "
                        "FROM STDIN", data)
        seconds = time.monotonic() - started
        cur.execute("DROP TABLE bench_copy")
    return {"rows": n, "seconds": round(seconds, 2), "rows_per_s": int(n / seconds)}


def _ms(values: list[float]) -> dict:
    return {k: round(v * 1000, 1) if k != "n" else v for k, v in percentiles(values).items()}


def main(subscribers: int = 1_000_000, high_rate: float = 10, seconds: float = 20, warmup: float = 3) -> dict:
    logdir = Path(tempfile.mkdtemp(prefix="notif-bench-"))
    say(f"Topic fan-out to {subscribers:,} subscribers (logs in {logdir})")
    with moto_sqs() as endpoint:
        sqs = sqs_client(endpoint)
        tag = uuid.uuid4().hex[:6]
        queues = sqs_env(sqs, endpoint, tag)
        low, high = queues["AWS_SQS_LOW_PRIORITY_QUEUE_URL"], queues["AWS_SQS_HIGH_PRIORITY_QUEUE_URL"]
        with database() as db_url:
            say("  loading the members (COPY), then PostgreSQL's COPY rate for as many notification rows")
            load_members(db_url, "everyone", subscribers)
            baseline = copy_rate(db_url, subscribers)
            say(f"    COPY: {baseline['rows_per_s']:,} rows/s")
            port = free_port()
            with Procs(notif_env(db_url, tag, queues), logdir) as procs:
                procs.worker()
                procs.pipeline(port)
                arrivals: list = []
                ready, done = threading.Event(), threading.Event()
                client = threading.Thread(target=lambda: asyncio.run(sse_clients(port, arrivals, ready, done)))
                client.start()
                ready.wait(30)
                sent_sql = ("SELECT count(*) FROM notif_delivery d JOIN notif_notification n ON n.id = d.notification_id "
                            "WHERE n.key = %s AND d.channel = 'in_app' AND d.status = 'sent'")
                try:
                    # (a) one message, every member
                    say("  (a) one LOW message for the topic")
                    started = time.time()
                    sqs.send_message(QueueUrl=low, MessageBody=json.dumps(
                        {"id": "announce-a", "topic": "everyone", "title": "Maintenance", "message": "Sunday 02:00"}))
                    wait_for(lambda: (_one(db_url, "SELECT finished_at FROM notif_fanout WHERE key = 'announce-a'")
                                      or [None])[0], 3600, "every notification stored", interval=0.5)
                    stored_s = time.time() - started
                    wait_for(lambda: _one(db_url, sent_sql, ("announce-a",))[0] >= subscribers, 3600,
                             "every in-app delivery sent", interval=2)
                    delivered_s = time.time() - started
                    fanout = {"subscribers": subscribers, "stored_s": round(stored_s, 1),
                              "delivered_s": round(delivered_s, 1),
                              "stored_per_s": int(subscribers / stored_s), "recipients_per_s": int(subscribers / delivered_s),
                              "ratio_to_copy": round(subscribers / delivered_s / baseline["rows_per_s"], 3)}
                    say(f"    stored in {stored_s:.1f} s, delivered in-app in {delivered_s:.1f} s: "
                        f"{fanout['recipients_per_s']:,} recipients/s (COPY {baseline['rows_per_s']:,} rows/s)")

                    # (c) HIGH alone, then HIGH while a second announcement fans out
                    def high_body(offset: int):
                        return lambda i: {"user_id": f"lat-{i % USERS}", "title": "high", "message": str(i),
                                          "data": {"i": offset + i, "t": time.time()}}

                    say(f"  (c) HIGH alone, {high_rate:g} msg/s for {seconds:g} s")
                    n = paced_send(sqs, high, high_rate, seconds, high_body(0))
                    wait_for(lambda: len(arrivals) >= n, 60, "the baseline HIGH notifications")
                    idle = [lat for i, lat in arrivals if warmup * high_rate <= i < n]
                    say("      … and while a second LOW announcement to the topic fans out")
                    sqs.send_message(QueueUrl=low, MessageBody=json.dumps(
                        {"id": "announce-c", "topic": "everyone", "title": "Second", "message": "announcement"}))
                    wait_for(lambda: _one(db_url, "SELECT count(*) FROM notif_fanout WHERE key = 'announce-c' "
                                                  "AND stored > 0")[0], 120, "the second fan-out under way")
                    m = paced_send(sqs, high, high_rate, seconds, high_body(1_000_000))
                    wait_for(lambda: len(arrivals) >= n + m, 120, "the HIGH notifications under the fan-out")
                    progress = _one(db_url, "SELECT stored, finished_at IS NOT NULL FROM notif_fanout "
                                            "WHERE key = 'announce-c'")
                    under = [lat for i, lat in arrivals if i >= 1_000_000]
                finally:
                    done.set()
                    client.join(10)
    idle_ms, under_ms = _ms(idle), _ms(under)
    high_result = {"high_rate_per_s": high_rate, "high_idle_ms": idle_ms, "high_under_fanout_ms": under_ms,
                   "ratio_p99": round(under_ms["p99"] / idle_ms["p99"], 2),
                   "fanout_stored_while_measured": progress[0], "fanout_finished_while_measured": progress[1]}
    say(f"    HIGH p50/p99 idle {idle_ms['p50']}/{idle_ms['p99']} ms, during the fan-out "
        f"{under_ms['p50']}/{under_ms['p99']} ms (p99 ratio {high_result['ratio_p99']}); the fan-out stored "
        f"{progress[0]:,} meanwhile")
    return {"postgres_copy": baseline, "fanout": fanout, "high_during_fanout": high_result}


def summary(top: dict) -> list[str]:
    """The lines ``make bench`` prints for this benchmark."""
    fan, hi = top["fanout"], top["high_during_fanout"]
    return [
        f"topic of {fan['subscribers']:,}   every row committed in {fan['stored_s']} s, delivered in-app in "
        f"{fan['delivered_s']} s: {fan['recipients_per_s']:,} recipients/s   (PostgreSQL COPY "
        f"{top['postgres_copy']['rows_per_s']:,} rows/s; ratio {fan['ratio_to_copy']})",
        f"HIGH during it  p99 {hi['high_under_fanout_ms']['p99']} ms vs {hi['high_idle_ms']['p99']} ms idle "
        f"(ratio {hi['ratio_p99']})",
    ]


if __name__ == "__main__":
    size = int(os.environ.get("BENCH_TOPIC_SUBSCRIBERS", "1000000"))
    print(json.dumps(main(size), indent=2))
