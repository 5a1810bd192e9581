"""The Procfile's general worker consumes every queue notif's actors are declared on (a queue left out
is work that is written and never done: the webhook queue was the first to need this)."""
import re

from dramatiq.brokers.stub import StubBroker

from helpers import ROOT
from notif.worker.tasks import declare


def test_the_general_worker_takes_every_queue_and_the_readme_shows_that_procfile():
    procfile = (ROOT / "Procfile").read_text()
    worker = re.search(r"^worker: .*--queues \$\{NOTIF_WORKER_QUEUES:-([^}]*)\}", procfile, re.M)
    assert worker, "the Procfile's worker line lists its queues with NOTIF_WORKER_QUEUES as the override"
    declared = {q for q in declare(StubBroker()).broker.get_declared_queues() if not q.endswith(".DQ")}  # (delay queues)
    assert set(worker.group(1).split()) == declared and "notif.webhook" in declared
    assert procfile.strip() in (ROOT / "README.md").read_text()
