"""The webhook settings, read at start-up: URLs, the secret, the event filter; every mistake a ConfigError
naming what is wrong, and the secret never shown."""
import pytest

from notif.config import load_settings
from notif.errors import ConfigError
from notif.webhooks.events import EVENTS, parse_events
from webhook_receiver import SECRET


def settings(**env):
    return load_settings(env, use_state=False)


def test_one_or_several_urls_with_the_secret():
    s = settings(NOTIF_WEBHOOK_URL=" https://app.example.com/hooks/notif, https://audit.example.com/in  "
                                   "https://app.example.com/hooks/notif", NOTIF_WEBHOOK_SECRET=SECRET)
    assert s.webhook_urls == ("https://app.example.com/hooks/notif", "https://audit.example.com/in")
    assert s.webhook_events == frozenset(EVENTS) and not s.webhook_topic_recipients
    assert settings().webhook_urls == ()  # unset: no webhooks


@pytest.mark.parametrize("url, problem", [
    ("ftp://app.example.com/hook", "must use https"),
    ("https://user:pw@app.example.com/hook", "must not carry credentials"),
    ("https:///hook", "no host"),
    ("https://2130706433/hook", "ambiguous form"),
    ("http://app.example.com/hook", "plain http"),
])
def test_a_bad_url_stops_start_up_naming_it(url, problem):
    with pytest.raises(ConfigError, match=problem) as caught:
        settings(NOTIF_WEBHOOK_URL=f"https://ok.example.com/hook,{url}", NOTIF_WEBHOOK_SECRET=SECRET)
    assert "NOTIF_WEBHOOK_URL" in str(caught.value) and repr(url) in str(caught.value)


def test_plain_http_only_to_a_host_the_outbound_allowance_lists():
    for allow, url in (("127.0.0.1", "http://127.0.0.1:8080/hook"), ("10.0.0.0/8", "http://10.1.2.3/hook"),
                       ("hooks.internal:8080", "http://hooks.internal:8080/in"), ("hooks.internal", "http://hooks.internal/in")):
        assert settings(NOTIF_WEBHOOK_URL=url, NOTIF_WEBHOOK_SECRET=SECRET, NOTIF_OUTBOUND_ALLOW=allow).webhook_urls == (url,)
    with pytest.raises(ConfigError, match="add `hooks.internal` there"):
        settings(NOTIF_WEBHOOK_URL="http://hooks.internal/in", NOTIF_WEBHOOK_SECRET=SECRET,
                 NOTIF_OUTBOUND_ALLOW="10.0.0.0/8")


def test_a_url_needs_the_secret():
    with pytest.raises(ConfigError, match="NOTIF_WEBHOOK_SECRET is not"):
        settings(NOTIF_WEBHOOK_URL="https://app.example.com/hook")


def test_a_bad_secret_is_named_but_never_shown():
    leaky = "whsec_c2hvcnQtYnV0LXNlY3JldA=="  # 16 bytes
    with pytest.raises(ConfigError) as caught:
        settings(NOTIF_WEBHOOK_URL="https://app.example.com/hook", NOTIF_WEBHOOK_SECRET=leaky)
    text = str(caught.value)
    assert text.startswith("NOTIF_WEBHOOK_SECRET=*** is invalid") and "16 bytes" in text
    assert "c2hvcnQtYnV0LXNlY3JldA" not in text
    good = settings(NOTIF_WEBHOOK_URL="https://app.example.com/hook", NOTIF_WEBHOOK_SECRET=SECRET)
    assert SECRET.removeprefix("whsec_") not in repr(good) and "webhook_secret='***'" in repr(good)


def test_the_event_filter():
    assert parse_events("all") == frozenset(EVENTS)
    assert parse_events("delivery.failed, notification.read") == {"delivery.failed", "notification.read"}
    assert parse_events("delivery.*") == {"delivery.sent", "delivery.failed"}
    assert parse_events("all,-notification.seen,-delivery.*") == {
        "notification.stored", "notification.read", "notification.archived"}
    with pytest.raises(ConfigError, match="NOTIF_WEBHOOK_EVENTS=.*unknown webhook event 'notification.opened'"):
        settings(NOTIF_WEBHOOK_EVENTS="notification.opened")


def test_the_timeout_fits_inside_the_senders_time_limit():
    assert settings(NOTIF_WEBHOOK_TIMEOUT="2.5").webhook_timeout == 2.5
    for wrong in ("0", "90", "-1"):
        with pytest.raises(ConfigError, match="NOTIF_WEBHOOK_TIMEOUT=.*at most 50"):
            settings(NOTIF_WEBHOOK_TIMEOUT=wrong)
