"""`notif dev` on embedded defaults: what README promises a newcomer, run as a newcomer would."""
import json
import signal
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


def test_dev_stack_runs_with_nothing_configured(tmp_path):
    port = free_port()
    # a bare environment: no DATABASE_URL, REDIS_URL, AWS_* or secrets
    env = {"PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "PORT": str(port)}
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
    assert code == 0, (tmp_path / "dev.log").read_text()[-3000:]
    assert not (tmp_path / ".notif" / "state.json").exists()
    # with the stack gone, the CLI says what to do instead of a traceback
    after = notif("send", "--user", "u1", "--title", "t", "--message", "m", cwd=tmp_path, env=env)
    assert after.returncode == 2
    assert "AWS_SQS_NOTIFICATION_QUEUE_URL is not set; run `notif dev`" in after.stderr
