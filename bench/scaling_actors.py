"""notif's worker for bench/scaling.py: `notif.actors`, except that the SQS delete skips the
messages the benchmark put straight into Dramatiq's queue (receipt handle ``bench``: they
never were on SQS); messages that came through moto are deleted as usual."""
import notif.ingest

_delete = notif.ingest.delete_batch


def _delete_received(client, queue_url, messages):
    real = [m for m in messages if m.receipt_handle != "bench"]
    return _delete(client, queue_url, real) if real else []


notif.ingest.delete_batch = _delete_received

from notif.actors import *  # noqa: E402,F401,F403
