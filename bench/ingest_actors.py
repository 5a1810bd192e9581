"""notif's own worker for the throughput benchmark, unchanged except for one thing.

The benchmark puts ingest batches straight into Dramatiq's Redis queue (moto's SQS cannot
hold 100,000 messages and stay fast), so there is nothing on SQS to delete afterwards:
the SQS DeleteMessageBatch call is replaced by a no-op. Everything else is `notif.actors`.
"""
import os

import notif.ingest

notif.ingest.delete_batch = lambda client, queue_url, messages: []

from notif.actors import *  # noqa: E402,F401,F403

if os.environ.get("BENCH_ENQUEUE_EACH"):  # A/B: one Redis round trip per delivery, as before enqueue_many
    from notif.worker.tasks import Tasks

    def _each(self, queued):
        for q in queued:
            self.deliver[q.priority].send(q.delivery_id)

    Tasks.enqueue_deliveries = _each

if os.environ.get("BENCH_NO_BATCHED_DELIVERY"):  # the per-message delivery path, to measure it on its own
    import notif.deliver as _deliver

    _deliver.deliver_batch = lambda rt, ids: list(ids)
