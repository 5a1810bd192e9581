"""Push and email deliveries per worker process (issue 18, items 1 and 4a), against the naive library loop.

`python -m bench.channel_throughput [--push 1000] [--email 1000] [--rounds 2] [--profile DIR]`
(env BENCH_PUSH, BENCH_EMAIL, BENCH_ROUNDS).

Sinks, in a process of their own (so neither side shares a GIL with them): the loopback push
service of the tests (tests/push_service.py: checks each VAPID JWT and decrypts each payload)
and aiosmtpd, on the same two cores as everything else. Per channel, in one run:

- **baseline**: the naive library loop, no database — 8 threads calling ``pywebpush.webpush``
  (a new connection and a new VAPID signature per call) or ``smtplib.SMTP`` → ``send_message`` →
  ``quit`` (a connection per message; per call an ``EmailMessage`` of the same text and HTML parts
  as notif's, rendered once beforehand: the loop neither renders templates nor inlines CSS);
- **notif, one message each**: notif's real worker (``dramatiq notif.actors --processes 1 --threads 8``,
  PostgreSQL, Redis), the rows pre-filled in the outbox and one ``deliver`` message per delivery
  (``Tasks.enqueue_deliveries``, the path of retries, releases and the sweeper);
- **notif, batched**: the same rows enqueued as deliveries made together are
  (``Tasks.enqueue_together``: ``deliver_many`` messages of ``NOTIF_DELIVER_BATCH``).

Rates are N / (last − first): for the baseline from its threads' start to the last call's return,
for notif from the first claim (the logged attempt's ``started_at``) to the last ``sent_at``.
The three run ``--rounds`` times, interleaved (the machine is shared: a burst of load elsewhere
then hits each alike); the best run of each is reported, every run is in the JSON. The sinks
count what they received (every push decrypted) and the run fails if a count is short.
Each run's CPU per delivery is in the JSON too (``cpu_ms_per_delivery``: the worker's processes,
or the loop's own; PostgreSQL, Redis and the sinks not counted), less shaken by the load.
``--profile DIR`` records the worker with py-spy during one more batched push and email run
each (not timed) and summarises it (bench/profile_summary.py).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from .common import REDIS_URL, ROOT, database, machine, notif_env, say, wait_for

THREADS = 8
SUBJECT = "New report submitted"
TEXT = "Ana has submitted a new report for North"


# --- the sinks' process ---------------------------------------------------------------------------

def _sinks(vapid_public: str, users: int) -> None:
    """Run the push service and an SMTP server; print their addresses, then counts for each line read."""
    sys.path.insert(0, str(ROOT / "tests"))
    from aiosmtpd.controller import Controller

    from push_service import PushService

    class Inbox:
        messages = 0

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
            Inbox.messages += 1
            return "250 OK"

    from .common import free_port
    service = PushService(vapid_public)
    smtp = Controller(Inbox(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    subscriptions = [service.subscriber(f"u{i}").subscription() for i in range(users)]
    print(json.dumps({"smtp_port": smtp.port, "subscriptions": subscriptions}), flush=True)
    for _ in sys.stdin:
        print(json.dumps({"pushes": service.requests, "push_errors": service.errors[:3], "emails": Inbox.messages}),
              flush=True)
    smtp.stop()
    service.close()


class Sinks:
    def __init__(self, vapid_public: str, users: int) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.channel_throughput", f"--sinks={vapid_public}",
                                      f"--users={users}"],
                                     cwd=str(ROOT), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = json.loads(self.proc.stdout.readline())  # type: ignore[union-attr]
        self.smtp_port: int = ready["smtp_port"]
        self.subscriptions: list[dict] = ready["subscriptions"]

    def counts(self) -> dict:
        self.proc.stdin.write("\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return json.loads(self.proc.stdout.readline())  # type: ignore[union-attr]

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(10)


# --- the baseline: the naive library loop ----------------------------------------------------------

def _threaded(n: int, one) -> dict:
    """``one(i)`` for i < n on THREADS threads; the rate from the first call's start to the last one's return."""
    done: list[float] = []
    lock = threading.Lock()
    counter = iter(range(n))

    def run() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            one(i)
            finished = time.perf_counter()
            with lock:
                done.append(finished)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    started, cpu = time.perf_counter(), _cpu_self()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {**_rate(n, started, max(done)), "cpu_ms_per_delivery": round((_cpu_self() - cpu) * 1000 / n, 3)}


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_of(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _worker_pids(pid: int) -> list[int]:
    """The ``dramatiq`` command and the worker process it forked."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]


