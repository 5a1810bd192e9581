"""Helpers for plugin authors: run a channel through notif's real delivery path in a few lines.

    from notif.testing import ChannelHarness

    def test_my_channel(tmp_path):
        harness = ChannelHarness(MyChannel(), tmp_path, settings={"MY_SETTING": "x"})
        result = harness.deliver(title="Hi", message="there", user_id="u1")
        assert result.status == "sent"

The harness keeps a SQLite database in ``tmp_path``, stores a notification and its
delivery row, and runs :func:`notif.deliver.deliver` — the claim, your ``send``, the
outcome — exactly as a worker does. (Also available as the pytest fixture
``notif_channel_harness``: ``notif_channel_harness(MyChannel(), settings={...})``.)
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from ..channels import Channel
from ..config import load_settings
from ..db import database, init_database
from ..deliver import RetryLater, deliver
from ..migrations import migrate
from ..models import Delivery, Notification
from ..runtime import Runtime
from ..templates import TemplateStore, builtin_dir


@dataclass
class Result:
    status: str  # sent, failed, skipped, or "retry"
    delivery: Delivery
    retry_in: float | None = None


class ChannelHarness:
    def __init__(self, channel: Channel, tmp_path: Path, settings: dict | None = None) -> None:
        env = {"DATABASE_URL": f"sqlite:///{Path(tmp_path) / 'notif-harness.db'}",
               # a test's receiver listens on loopback; ctx.http() refuses it unless allowed (as `notif dev` does)
               "NOTIF_OUTBOUND_ALLOW": "127.0.0.0/8,::1,localhost", **(settings or {})}
        self.settings = load_settings(env, use_state=False)
        init_database(self.settings.database_url)
        migrate()
        self.channel = channel
        self.runtime = Runtime(settings=self.settings, redis=None, channels={channel.name: channel},
                               templates=TemplateStore([builtin_dir()]))
        self._keys = itertools.count()

    def deliver(self, user_id: str = "u1", title: str = "Hello", message: str = "from a test", **fields) -> Result:
        """Store a notification (any Notification field may be given) and deliver it through the channel."""
        values = {"user_id": user_id, "key": f"harness-{next(self._keys)}", "title": title, "message": message,
                  "priority": "normal", "correlation_id": "harness", **fields}
        with database.connection_context():
            notification = Notification.create(**values)
            row = Delivery.create(notification=notification, channel=self.channel.name)
            try:
                status = deliver(self.runtime, row.id)
                retry_in = None
            except RetryLater as retry:
                status, retry_in = "retry", retry.delay
            return Result(status, Delivery.get_by_id(row.id), retry_in)


