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
