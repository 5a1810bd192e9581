"""A pytest plugin for channel authors (entry point ``pytest11``): the ``notif_channel_harness`` fixture."""
from __future__ import annotations

import pytest

from . import ChannelHarness


@pytest.fixture
def notif_channel_harness(tmp_path):
    """``notif_channel_harness(channel, settings={...})`` → a :class:`notif.testing.ChannelHarness`."""
    def make(channel, settings=None):
        return ChannelHarness(channel, tmp_path, settings)
    return make
