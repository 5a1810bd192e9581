"""A channel for the fault-injection tests: appends every send to a file, as the outside world would see it.

Loaded with NOTIF_PLUGINS=notif_test_recorder (tests/plugins on PYTHONPATH); writes one line
"<idempotency key> <notification id> <pid>" per send to NOTIF_TEST_RECORD_FILE. An append of
a short line with O_APPEND is atomic, so several worker processes can share the file.
"""
import os

from notif.channels import Channel
from notif.hookspecs import hookimpl


class Recorder(Channel):
    name = "recorder"

    def send(self, notification, delivery, ctx):
        line = f"{delivery.idempotency_key} {notification.id} {os.getpid()}\n".encode()
        fd = os.open(os.environ["NOTIF_TEST_RECORD_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


@hookimpl
def notif_channels(settings):
    return [Recorder()]
