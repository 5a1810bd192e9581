"""Monitoring from the outside, as an operator sees it: logs, /metrics, readyz, `notif stats`."""
import json
import os
import subprocess
import sys

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from faults import OwnRedis
from helpers import free_port, queue_counts, wait_until
from notif.models import Delivery, Notification

pytestmark = pytest.mark.e2e


def scrape(port: int) -> dict:
    """{(name, frozenset(labels)): value} from a /metrics endpoint."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return sum(v for (n, ls), v in samples.items()
               if n == name and all((k, val) in ls for k, val in labels.items()))


@pytest.fixture
def ports():
    return {"worker": free_port(), "poller": free_port(), "scheduler": free_port()}


@pytest.fixture
def stack(processes, ports):
    processes.env.update({"NOTIF_HEARTBEAT_SECONDS": "0.5"})
    for kind, start in (("worker", processes.start_worker), ("poller", processes.start_poller),
                        ("scheduler", processes.start_scheduler)):
        processes.env["NOTIF_METRICS_PORT"] = str(ports[kind])
        start()
    processes.env.pop("NOTIF_METRICS_PORT")
    return processes


def send_known_run(sqs, queues):
    """5 good messages (one sent twice) and 2 bad ones: 8 received, 5 stored, 1 duplicate, 2 dead."""
    for i in range(5):
        sqs.send_message(QueueUrl=queues["high"], MessageBody=json.dumps(
            {"id": f"k{i}", "user_id": f"u{i}", "title": "t", "message": "m"}))
    sqs.send_message(QueueUrl=queues["high"], MessageBody=json.dumps(
        {"id": "k0", "user_id": "u0", "title": "t", "message": "m"}))
    sqs.send_message(QueueUrl=queues["normal"], MessageBody="{broken")
    sqs.send_message(QueueUrl=queues["normal"], MessageBody=json.dumps({"user_id": "u", "type": "NOPE"}))


def settled(sqs, queues):
    wait_until(lambda: Notification.select().count() == 5 and
               Delivery.select().where(Delivery.status == "sent").count() == 5 and
               sum(queue_counts(sqs, queues["dlq"])) == 2 and
               all(queue_counts(sqs, queues[p]) == (0, 0) for p in ("high", "normal", "low")),
               60, 0.2, "the known run to settle")


def test_metrics_move_by_what_was_sent(stack, sqs, queues, ports, pg):
    send_known_run(sqs, queues)
    settled(sqs, queues)
    worker = wait_until(lambda: (s := scrape(ports["worker"])) and
                        value(s, "notif_deliveries_total", outcome="sent") == 5 and s, 20, 0.3, "worker metrics")
    assert value(worker, "notif_messages_processed_total", outcome="stored") == 5
    assert value(worker, "notif_messages_processed_total", outcome="duplicate") == 1
    assert value(worker, "notif_messages_processed_total", outcome="dead_lettered") == 2
    assert value(worker, "notif_errors_total", stage="ingest", kind="permanent") == 2
    assert value(worker, "notif_delivery_latency_seconds_count", priority="high", channel="in_app") == 5
    assert value(worker, "notif_message_processing_seconds_count") == 8
    assert value(worker, "dramatiq_messages_total") > 0  # Dramatiq's own figures, summed the same way
    poller = scrape(ports["poller"])
    assert value(poller, "notif_messages_received_total", priority="high") == 6
    assert value(poller, "notif_messages_received_total", priority="normal") == 2
    assert value(poller, "process_resident_memory_bytes") > 0
    scheduler = scrape(ports["scheduler"])
    assert value(scheduler, "notif_dead_letters", kind="input") == 2
    assert value(scheduler, "notif_sqs_queue_messages", queue="high") == 0
    assert value(scheduler, "notif_processes_alive", kind="worker") == 1


def stats(env) -> dict:
    result = subprocess.run([sys.executable, "-m", "notif.cli", "stats", "--json"], env={**os.environ, **env},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_notif_stats_matches_what_was_sent(stack, sqs, queues, env, pg):
    send_known_run(sqs, queues)
    settled(sqs, queues)
    snap = stats(env)
    window = snap["rates"]["15m"]
    assert {k: window[k] for k in ("received", "stored", "duplicate", "dead_lettered", "sent", "delivery_failed")} == \
        {"received": 8, "stored": 5, "duplicate": 1, "dead_lettered": 2, "sent": 5, "delivery_failed": 0}
    assert snap["dead_letters"] == {"input": 2, "delivery": 0, "webhook": 0}
    assert snap["sqs"]["high"] == {"visible": 0, "in_flight": 0}
    assert {p["kind"] for p in snap["processes"] if p["alive"]} == {"poller", "worker", "scheduler"}
    text = subprocess.run([sys.executable, "-m", "notif.cli", "stats"], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60).stdout
    assert "DEAD LETTERS           inputs 2, deliveries 0" in text


def test_a_process_that_stops_is_noticed(stack, env):
    wait_until(lambda: any(p["kind"] == "poller" and p["alive"] for p in stats(env)["processes"]), 20, 0.3,
               "the poller's heartbeat")
    stack.kill9("poller")  # no goodbye: its heartbeat just stops
    wait_until(lambda: [p["alive"] for p in stats(env)["processes"] if p["kind"] == "poller"] == [False], 20, 0.3,
               "the poller to be reported stopped")


def test_logs_carry_one_correlation_id_from_poll_to_delivery(stack, sqs, queues, pg):
    sqs.send_message(QueueUrl=queues["low"], MessageBody=json.dumps({"user_id": "c1", "title": "t", "message": "m"}),
                     MessageAttributes={"correlation_id": {"DataType": "String", "StringValue": "from-the-producer"}})
    sqs.send_message(QueueUrl=queues["low"], MessageBody=json.dumps({"user_id": "c2", "title": "t", "message": "m"}))
    wait_until(lambda: Delivery.select().where(Delivery.status == "sent").count() == 2, 60, 0.2, "two deliveries")

    def lines(name):
        return [json.loads(line) for line in stack.log(name).splitlines() if line.startswith("{")]

    def logged(message):
        return sum(len(r.get("correlation_ids", [r.get("correlation_id")])) for r in lines("worker")
                   if r["message"] == message)

    # in-app is delivered inside the ingest batch, so "delivered" may come before "batch ingested"
    wait_until(lambda: logged("delivered") == 2 and logged("batch ingested") == 2, 20, 0.2, "logs")
    handed = [r for r in lines("poller") if r["message"] == "batch handed to ingest"]
    born = {cid for r in handed for cid in r["correlation_ids"]}
    assert "from-the-producer" in born and len(born) == 2
    worker = lines("worker")
    ingested = {cid for r in worker if r["message"] == "batch ingested" for cid in r["correlation_ids"]}
    delivered = {r["correlation_id"]: r for r in worker if r["message"] == "delivered"}
    assert born == ingested == set(delivered)
    assert delivered["from-the-producer"]["user_id"] == "c1"
    assert all(r["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"} and "time" in r for r in worker)


def test_every_process_logs_its_own_process_type(stack, sqs, queues, pg):
    """Each process is assembled in one place with its own logging: no line is mislabelled."""
    base = stack.start_web()
    sqs.send_message(QueueUrl=queues["normal"], MessageBody=json.dumps({"user_id": "p1", "title": "t", "message": "m"}))
    wait_until(lambda: Delivery.select().where(Delivery.status == "sent").count() == 1, 60, 0.2, "the delivery")
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200

    def lines(name):
        return [json.loads(line) for line in stack.log(name).splitlines() if line.startswith("{")]

    expect = {"poller": "poller started", "scheduler": "scheduler started", "worker": "batch ingested",
              "web": "Application startup complete."}
    wait_until(lambda: all(any(r["message"] == m for r in lines(name)) for name, m in expect.items()), 20, 0.2,
               "each process's first lines")
    for name in expect:
        kinds = {r.get("process_type") for r in lines(name)}
        assert kinds == {name}, f"{name} logged lines as {kinds}"


@pytest.fixture
def web_with_own_redis(processes, tmp_path):
    server = OwnRedis(tmp_path)
    processes.env["REDIS_URL"] = server.url
    base = processes.start_web()
    yield base, server
    server.close()


def test_readyz_turns_unhealthy_when_redis_stops(web_with_own_redis):
    base, redis_server = web_with_own_redis
    assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200
    redis_server.kill()
    response = httpx.get(f"{base}/readyz", timeout=10)
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok" and checks["sqs"] == "ok" and checks["redis"].startswith("error")
    redis_server.start()
    wait_until(lambda: httpx.get(f"{base}/readyz", timeout=10).status_code == 200, 20, 0.3, "readiness again")
    # the restarted Redis lost every heartbeat; the web process's own is back within a beat
    wait_until(lambda: "web" in httpx.get(f"{base}/readyz", timeout=10).json().get("processes", {}), 20, 0.3,
               "the web process's heartbeat")