def _rate(n: int, first: float, last: float) -> dict:
    seconds = max(last - first, 1e-9)
    return {"n": n, "seconds": round(seconds, 3), "per_s": round(n / seconds, 1)}


def naive_push(n: int, sinks: Sinks, vapid_private: str, data: bytes) -> dict:
    from pywebpush import webpush

    def one(i: int) -> None:
        response = webpush(sinks.subscriptions[i % len(sinks.subscriptions)], data, vapid_private_key=vapid_private,
                           vapid_claims={"sub": "mailto:ops@example.com"}, ttl=86400, timeout=10)
        assert response.status_code == 201, response.status_code

    return _threaded(n, one)


def naive_email(n: int, sinks: Sinks, text: str, html: str) -> dict:
    def one(i: int) -> None:
        message = EmailMessage()
        message["Subject"], message["From"], message["To"] = SUBJECT, "Reports <notify@example.com>", f"u{i}@example.com"
        message["Date"], message["Message-ID"] = formatdate(), make_msgid(domain="example.com")
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        with smtplib.SMTP("127.0.0.1", sinks.smtp_port, timeout=15) as client:
            client.send_message(message)

    return _threaded(n, one)


# --- notif ---------------------------------------------------------------------------------------------

def prefill(channel: str, users: range, tag: str) -> list:
    """A notification for each of ``users`` (``u<i>``: one push subscription each, an email address) with one
    delivery on ``channel``, pending; returns the queued ones. One each: the default per-user rate limits
    (NOTIF_RATE_LIMITS) stay on, as in production, and hold nothing back."""
    from notif.models import Delivery, Notification, utcnow
    from notif.outbox import QueuedDelivery, chunks
    now = utcnow()
    rows = [{"user_id": f"u{i}", "key": f"{tag}-{i}", "title": SUBJECT, "message": TEXT, "priority": "normal",
             "correlation_id": f"{tag}-{i}", "recipient": {"user_id": f"u{i}", "email": f"u{i}@example.com"},
             "actions": [{"id": "view", "label": "View report", "url": "/reports/42"}], "created_at": now,
             "sqs_sent_at": now} for i in users]
    queued = []
    for chunk in chunks(rows, 500):
        ids = [i for (i,) in Notification.insert_many(chunk).returning(Notification.id).tuples().execute()]
        deliveries = Delivery.insert_many([{"notification": i, "channel": channel, "status": "pending",
                                            "created_at": now, "updated_at": now} for i in ids])
        queued += [QueuedDelivery(d, "normal", channel)
                   for (d,) in deliveries.returning(Delivery.id).tuples().execute()]
    return queued


def drain(queued: list, enqueue, timeout: float = 150, pids: list[int] | None = None) -> dict:
    """Enqueue, wait until every row has left ``pending``/``sending``; the rate from the first claim (its logged
    attempt's ``started_at``) to the last ``sent_at``: a batch's rows share the ``sent_at`` of its end, so the
    first ``sent_at`` would leave the first batch out."""
    from peewee import fn

    from notif.models import Delivery, DeliveryAttempt
    ids = [q.delivery_id for q in queued]
    cpu = _cpu_of(pids or [])
    enqueue(queued)
    owed = Delivery.select().where(Delivery.id.in_(ids) & Delivery.status.in_(["pending", "sending"]))
    wait_for(lambda: owed.count() == 0, timeout, f"{len(ids)} deliveries", interval=0.2)
    statuses = dict(Delivery.select(Delivery.status, fn.COUNT(Delivery.id)).where(Delivery.id.in_(ids))
                    .group_by(Delivery.status).tuples())
    (first,) = DeliveryAttempt.select(fn.MIN(DeliveryAttempt.started_at)).where(
        DeliveryAttempt.delivery.in_(ids)).tuples().get()
    (last,) = Delivery.select(fn.MAX(Delivery.sent_at)).where(Delivery.id.in_(ids)).tuples().get()
    assert statuses == {"sent": len(ids)}, statuses
    worker_cpu = {"cpu_ms_per_delivery": round((_cpu_of(pids) - cpu) * 1000 / len(ids), 3)} if pids else {}
    return {**_rate(len(ids), 0.0, (last - first).total_seconds()), **worker_cpu, "statuses": statuses}


