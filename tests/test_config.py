import json
import re

import pytest

from helpers import ROOT
from notif.config import documented_variables, load_settings
from notif.errors import ConfigError


def test_missing_queue_says_which_variable_and_what_to_do():
    settings = load_settings({}, use_state=False)
    with pytest.raises(ConfigError) as info:
        settings.queue_url("normal")
    assert str(info.value) == ("AWS_SQS_NOTIFICATION_QUEUE_URL is not set; "
                               "run `notif dev` for a local stack or see README › Configuration")


def test_defaults_and_casts():
    settings = load_settings({"PORT": "9000", "NOTIF_POLL_WEIGHTS": "high=5, normal=2, low=1",
                              "NOTIF_DISABLE_PLUGINS": "push, email"}, use_state=False)
    assert settings.port == 9000
    assert settings.poll_weights == {"high": 5, "normal": 2, "low": 1}
    assert settings.disable_plugins == ("push", "email")
    assert settings.database_url == "sqlite:///notif.db"


@pytest.mark.parametrize("variable,value", [("PORT", "eighty"), ("NOTIF_POLL_WEIGHTS", "high=1,normal=1"),
                                            ("NOTIF_POLL_WEIGHTS", "high=0,normal=1,low=1")])
def test_invalid_values_name_the_variable(variable, value):
    with pytest.raises(ConfigError, match=re.escape(variable)):
        load_settings({variable: value}, use_state=False)


def test_dev_state_fills_in_what_the_environment_leaves_unset(tmp_path):
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"pid": 1, "env": {"REDIS_URL": "redis://from-state", "PORT": "8123"}}))
    settings = load_settings({"NOTIF_STATE_DIR": str(tmp_path), "PORT": "9999"})
    assert settings.redis_url == "redis://from-state"
    assert settings.port == 9999  # the real environment wins


def test_readme_documents_every_variable():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name, _, _ in documented_variables() if f"`{name}`" not in readme]
    assert not missing, f"README › Configuration lacks {missing}"


def test_tokens_in_urls_never_reach_the_access_log():
    import logging

    from notif.logs import ConsoleFormatter, Redacting
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d', (
        "127.0.0.1:5", "GET", "/events?token=abc.def-1&last_event_id=4", "1.1", 200), None)
    assert Redacting(ConsoleFormatter()).format(record).endswith(
        '127.0.0.1:5 - "GET /events?token=[redacted]&last_event_id=4 HTTP/1.1" 200')


@pytest.mark.parametrize("line", [
    "GET /events?%74oken=SECRET&x=1",  # the server decodes the name: it is `token`
    "GET /api?last_event_id=4&TOKEN=SECRET",
    "Authorization: Bearer SECRET",
    "headers={'authorization': 'bearer SECRET'}",
])
def test_credentials_are_redacted_in_any_shape(line):
    from notif.logs import redact
    assert "SECRET" not in redact(line)


def test_anything_shaped_like_a_jwt_is_redacted_and_the_rest_is_kept():
    from helpers import token
    from notif.logs import redact
    jwt = token("u1")
    assert redact(f"user_id=u1 saw {jwt} at /x?a=b") == "user_id=u1 saw [redacted jwt] at /x?a=b"


def test_settings_never_print_their_secrets():
    settings = load_settings({"NOTIF_JWT_SECRET": "jwt-very-secret", "AWS_SECRET_ACCESS_KEY": "aws-very-secret",
                              "DATABASE_URL": "postgres://app:db-very-secret@db.example:5432/app",
                              "REDIS_URL": "redis://:redis-very-secret@cache:6379/0"}, use_state=False)
    text = repr(settings)
    assert "very-secret" not in text
    assert "postgres://app:***@db.example:5432/app" in text and "redis://:***@cache:6379/0" in text
    assert settings.jwt_secret == "jwt-very-secret"  # (still there to use)
