"""Bad input, tried hard: whatever arrives, the parser answers with a message or a reason."""
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notif.errors import InvalidMessage, PermanentError
from notif.inputs import unstorable
from notif.messages import COMMANDS, InputMessage, parse_message
from notif.templates import TemplateStore, builtin_dir, render

FIELDS = ["id", "type", "title", "message", "user_id", "recipients", "variables", "channels", "priority",
          "send_at", "batch_key", "batch_window", "data", "cancel", "userId", "update", "retract", "unread",
          "expires_at", "ttl"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20)


def check(body) -> None:
    try:
        result = parse_message(body)
    except InvalidMessage as exc:
        assert exc.reason and isinstance(exc.reason, str)
        assert exc.field is None or isinstance(exc.field, str)
    else:
        if isinstance(result, tuple(COMMANDS.values())):  # cancel, update, retract: no recipients
            assert unstorable(result.model_dump()) is None
            return
        assert isinstance(result, InputMessage)
        assert result.recipient_list()
        assert unstorable(result.model_dump()) is None  # nothing PostgreSQL would refuse gets through


@given(st.binary(max_size=2000))
def test_any_bytes(body):
    check(body)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8))
def test_any_object_of_known_fields_with_any_values(fields):
    check(json.dumps(fields))


@given(user=st.text(min_size=1, max_size=40), title=st.text(max_size=200), priority=st.text(max_size=10),
       send_at=st.text(max_size=30))
def test_plausible_messages_with_odd_values(user, title, priority, send_at):
    check(json.dumps({"user_id": user, "title": title, "message": "m", "priority": priority, "send_at": send_at}))


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deep_json_is_a_reason_not_a_crash(depth):
    with pytest.raises(InvalidMessage) as info:
        parse_message('{"data": ' + "[" * depth + "]" * depth + "}")
    assert info.value.field in ("body", "data", None)


def test_oversized_body():
    with pytest.raises(InvalidMessage, match="limit is 262144"):
        parse_message(json.dumps({"user_id": "u", "title": "t", "message": "x" * 300_000}))


def test_send_at_must_be_iso_8601_with_a_zone():
    base = {"user_id": "u", "title": "t", "message": "m"}
    assert parse_message(json.dumps({**base, "send_at": "2020-01-01T00:00:00Z"})).send_at.year == 2020  # past: now
    for bad in ("tomorrow", "2026-11-24T09:00:00", "2026-13-01T00:00:00Z"):
        with pytest.raises(InvalidMessage) as info:
            parse_message(json.dumps({**base, "send_at": bad}))
        assert info.value.field == "send_at"


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
@given(st.dictionaries(st.sampled_from(["submitterName", "branchName", "reportId", "other"]),
                       json_values, max_size=4))
def test_templates_render_any_variables_or_name_what_is_missing(variables):
    template = TemplateStore([builtin_dir()]).get("REPORT_SUBMITTED")
    try:
        rendered = render(template, variables)
    except PermanentError as exc:
        assert exc.reason
    else:
        assert "<script" not in (rendered.html or "")


@given(st.text(max_size=100))
def test_html_in_variables_is_always_escaped(name):
    rendered = render(TemplateStore([builtin_dir()]).get("REPORT_SUBMITTED"),
                      {"submitterName": name, "branchName": "<b>x</b>", "reportId": 1})
    assert "<b>x</b>" not in rendered.html and "&lt;b&gt;x&lt;/b&gt;" in rendered.html
