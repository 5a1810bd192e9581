"""Feature flags: off is the old behaviour (delivered the plain way), never an error."""
import datetime as dt
from dataclasses import replace

import httpx
import pytest

from notif.config import FEATURES, load_settings
from notif.deliver import deliver
from notif.errors import ConfigError
from notif.ingest import ingest_batch
from notif.models import Delivery, Digest, Notification
from test_deliver import Recording
from test_ingest import Enqueued, put, receive


def without(runtime, *names):
    runtime.settings = replace(runtime.settings, features=frozenset(FEATURES) - set(names))
    return runtime


def test_flags_parse_and_each_own_variable_wins():
    s = load_settings({"NOTIF_FEATURES": "all,-digests", "NOTIF_FEATURE_PUSH": "off", "NOTIF_FEATURE_DIGESTS": ""},
                      use_state=False)
    assert [n for n, on in s.feature_states().items() if not on] == ["push", "digests"]
    assert load_settings({"NOTIF_FEATURES": "none", "NOTIF_FEATURE_SSE": "on"}, use_state=False).feature_states() == \
        {n: n == "sse" for n in FEATURES}
    assert all(load_settings({}, use_state=False).feature_states().values())  # all on by default
    with pytest.raises(ConfigError, match="unknown feature 'digest' \\(did you mean 'digests'\\?\\)"):
        load_settings({"NOTIF_FEATURES": "digest"}, use_state=False)


def test_digests_off_delivers_each_on_its_own(runtime, sqs, queues):
    without(runtime, "digests")
    for i in range(3):
        put(sqs, queues["normal"], {"id": f"k{i}", "user_id": "u1", "title": "t", "message": "m", "batch_key": "b"})
    enqueued = Enqueued()
    ingest_batch(runtime, receive(sqs, queues["normal"], expect=3), enqueued)
    assert Digest.select().count() == 0 and len(enqueued) == 3


def test_scheduling_off_sends_now_and_priorities_off_makes_everything_normal(runtime, sqs, queues):
    without(runtime, "scheduling", "priorities")
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    put(sqs, queues["high"], {"id": "k", "user_id": "u1", "title": "t", "message": "m", "send_at": later,
                              "priority": "high"})
    enqueued = Enqueued()
    ingest_batch(runtime, receive(sqs, queues["high"], "high", expect=1), enqueued)
    n = Notification.get()
    assert n.send_at is None and n.priority == "normal" and enqueued == [(Delivery.get().id, "normal")]


def test_push_off_records_the_delivery_as_skipped_and_rate_limits_off_defers_nothing(runtime, sqs, queues):
    without(runtime, "push", "rate_limits")
    put(sqs, queues["normal"], {"id": "k", "user_id": "u1", "title": "t", "message": "m", "channels": ["in_app", "push"]})
    ingest_batch(runtime, receive(sqs, queues["normal"], expect=1), Enqueued())
    push = Delivery.get(Delivery.channel == "push")
    assert (push.status, push.last_error) == ("skipped", "feature push is off (NOTIF_FEATURES)")
    runtime.settings = replace(runtime.settings, rate_limits={"test": (1, 60.0)})
    runtime.channels["test"] = Recording("test")
    n = Notification.get()
    outcomes = [deliver(runtime, Delivery.create(notification=n, channel="test", status="pending").id)]
    n2 = Notification.create(user_id="u1", key="k2", title="t", message="m", priority="normal", correlation_id="c")
    outcomes.append(deliver(runtime, Delivery.create(notification=n2, channel="test").id))
    assert outcomes == ["sent", "sent"]


@pytest.mark.e2e
def test_sse_off_answers_404_and_readyz_lists_the_flags(processes, env):
    from notif.auth import make_token
    processes.env.update({"NOTIF_FEATURE_SSE": "off", "NOTIF_FEATURES": "all,-digests"})
    base = processes.start_web()
    events = httpx.get(f"{base}/events", params={"token": make_token(env["NOTIF_JWT_SECRET"], "u1")}, timeout=10)
    assert events.status_code == 404 and "live events are turned off" in events.json()["reason"]
    features = httpx.get(f"{base}/readyz", timeout=10).json()["features"]
    assert features == {n: n not in ("sse", "digests") for n in FEATURES}
