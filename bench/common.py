"""Shared pieces: the services a benchmark needs, processes, and small statistics."""
from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("NOTIF_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("NOTIF_BENCH_REDIS", "redis://127.0.0.1:6379/0")
SECRET = "bench-secret-bench-secret-bench-secret-0123"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return {"n": len(ordered), "p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "max": ordered[-1],
            "mean": statistics.fmean(ordered)}


@contextmanager
def database():
    """A PostgreSQL database of its own for this run, migrated; dropped afterwards."""
    import psycopg2
    name = f"notif_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(PG_ADMIN, connect_timeout=5)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    try:
        subprocess.run([sys.executable, "-m", "notif.cli", "migrate"], env={**os.environ, "DATABASE_URL": url,
                       "NOTIF_STATE_DIR": "/nonexistent"}, check=True, capture_output=True)
        yield url
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextmanager
def moto_sqs():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: port_open(port), 30, "moto's SQS server")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def sqs_client(endpoint: str):
    import boto3
    return boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint,
                        aws_access_key_id="bench", aws_secret_access_key="bench")


def notif_env(db_url: str, tag: str, extra: dict | None = None) -> dict:
    """The environment of notif's processes in a benchmark: its own database and Redis prefix."""
    return {"DATABASE_URL": db_url, "REDIS_URL": REDIS_URL, "NOTIF_REDIS_PREFIX": f"bench-{tag}",
            "NOTIF_JWT_SECRET": SECRET, "NOTIF_STATE_DIR": "/nonexistent", "NOTIF_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT), **(extra or {})}


def sqs_env(sqs, endpoint: str, tag: str) -> dict:
    """Four fresh queues on moto (HIGH, NORMAL, LOW, dead letters) and the variables naming them."""
    urls = {r: sqs.create_queue(QueueName=f"bench-{tag}-{r}")["QueueUrl"] for r in ("high", "normal", "low", "dlq")}
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_SQS_HIGH_PRIORITY_QUEUE_URL": urls["high"], "AWS_SQS_NOTIFICATION_QUEUE_URL": urls["normal"],
            "AWS_SQS_LOW_PRIORITY_QUEUE_URL": urls["low"], "AWS_SQS_DEAD_LETTER_QUEUE_URL": urls["dlq"]}


class Procs:
    """Background processes, stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, env: dict, logdir: Path):
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.logdir = logdir
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, command: list[str], env: dict | None = None, cwd: str | None = None) -> subprocess.Popen:
        """``env``: more variables for this process alone; ``cwd``: where it runs (``python -m`` puts it first on
        the path)."""
        log = open(self.logdir / f"{name}.log", "w")
        proc = subprocess.Popen(command, env={**self.env, **(env or {})}, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def worker(self, threads: int = 8, queues: list[str] | None = None, name: str = "worker") -> subprocess.Popen:
        """``dramatiq notif.actors``, one process (as the Procfile runs it), on ``queues`` (default: all)."""
        return self.start(name, [sys.executable, "-m", "dramatiq", "notif.actors", "--processes", "1",
                                 "--threads", str(threads), *(["--queues", *queues] if queues else [])])

    def pipeline(self, port: int) -> None:
        """A poller and `notif serve` on ``port`` (workers started apart), up when this returns."""
        self.start("poller", [sys.executable, "-m", "notif.cli", "poll"])
        self.start("web", [sys.executable, "-m", "notif.cli", "serve", "--host", "127.0.0.1", "--port", str(port)])
        wait_for(lambda: port_open(port), 30, "notif serve")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def machine() -> dict:
    import platform
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mib": mem, "python": platform.python_version(),
            "kernel": platform.release()}


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc (a Dramatiq worker forks its processes)."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            pass
    return pids
