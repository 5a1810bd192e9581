"""Several bench.sse_client processes driven as one: each holds a share of the streams from a 127.0.0.x of its own.

One client process per ``PER_CLIENT`` streams: each has its own open-file limit (20,000 here)
and its own source address, so neither files nor ephemeral ports run out on the client side.
Every command goes to all of them at once; the answers are combined.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from .common import ROOT, SECRET

PER_CLIENT = 5_000  # streams per client process


class Fleet:
    def __init__(self, port: int, n: int, mode: str, logdir: Path, users: int) -> None:
        count = max(1, math.ceil(n / PER_CLIENT))
        self.shares = [n // count + (1 if i < n % count else 0) for i in range(count)]
        self.procs: list[subprocess.Popen] = []
        first = 0
        for i, share in enumerate(self.shares):
            log = open(logdir / f"sse-client-{mode}-{i}.log", "w")
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "bench.sse_client", "127.0.0.1", str(port), f"127.0.0.{10 + i}", str(first),
                 str(share), mode, SECRET, str(users)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                cwd=ROOT))
            first += share

    def ask(self, command: str, per_client: list[int] | None = None) -> list[dict]:
        for i, proc in enumerate(self.procs):
            assert proc.stdin is not None
            proc.stdin.write(f"{command} {per_client[i] if per_client else ''}\n")
            proc.stdin.flush()
        answers = []
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"an SSE client process died (exit {proc.wait()}); see its log")
            answers.append(json.loads(line))
        return answers

    def connect(self, total: int) -> dict:
        """Open streams until ``total`` are open across the fleet (shared out like the users)."""
        n = sum(self.shares)
        targets = [min(share, math.ceil(share * total / n)) for share in self.shares]
        answers = self.ask("connect", targets)
        return {"open": sum(a["open"] for a in answers), "errors": sum(a["errors"] for a in answers),
                "error_kinds": sorted({k for a in answers for k in a["error_kinds"]})[:5]}

    def close(self) -> None:
        for proc in self.procs:
            try:
                assert proc.stdin is not None
                proc.stdin.write("quit\n")
                proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