def profile(pid: int, seconds: float, out: Path) -> subprocess.Popen | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        say("py-spy not installed: no profile (pip install py-spy)")
        return None
    return subprocess.Popen([spy, "record", "-p", str(pid), "-f", "raw", "-o", str(out), "-d", str(int(seconds)),
                             "-r", "50", "--nonblocking", "--subprocesses"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(n_push: int = 1000, n_email: int = 1000, profile_dir: str | None = None, rounds: int = 2) -> dict:
    from notif.config import load_settings
    from notif.db import init_database
    from notif.models import Delivery, Notification, PushSubscription
    from notif.vapid import generate
    from notif.worker.tasks import producer
    from notif_plugins.email import compose
    from notif_plugins.push import payload

    from .common import Procs

    public, private = generate()
    # one user per delivery (the default per-user rate limits hold nothing back): notif's runs and the profiled one
    users = 2 * THREADS + (2 * rounds + (1 if profile_dir else 0)) * max(n_push, n_email)
    sinks = Sinks(public, users)
    result: dict = {"machine": machine(), "load_before": os.getloadavg()[0], "threads": THREADS}
    recipients = iter(range(users))

    def next_users(n: int) -> range:
        first = next(recipients)
        for _ in range(n - 1):
            next(recipients)
        return range(first, first + n)

    tag = uuid.uuid4().hex[:8]
    try:
        with database() as db_url, tempfile.TemporaryDirectory() as tmp:
            extra = {"VAPID_PUBLIC_KEY": public, "VAPID_PRIVATE_KEY": private, "VAPID_SUBJECT": "mailto:ops@example.com",
                     "SMTP_URL": f"smtp://127.0.0.1:{sinks.smtp_port}", "EMAIL_FROM": "Reports <notify@example.com>",
                     "NOTIF_OUTBOUND_ALLOW": "127.0.0.1", "NOTIF_PUBLIC_URL": "https://app.example.com",
                     **{k: os.environ[k] for k in ("NOTIF_DELIVER_BATCH",) if k in os.environ}}  # (to try others)
            env = notif_env(db_url, tag, extra)
            settings = load_settings({**env, "REDIS_URL": REDIS_URL}, use_state=False)
            init_database(db_url)
            for start in range(0, users, 1000):
                PushSubscription.insert_many([
                    {"user_id": f"u{i}", "endpoint": s["endpoint"], "p256dh": s["keys"]["p256dh"],
                     "auth": s["keys"]["auth"]} for i, s in enumerate(sinks.subscriptions[start:start + 1000], start)
                ]).execute()
            tasks = producer(settings)
            sample = Notification(id=1, user_id="u0", title=SUBJECT, message=TEXT, priority="normal",
                                  actions=[{"id": "view", "label": "View report", "url": "/reports/42"}])
            data = payload(sample, settings.public_url)
            sample.recipient, sample.correlation_id = {"email": "u0@example.com"}, "c"
            mail = compose(sample, Delivery(id=1), settings, "u0@example.com")
            text, html = (mail.get_body(kind).get_content() for kind in (("plain",), ("html",)))  # type: ignore[union-attr]
            with Procs(env, Path(tmp)) as procs:
                worker = procs.worker(threads=THREADS)
                say("warming the worker up")
                warm = next_users(2 * THREADS)
                for channel in ("push", "email"):
                    drain(prefill(channel, warm, f"warm-{channel}"), tasks.enqueue_deliveries, timeout=60)
                pids = _worker_pids(worker.pid)
                for channel, n in (("push", n_push), ("email", n_email)):
                    if n <= 0:
                        continue
                    recipients = iter(range(warm.stop, users))
                    before = sinks.counts()
                    runs: dict[str, list[dict]] = {"baseline": [], "notif_single": [], "notif_batched": []}
                    for r in range(rounds):  # interleaved, so that a burst of load elsewhere hits each alike
                        say(f"{channel}, round {r + 1}: the naive loop, {n}")
                        runs["baseline"].append(naive_push(n, sinks, private, data) if channel == "push" else
                                                naive_email(n, sinks, text, html))
                        say(f"{channel}, round {r + 1}: notif, one message each, {n}")
                        runs["notif_single"].append(drain(prefill(channel, next_users(n), f"{channel}-single-{r}"),
                                                          tasks.enqueue_deliveries, pids=pids))
                        say(f"{channel}, round {r + 1}: notif, batched, {n}")
                        runs["notif_batched"].append(drain(prefill(channel, next_users(n), f"{channel}-batched-{r}"),
                                                           tasks.enqueue_together, pids=pids))
                    after = sinks.counts()
                    key = "pushes" if channel == "push" else "emails"
                    received = after[key] - before[key]
                    assert received == 3 * rounds * n and not after["push_errors"], (received, after)
                    best = {mode: max(each, key=lambda run: run["per_s"]) for mode, each in runs.items()}
                    base, single, batched = best["baseline"], best["notif_single"], best["notif_batched"]
                    result[channel] = {**best, "rounds": runs, "sink_received": received, "batch": tasks.batch,
                                       "ratio_batched_to_baseline": round(batched["per_s"] / base["per_s"], 2),
                                       "ratio_single_to_baseline": round(single["per_s"] / base["per_s"], 2),
                                       "ratio_batched_to_single": round(batched["per_s"] / single["per_s"], 2),
                                       "ratio_batched_to_baseline_per_round": [
                                           round(b["per_s"] / a["per_s"], 2)
                                           for a, b in zip(runs["baseline"], runs["notif_batched"], strict=True)]}
                    say(f"{channel}: {json.dumps(result[channel])}")
                    if profile_dir:
                        out = Path(profile_dir) / f"{channel}.txt"
                        spy = profile(worker.pid, 60, out)
                        if spy is not None:
                            time.sleep(1)
                            drain(prefill(channel, next_users(n), f"{channel}-profiled"), tasks.enqueue_together)
                            spy.send_signal(2)  # SIGINT: py-spy writes what it has
                            spy.wait(30)
                            result[channel]["profile"] = str(out)
            result["load_after"] = os.getloadavg()[0]
    finally:
        sinks.close()
    return result


def summary(result: dict) -> list[str]:
    lines = []
    for channel, unit in (("push", "pushes"), ("email", "emails")):
        r = result.get(channel)
        if r:
            lines.append(f"  {channel:<5} per worker  notif {r['notif_batched']['per_s']:,} {unit}/s batched "
                         f"({r['notif_single']['per_s']:,}/s one message each)   naive loop "
                         f"{r['baseline']['per_s']:,}/s (ratio {r['ratio_batched_to_baseline']}, "
                         f"{r['ratio_single_to_baseline']} one by one)   CPU per delivery: worker "
                         f"{r['notif_batched'].get('cpu_ms_per_delivery')} ms batched, "
                         f"{r['notif_single'].get('cpu_ms_per_delivery')} ms one by one; naive loop "
                         f"{r['baseline'].get('cpu_ms_per_delivery')} ms")
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.channel_throughput")
    parser.add_argument("--sinks", metavar="VAPID_PUBLIC_KEY", help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--push", type=int, default=int(os.environ.get("BENCH_PUSH", "1000")))
    parser.add_argument("--email", type=int, default=int(os.environ.get("BENCH_EMAIL", "1000")))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "2")),
                        help="each way this many times, interleaved; the best of each is reported")
    parser.add_argument("--profile", metavar="DIR", help="record the worker with py-spy into DIR")
    args = parser.parse_args()
    if args.sinks:
        _sinks(args.sinks, args.users)
        sys.exit(0)
    started = time.time()
    out = main(args.push, args.email, args.profile, args.rounds)
    say(f"channel throughput ({time.time() - started:.0f} s, load {out['load_before']:.1f} → {out['load_after']:.1f})")
    for line in summary(out):
        say(line)
    print(json.dumps(out, indent=2, default=str))
    if args.profile:
        from contextlib import redirect_stdout

        from .profile_summary import main as profile_summary
        for channel in ("push", "email"):
            if out.get(channel, {}).get("profile"):
                say(f"--- {channel} worker profile")
                with redirect_stdout(sys.stderr):  # (stdout is for the JSON)
                    profile_summary(out[channel]["profile"], 20)
