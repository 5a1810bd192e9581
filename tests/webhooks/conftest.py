"""Fixtures the webhook tests share: a runtime whose webhooks are on, handing events to a list."""
import pytest

from notif.config import load_settings
from notif.runtime import Runtime
from notif.webhooks.outbox import WebhookOutbox, install
from webhook_receiver import SECRET, Receiver

ENDPOINTS = "https://hooks.example.com/notif https://audit.example.com/in"


class Hooked:
    """Runtimes with webhooks on: ``make(**env)``; ``handed`` is every event id handed to the sender."""

    def __init__(self, env: dict) -> None:
        self.env = env
        self.handed: list[int] = []
        self.runtimes: list[Runtime] = []

    def settings(self, **overrides):
        return load_settings({**self.env, "NOTIF_WEBHOOK_URL": ENDPOINTS, "NOTIF_WEBHOOK_SECRET": SECRET, **overrides},
                             use_state=False)

    def make(self, **overrides) -> Runtime:
        rt = Runtime.start(self.settings(**overrides))
        rt.webhooks = WebhookOutbox(rt.settings, enqueue=self.handed.extend)
        install(rt.webhooks)  # what Runtime.start does with its own
        self.runtimes.append(rt)
        return rt


@pytest.fixture
def hooked(env, pg):
    h = Hooked(env)
    yield h
    for rt in h.runtimes:
        rt.redis.close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()
