import json

import pytest

from notif.errors import InvalidMessage
from notif.messages import parse_message


@pytest.mark.parametrize("body,field,words", [
    ("{not json", "body", "not valid JSON"),
    ("[1, 2]", "body", "JSON object"),
    ('{"title": "t", "message": "m"}', None, "user_id"),
    ('{"user_id": "u", "recipients": ["v"], "title": "t", "message": "m"}', None, "exactly one"),
    ('{"user_id": "u", "title": "only a title"}', None, "`type`"),
    ('{"user_id": "u", "title": "t", "message": "m", "priority": "urgent"}', "priority", "'high'"),
    ('{"recipients": ["a", {"email": "b@example.com"}], "type": "X"}', "recipients.1.user_id", "required"),
    ('{"recipients": [], "type": "X"}', "recipients", "at least 1"),
    ('{"user_id": "u", "type": "../../etc/passwd"}', "type", "pattern"),
    ('{"user_id": "u", "title": "t", "message": "m", "chanels": ["push"]}', "chanels",
     "unknown field (did you mean `channels`?)"),
    ('{"user_id": "", "title": "t", "message": "m"}', "user_id", "at least 1"),
])
def test_invalid_messages_name_the_field(body, field, words):
    with pytest.raises(InvalidMessage) as info:
        parse_message(body)
    assert info.value.field == field
    assert words in info.value.reason


def test_recipients_in_both_forms_and_duplicates_collapse():
    msg = parse_message(json.dumps({"recipients": ["u1", {"user_id": "u2", "email": "b@example.com"}, "u1"],
                                    "type": "REPORT_SUBMITTED"}))
    assert [(r.user_id, r.email) for r in msg.recipient_list()] == [("u1", None), ("u2", "b@example.com")]
    assert msg.uses_template


def test_literal_title_and_message_need_no_template():
    msg = parse_message('{"user_id": "u", "title": "Hi", "message": "there", "type": "GREETING"}')
    assert not msg.uses_template
    assert [r.user_id for r in msg.recipient_list()] == ["u"]


def test_the_old_workers_camelcase_message_maps_to_the_new_one():
    old = parse_message(json.dumps({"userId": "u1", "title": "Report", "message": "Ana sent one",
                                    "type": "REPORT_SUBMITTED", "data": {"reportId": 42}}))
    new = parse_message(json.dumps({"user_id": "u1", "title": "Report", "message": "Ana sent one",
                                    "type": "REPORT_SUBMITTED", "data": {"reportId": 42}}))
    assert old == new
    assert not old.uses_template  # title and message given: `type` is the label, as in the old worker
    assert parse_message('{"userId": "u1", "title": "t", "message": "m"}').data is None  # `data` optional


@pytest.mark.parametrize("body,field,words", [
    ('{"userId": "", "title": "t", "message": "m"}', "userId", "at least 1"),
    ('{"userId": "u", "user_id": "u", "title": "t", "message": "m"}', "user_id", "use one format"),
    ('{"userId": "u", "title": "t", "message": "m", "actionUrl": "/x"}', "actionUrl", "the old format has only"),
    ('{"userId": "u", "title": "t"}', None, "`type`"),
])
def test_a_bad_old_format_message_names_the_field_as_written(body, field, words):
    with pytest.raises(InvalidMessage) as info:
        parse_message(body)
    assert info.value.field == field and words in info.value.reason


@pytest.mark.parametrize("body,field,words", [
    ('{"user_id": "u", "title": "bad\\u0000title", "message": "m"}', "title", "contains a NUL character"),
    ('{"user_id": "u", "title": "t", "message": "\\ud800"}', "message", "a lone surrogate (U+D800)"),
    ('{"user_id": "u", "type": "X", "variables": {"name": "a\\u0000"}}', "variables.name", "NUL"),
    ('{"user_id": "u", "type": "X", "variables": {"na\\u0000me": "a"}}', "variables", "a key with a NUL"),
    ('{"recipients": ["a", {"user_id": "b", "email": "b\\udfff@example.com"}], "type": "X"}', "recipients.1.email",
     "lone surrogate"),
    ('{"user_id": "u", "title": "t", "message": "m", "data": {"items": [1, "\\u0000"]}}', "data.items.1", "NUL"),
    ('{"userId": "u\\u0000", "title": "t", "message": "m"}', "userId", "NUL"),  # named as the producer wrote it
    ('{"cancel": "k\\u0000"}', "cancel", "NUL"),
])
def test_strings_the_store_cannot_hold_are_refused_naming_the_field(body, field, words):
    with pytest.raises(InvalidMessage) as info:
        parse_message(body)
    assert info.value.field == field
    assert info.value.reason.startswith(f"{field}: ") and words in info.value.reason
    assert "cannot be stored" in info.value.reason
