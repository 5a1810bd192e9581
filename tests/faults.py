"""Tools for the fault-injection tests: a TCP proxy we can cut, a Redis we can restart, a workload."""
from __future__ import annotations

import json
import random
import socket
import subprocess
import threading
from collections import Counter

from helpers import free_port, pg_query, queue_counts, wait_until


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; ``cut()`` drops every connection and refuses new ones."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.up = threading.Event()
        self.up.set()
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", self.port))
        self.server.settimeout(0.2)
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.server.accept()
            except (TimeoutError, OSError):
                continue
            if not self.up.is_set():
                client.close()  # the database is "unreachable"
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            with self.lock:
                self.sockets -= {source, sink}

    def cut(self) -> None:
        self.up.clear()
        with self.lock:
            victims = list(self.sockets)
        for s in victims:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self.stopped.set()
        self.cut()
        self.server.close()


class OwnRedis:
    """A redis-server of the test's own, on a free port, that the test can kill and restart."""

    def __init__(self, tmp_path) -> None:
        self.port = free_port()
        self.dir = tmp_path
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def answers():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    return s.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        wait_until(answers, 20, message="the test's redis-server")

    def kill(self) -> None:
        self.proc.kill()  # everything in it is lost: it keeps nothing on disk
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.kill()


class Workload:
    """N input messages over the three queues, some duplicated by id, sent by a paced producer thread."""

    def __init__(self, sqs, queues, n: int = 2000, duplicate_every: int = 10, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.sqs, self.queues = sqs, queues
        self.bodies: list[tuple[str, str]] = []
        self.expected: set[tuple[str, str]] = set()  # (key, user)
        originals = []
        while len(self.bodies) < n:
            i = len(originals)
            if duplicate_every and originals and len(self.bodies) % duplicate_every == 0:
                self.bodies.append(rng.choice(originals))  # the same message again (same id)
                continue
            priority = rng.choice(("high", "normal", "normal", "low"))
            user = f"user-{i % 50}"
            body = json.dumps({"id": f"m{i}", "user_id": user, "title": f"#{i}", "message": "fault test"})
            originals.append((priority, body))
            self.bodies.append((priority, body))
            self.expected.add((f"m{i}", user))
        self.sent = 0
        self.done = threading.Event()
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            for start in range(0, len(self.bodies), 10):
                chunk = self.bodies[start:start + 10]
                for priority in {p for p, _ in chunk}:
                    # keep moto's queues shallow: it scans a queue on every call
                    wait_until(lambda queue=self.queues[priority]: sum(queue_counts(self.sqs, queue)) < 60, 120, 0.05,
                               f"the {priority} queue to drain")
                    entries = [{"Id": str(i), "MessageBody": b} for i, (p, b) in enumerate(chunk) if p == priority]
                    response = self.sqs.send_message_batch(QueueUrl=self.queues[priority], Entries=entries)
                    assert not response.get("Failed"), response["Failed"]
                self.sent += len(chunk)
        except BaseException as exc:  # reported by wait()
            self.error = exc
        finally:
            self.done.set()

    def start(self) -> Workload:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def wait_sent(self, timeout: float = 300) -> None:
        assert self.done.wait(timeout), "the producer did not finish"
        if self.error:
            raise self.error


def stored(pg_url: str) -> int:
    return pg_query(pg_url, "SELECT COUNT(*) FROM notif_notification")[0][0]


def settle(pg_url: str, sqs, queues, expected: int, timeout: float = 180) -> None:
    """Wait until every message is stored, every delivery sent and every input queue empty."""
    wait_until(lambda: stored(pg_url) >= expected, timeout, 0.5, f"{expected} notifications stored")
    wait_until(lambda: pg_query(pg_url, "SELECT COUNT(*) FROM notif_delivery WHERE status <> 'sent'")[0][0] == 0,
               timeout, 0.5, "every delivery sent")
    wait_until(lambda: all(queue_counts(sqs, queues[p]) == (0, 0) for p in ("high", "normal", "low")),
               timeout, 0.5, "the input queues to empty")


def check_history(pg_url: str, record_file, workload: Workload) -> dict:
    """Every acknowledged input stored exactly once; every delivery reached its channel exactly once.

    "Exactly once" at the channel is by idempotency key (what a receiver dedupes on: the Web
    Push Topic, an email's Message-ID, the SSE event id). A second raw send may only ever
    happen to a delivery whose worker was lost mid-send (its row counts a second attempt).
    """
    rows = pg_query(pg_url, "SELECT key, user_id FROM notif_notification")
    counts = Counter(rows)
    assert set(counts) == workload.expected, (
        f"missing {len(workload.expected - set(counts))}, unexpected {len(set(counts) - workload.expected)}")
    assert max(counts.values()) == 1
    deliveries = {f"notif-delivery-{i}": (status, attempts) for i, status, attempts in
                  pg_query(pg_url, "SELECT id, status, attempts FROM notif_delivery")}
    assert len(deliveries) == len(workload.expected)
    assert {status for status, _ in deliveries.values()} == {"sent"}
    sends = Counter(line.split()[0] for line in record_file.read_text().splitlines())
    assert set(sends) == set(deliveries), "a delivery never reached its channel"
    repeated = {key: n for key, n in sends.items() if n > 1}
    for key in repeated:
        assert deliveries[key][1] >= 2, f"{key} was sent twice without a lost attempt to explain it"
    assert len(repeated) <= 0.01 * len(deliveries)
    return {"stored": len(rows), "deliveries": len(deliveries), "resent_after_lost_attempt": len(repeated)}
