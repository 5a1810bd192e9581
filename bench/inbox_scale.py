"""Bench (b): the inbox at 10 million rows costs what it costs at a few thousand.

Two PostgreSQL databases, generated in the same run with the same shape (100 notifications
per user, 30 % unread, one sent in-app delivery each) — a small one (``BENCH_INBOX_SMALL``,
default 10,000 notifications over 100 users) and a large one (``BENCH_INBOX_ROWS``, default
10,000,000 over ``BENCH_INBOX_USERS`` = 100,000) — filled by PostgreSQL itself
(``generate_series``; the secondary indexes are built after the load, as a restore would),
then vacuumed and analysed. Against each, the real web process (``notif serve``), one client
on a keep-alive connection, random users: ``GET /api/notifications`` (first page, and the
next page by cursor), ``GET /api/notifications/unread-count`` and
``POST /api/notifications/{id}/read``; p50/p99 in milliseconds.

``BENCH_INBOX_BASELINE=DIR`` (a checkout of an earlier commit, e.g. ``git worktree add --detach
/tmp/base main``) runs that checkout's ``notif serve`` beside this one against the same
databases, the two served in turn request by request (in random order), so a before/after
sees the same machine at the same moment: ``baseline_ms`` beside ``ms``.
"""
from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg2

from .common import ROOT, Procs, database, free_port, notif_env, percentiles, port_open, say, wait_for

SQL_NOTIFICATIONS = """
INSERT INTO notif_notification (id, user_id, key, type, title, message, actions, data, priority, correlation_id,
                                created_at, read_at)
SELECT g, 'user-' || (g % %(users)s), 'bench-' || g, 'REPORT_SUBMITTED', 'New report submitted',
       'Ana has submitted a new report for North', '[]', '{"reportId":' || g || '}', 'normal', 'bench',
       now() AT TIME ZONE 'utc' - make_interval(secs => (%(rows)s - g) * 0.5),
       CASE WHEN (g / %(users)s) %% 10 < 7 THEN now() AT TIME ZONE 'utc' END
FROM generate_series(1, %(rows)s) AS g
"""
SQL_DELIVERIES = """
INSERT INTO notif_delivery (id, notification_id, channel, status, attempts, created_at, updated_at, sent_at)
SELECT id, id, 'in_app', 'sent', 1, created_at, created_at, created_at FROM notif_notification
"""


def generate(url: str, rows: int, users: int) -> dict:
    """Fill a migrated database; returns how long it took."""
    started = time.monotonic()
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SET synchronous_commit = off; SET maintenance_work_mem = '512MB'")
        cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('notif_notification', "
                    "'notif_delivery') AND indexname NOT LIKE '%%_pkey'")
        indexes = cur.fetchall()
        for name, _ in indexes:
            cur.execute(f'DROP INDEX "{name}"')
        cur.execute(SQL_NOTIFICATIONS.replace("%(users)s", str(users)).replace("%(rows)s", str(rows)).replace("%%", "%"))
        cur.execute(SQL_DELIVERIES)
        loaded = time.monotonic() - started
        for _, definition in indexes:
            cur.execute(definition)
        cur.execute("SELECT setval(pg_get_serial_sequence('notif_notification', 'id'), %s)", (rows,))
        cur.execute("SELECT setval(pg_get_serial_sequence('notif_delivery', 'id'), %s)", (rows,))
        cur.execute("VACUUM ANALYZE notif_notification")
        cur.execute("VACUUM ANALYZE notif_delivery")
        cur.execute("SELECT pg_size_pretty(pg_total_relation_size('notif_notification') "
                    "+ pg_total_relation_size('notif_delivery'))")
        size = cur.fetchone()[0]
    conn.close()
    return {"rows": rows, "users": users, "load_s": round(loaded, 1), "total_s": round(time.monotonic() - started, 1),
            "size": size}


def unread_ids(url: str, users: list[str]) -> dict[str, list[int]]:
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute("SELECT user_id, id FROM notif_notification WHERE user_id = ANY(%s) AND read_at IS NULL", (users,))
        out: dict[str, list[int]] = {}
        for user, nid in cur.fetchall():
            out.setdefault(user, []).append(nid)
    conn.close()
    return out


