"""An OpenAPI-driven fuzz run (schemathesis) against a real `notif serve`: no input gets a 5xx.

Every operation in notif's own /openapi.json is called with generated input (valid, boundary
and deliberately invalid: NUL characters, huge numbers, wrong types, odd Unicode), once as a
user and once as the host application's service token. The check that must hold is
``not_a_server_error``; the run also checks that what is documented is what is answered.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from notif.auth import make_token
from notif.vapid import generate

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def schemathesis(base: str, bearer: str, tmp_path: Path, name: str) -> subprocess.CompletedProcess:
    cli = shutil.which("st", path=str(Path(sys.executable).parent))
    assert cli, "schemathesis is part of the test extra: make install"
    return subprocess.run(
        [cli, "run", f"{base}/openapi.json", "--checks", CHECKS, "--max-examples", "100", "--seed", "14",
         "--header", f"Authorization: Bearer {bearer}",
         # one worker: with two, hypothesis's ast.parse of a filter's lambda ran in both threads at once and this
         # CPython 3.11.7 failed it ("SystemError: AST constructor recursion depth mismatch"), a run error on
         # routes the run had not even reached; one worker took 50 s for both runs here, two 60-70 s
         "--workers", "1", "--no-color",
         "--report", "junit", "--report-dir", str(tmp_path / name), "--phases", "examples,coverage,fuzzing",
         "--request-timeout", "10"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)


@pytest.mark.parametrize("who", ["user", "service"])
def test_no_generated_request_gets_a_server_error(processes, tmp_path, who):
    public, private = generate()
    processes.env.update(VAPID_PUBLIC_KEY=public, VAPID_PRIVATE_KEY=private)  # configured, as in production
    base = processes.start_web()
    secret = processes.env["NOTIF_JWT_SECRET"]
    bearer = make_token(secret, "fuzz-user") if who == "user" else make_token(secret, "fuzz-app", service=True)
    result = schemathesis(base, bearer, tmp_path, who)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Traceback" not in processes.log("web")
