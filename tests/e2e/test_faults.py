"""Fault injection: 2,000 messages per scenario through real processes and real services.

Each test sends a paced workload (with duplicates by id) across the three queues, breaks
something a third of the way through, mends it, and checks the history: every
acknowledged input stored exactly once, every delivery at its channel exactly once.
Run alone with `pytest -m faults`.
"""
import signal
import time

import pytest

from faults import OwnRedis, TcpProxy, Workload, check_history, settle, stored
from helpers import ROOT, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

N = 2000


@pytest.fixture
def fault_env(env, tmp_path):
    return {**env,
            "NOTIF_PLUGINS": "notif_test_recorder", "NOTIF_DEFAULT_CHANNELS": "recorder",
            "NOTIF_TEST_RECORD_FILE": str(tmp_path / "sends.log"), "PYTHONPATH": str(ROOT / "tests" / "plugins"),
            "NOTIF_SWEEP_INTERVAL": "1", "NOTIF_SWEEP_GRACE": "5", "NOTIF_SWEEP_LEASE": "8",
            "NOTIF_LEADER_TTL": "3", "NOTIF_VISIBILITY_TIMEOUT": "5", "NOTIF_LOG_LEVEL": "WARNING",
            # Dramatiq would hand a dead worker's messages on after this; make sure notif's own
            # outbox sweep is what recovers them within the test
            "NOTIF_BROKER_HEARTBEAT_TIMEOUT": "600000"}


@pytest.fixture
def run(processes, fault_env, sqs, queues, pg, tmp_path, request):
    """Start the stack, the workload; returns helpers for the scenario; checks the history at the end."""
    processes.env.update(fault_env)

    class Run:
        workload = Workload(sqs, queues, N)

        def start(self, pollers=1, workers=1, schedulers=1):
            for i in range(workers):
                processes.start_worker(name=f"worker{i}")
            for i in range(pollers):
                processes.start_poller(name=f"poller{i}")
            for i in range(schedulers):
                processes.start_scheduler(name=f"scheduler{i}")
            self.workload.start()
            return self

        def when_stored(self, count):
            wait_until(lambda: stored(pg) >= count, 180, 0.2, f"{count} notifications stored")

        def finish(self):
            self.workload.wait_sent()
            settle(pg, sqs, queues, len(self.workload.expected))
            summary = check_history(pg, tmp_path / "sends.log", self.workload)
            print(f"\n{request.node.name}: {summary}")
            return summary

    return Run()


def test_kill_9_of_a_worker_mid_batch(run, processes):
    run.start()
    run.when_stored(N // 3)
    processes.kill9("worker0")
    processes.start_worker(name="worker-after")
    run.finish()


def test_kill_9_of_the_poller_between_hand_off_and_delete(run, processes):
    run.start()
    run.when_stored(N // 3)
    processes.kill9("poller0")  # what it had received is hidden until the visibility timeout
    processes.start_poller(name="poller-after")
    run.finish()


def test_two_of_every_process_at_once_and_a_leader_killed(run, processes):
    run.start(pollers=2, workers=2, schedulers=2)
    run.when_stored(N // 3)
    processes.kill9("scheduler0")  # whichever led, the other leads within the lock's TTL
    processes.kill9("worker1")
    run.finish()


def test_duplicate_sqs_deliveries(run, processes):
    # a visibility timeout shorter than the work: SQS hands messages out again while they are in flight
    processes.env["NOTIF_VISIBILITY_TIMEOUT"] = "1"
    run.start(pollers=2)
    run.finish()


def test_sigterm_mid_run_loses_nothing(run, processes):
    run.start()
    run.when_stored(N // 3)
    for name in ("worker0", "poller0"):
        proc = processes.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, f"{name} did not exit 0 on SIGTERM"
    processes.start_worker(name="worker-after")
    processes.start_poller(name="poller-after")
    run.finish()


@pytest.fixture
def own_redis(tmp_path, fault_env, processes):
    server = OwnRedis(tmp_path)
    processes.env["REDIS_URL"] = server.url
    yield server
    server.close()


def test_a_redis_restart_loses_nothing(run, processes, own_redis):
    run.start()
    run.when_stored(N // 3)
    own_redis.kill()  # every queued Dramatiq message is gone with it
    time.sleep(2)  # Redis stays down for a while (nothing to wait on: it is absent)
    own_redis.start()
    run.finish()


@pytest.fixture
def db_proxy(pg, processes):
    proxy = TcpProxy(5432)
    processes.env["DATABASE_URL"] = pg.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    yield proxy
    proxy.close()


def test_the_database_unreachable_for_a_while(run, processes, db_proxy):
    run.start()
    run.when_stored(N // 3)
    db_proxy.cut()
    time.sleep(5)  # the outage lasts 5 s (nothing to wait on: the database is gone)
    db_proxy.restore()
    run.finish()