def measure(url: str, users: int, requests: int, logdir: Path, roots: dict[str, str]) -> dict[str, dict]:
    """Per server (``roots``: label -> the checkout it runs from), per request, the percentiles in ms."""
    from notif.auth import make_token
    env = notif_env(url, f"inbox-{os.getpid()}-{users}")
    rng = random.Random(7)
    sample = [f"user-{rng.randrange(users)}" for _ in range(requests)]
    tokens = {u: {"Authorization": f"Bearer {make_token(env['NOTIF_JWT_SECRET'], u)}"} for u in set(sample)}
    unread = unread_ids(url, sorted(set(sample)))
    timings: dict[str, dict[str, list[float]]] = {
        label: {"inbox_page": [], "next_page": [], "unread_count": [], "mark_read": []} for label in roots}
    clients: dict[str, httpx.Client] = {}
    with Procs(env, logdir) as procs:
        for label, root in roots.items():
            port = free_port()
            procs.start(f"web-{label}", [sys.executable, "-m", "notif.cli", "serve", "--host", "127.0.0.1",
                                         "--port", str(port)], env={"PYTHONPATH": root}, cwd=root)
            wait_for(lambda port=port: port_open(port), 60, f"notif serve ({label})")
            clients[label] = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        try:
            for user in sample[:50]:  # warm-up: connections, code paths
                for client in clients.values():
                    client.get("/api/notifications", headers=tokens[user]).raise_for_status()
            for user in sample:
                for label in rng.sample(list(roots), len(roots)):
                    client, headers = clients[label], tokens[user]

                    def timed(name, method, path, client=client, headers=headers, label=label):
                        t0 = time.perf_counter()
                        response = client.request(method, path, headers=headers)
                        timings[label][name].append((time.perf_counter() - t0) * 1000)
                        response.raise_for_status()
                        return response.json()

                    page = timed("inbox_page", "GET", "/api/notifications?limit=20")
                    assert len(page["items"]) == 20, page
                    timed("next_page", "GET", f"/api/notifications?limit=20&cursor={page['next_cursor']}")
                    timed("unread_count", "GET", "/api/notifications/unread-count")
                    if unread.get(user):
                        timed("mark_read", "POST", f"/api/notifications/{unread[user].pop()}/read")
        finally:
            for client in clients.values():
                client.close()
    return {label: {name: {k: round(v, 2) for k, v in percentiles(values).items()}
                    for name, values in by_name.items() if values} for label, by_name in timings.items()}


def main(rows: int = 10_000_000, users: int = 100_000, small: int = 10_000, requests: int = 2000,
         baseline: str | None = None) -> dict:
    result: dict = {"requests": requests}
    roots = {"ms": str(ROOT), **({"baseline_ms": str(Path(baseline).resolve())} if baseline else {})}
    if baseline:
        result["baseline"] = roots["baseline_ms"]
    logdir = Path(tempfile.mkdtemp(prefix="bench-inbox-"))
    for label, n, u in (("small", small, max(1, small // (rows // users))), ("large", rows, users)):
        with database() as url:
            say(f"inbox scale: generating {n:,} notifications over {u:,} users …")
            generated = generate(url, n, u)
            say(f"  generated in {generated['total_s']} s ({generated['size']}); measuring {requests} users")
            result[label] = {"generated": generated, **measure(url, u, requests, logdir, roots)}
    for name in result["large"]["ms"]:
        result.setdefault("ratio_p99_large_to_small", {})[name] = round(
            result["large"]["ms"][name]["p99"] / max(result["small"]["ms"][name]["p99"], 0.01), 2)
    result["targets_ms"] = {"inbox_page_p99": 20, "unread_count_p99": 5}
    result["met"] = (result["large"]["ms"]["inbox_page"]["p99"] < 20 and result["large"]["ms"]["unread_count"]["p99"] < 5)
    return result


def summary(box: dict) -> list[str]:
    """The lines ``make bench`` prints for this benchmark."""
    lines = []
    for name in ("inbox_page", "unread_count", "mark_read"):
        large, small = box["large"]["ms"][name], box["small"]["ms"][name]
        lines.append(f"inbox {name:<13} at {box['large']['generated']['rows']:,} rows p50 {large['p50']} ms, "
                     f"p99 {large['p99']} ms   (at {box['small']['generated']['rows']:,}: p50 {small['p50']} ms, "
                     f"p99 {small['p99']} ms)")
        if "baseline_ms" in box["large"]:
            before = box["large"]["baseline_ms"][name]
            lines.append(f"  baseline ({box['baseline']}), same run: p50 {before['p50']} ms, p99 {before['p99']} ms")
    return lines


if __name__ == "__main__":
    import json
    print(json.dumps(main(int(os.environ.get("BENCH_INBOX_ROWS", "10000000")),
                          int(os.environ.get("BENCH_INBOX_USERS", "100000")),
                          int(os.environ.get("BENCH_INBOX_SMALL", "10000")),
                          int(os.environ.get("BENCH_INBOX_REQUESTS", "2000")),
                          os.environ.get("BENCH_INBOX_BASELINE")), indent=2))
