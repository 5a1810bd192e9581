"""Fixtures the web tests share: a runtime on the `web` process's settings and an HTTP client to it."""
import httpx
import pytest

from notif.runtime import Runtime


@pytest.fixture
def rt(web, pg):
    """A pipeline runtime beside the real `notif serve`, sharing its database and Redis prefix."""
    runtime = Runtime.start(web["settings"])
    yield runtime
    runtime.redis.close()


@pytest.fixture
def http(web, pg):
    """An HTTP client to the real `notif serve` (reads may wait on a live stream)."""
    with httpx.Client(base_url=web["base"], timeout=httpx.Timeout(10, read=10)) as client:
        yield client
