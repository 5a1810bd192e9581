"""The email channel against a real SMTP server on loopback (aiosmtpd)."""
from dataclasses import replace

import pytest

from helpers import free_port
from notif.deliver import RetryLater, deliver
from notif.models import Delivery, Notification


@pytest.fixture
def mail_rt(runtime, smtp):
    return replace(runtime, settings=replace(runtime.settings, smtp_url=f"smtp://127.0.0.1:{smtp[1]}",
                                             email_from="Reports <notify@example.com>",
                                             public_url="https://app.example.com",
                                             unsubscribe_url="https://app.example.com/unsubscribe/{user_id}"))


def email_delivery(to="ana@example.com", **fields):
    values = {"user_id": "u1", "key": f"k{Notification.select().count()}", "title": "New report submitted",
              "message": "Ana <b>submitted</b> a report", "priority": "normal", "correlation_id": "cid-7",
              "recipient": {"email": to} if to else None,
              "actions": [{"id": "view", "label": "View report", "url": "/reports/42"},
                          {"id": "approve", "label": "Approve", "api_endpoint": "/api/reports/42/approve",
                           "method": "POST"}], **fields}
    n = Notification.create(**values)
    return Delivery.create(notification=n, channel="email")


def test_a_multipart_email_with_buttons_headers_and_inlined_css(mail_rt, smtp):
    inbox, _ = smtp
    d = email_delivery(html="<p><strong>Ana</strong> &lt;script&gt; submitted</p>",
                       channel_content={"email": {"subject": "Ana submitted a report for North"}})
    assert deliver(mail_rt, d.id) == "sent"
    (message,) = inbox.messages
    assert message["Subject"] == "Ana submitted a report for North"
    assert message["To"] == "ana@example.com" and message["From"] == "Reports <notify@example.com>"
    assert message["Message-ID"] == f"<notif-delivery-{d.id}@example.com>"
    assert message["List-Unsubscribe"] == "<https://app.example.com/unsubscribe/u1>"
    assert message["X-Notif-Correlation-Id"] == "cid-7"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Ana <b>submitted</b> a report" in text and "View report: https://app.example.com/reports/42" in text
    assert '<a class="button" href="https://app.example.com/reports/42"' in html
    assert "<strong>Ana</strong> &lt;script&gt; submitted" in html and "<script>" not in html
    assert "style=" in html and "<style" not in html  # CSS inlined for mail clients


def test_a_literal_message_is_escaped_in_the_html_part(mail_rt, smtp):
    inbox, _ = smtp
    deliver(mail_rt, email_delivery(html=None).id)
    html = inbox.messages[0].get_body(("html",)).get_content()
    assert "Ana &lt;b&gt;submitted&lt;/b&gt; a report" in html


def test_smtp_4xx_is_retried_and_5xx_is_permanent(mail_rt, smtp):
    with pytest.raises(RetryLater):
        deliver(mail_rt, email_delivery(to="busy@example.com").id)
    d = email_delivery(to="nobody@example.com")
    assert deliver(mail_rt, d.id) == "failed"
    assert Delivery.get_by_id(d.id).last_error.startswith("SMTP 550")


def test_an_unreachable_server_is_transient(mail_rt):
    rt = replace(mail_rt, settings=replace(mail_rt.settings, smtp_url=f"smtp://127.0.0.1:{free_port()}"))
    with pytest.raises(RetryLater):
        deliver(rt, email_delivery().id)


def test_no_address_is_skipped(mail_rt, smtp):
    d = email_delivery(to=None)
    assert deliver(mail_rt, d.id) == "skipped"
    assert "no email address" in Delivery.get_by_id(d.id).last_error


def test_an_unsafe_link_stored_before_the_rule_never_reaches_the_email(mail_rt, smtp):
    inbox, _ = smtp
    d = email_delivery(  # rows written straight to the table, as if stored before links were checked
        html='<p>Ana submitted <a href="javascript:alert(2)">a report</a></p>',
        actions=[{"id": "evil", "label": "Open it", "url": "javascript:alert(1)"},
                 {"id": "away", "label": "Elsewhere", "url": "//evil.example/x"},
                 {"id": "view", "label": "View report", "url": "/reports/42"}])
    assert deliver(mail_rt, d.id) == "sent"
    (message,) = inbox.messages
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    for part in (html, text):
        assert "javascript:" not in part and "evil.example" not in part
    assert "Open it" in html and "Elsewhere" in html  # the labels, as text
    assert html.count("<a ") == 2  # View report and Unsubscribe: nothing else is a link
    assert '<a class="button" href="https://app.example.com/reports/42"' in html
    assert "Ana &lt;b&gt;submitted&lt;/b&gt; a report" in html  # the html held an unsafe link: the escaped message
    assert "Open it\r\nElsewhere\r\nView report: https://app.example.com/reports/42" in text


def test_several_emails_go_over_one_smtp_session(mail_rt, smtp):
    inbox, _ = smtp
    ids = [email_delivery(to=f"user{i}@example.com").id for i in range(5)]
    assert [deliver(mail_rt, i) for i in ids] == ["sent"] * 5
    assert len(inbox.messages) == 5 and inbox.ehlos == 1 and len(set(inbox.sessions)) == 1


def test_a_dropped_connection_sends_the_next_email_on_a_fresh_one_once(mail_rt, smtp):
    inbox, _ = smtp
    inbox.drop_after_data = True
    ids = [email_delivery(to=f"user{i}@example.com").id for i in range(3)]
    assert [deliver(mail_rt, i) for i in ids] == ["sent"] * 3
    assert sorted(m["Message-ID"] for m in inbox.messages) == sorted(
        f"<notif-delivery-{i}@example.com>" for i in ids)  # nothing lost, nothing twice
    assert len(set(inbox.sessions)) == 3 and inbox.ehlos == 3


def test_an_idle_connection_is_closed_and_the_next_email_opens_another(mail_rt, smtp):
    inbox, _ = smtp
    connections = mail_rt.channels["email"].connections
    now = [0.0]
    connections.clock = lambda: now[0]
    try:
        deliver(mail_rt, email_delivery().id)
        now[0] += 29  # within NOTIF_SMTP_IDLE_SECONDS (30)
        deliver(mail_rt, email_delivery().id)
        now[0] += 31
        deliver(mail_rt, email_delivery().id)
    finally:
        import time
        connections.clock = time.monotonic
    assert len(inbox.messages) == 3 and inbox.ehlos == 2


def test_idle_seconds_zero_opens_a_connection_per_email(mail_rt, smtp):
    inbox, _ = smtp
    rt = replace(mail_rt, settings=replace(mail_rt.settings, smtp_idle_seconds=0))
    for _ in range(3):
        assert deliver(rt, email_delivery().id) == "sent"
    assert inbox.ehlos == 3 and len(set(inbox.sessions)) == 3


def test_a_batch_of_emails_goes_over_one_smtp_session_and_a_bad_address_fails_alone(mail_rt, smtp):
    from notif.deliver_many import deliver_many
    inbox, _ = smtp
    rows = [email_delivery(to=to) for to in ("a@example.com", None, "b@example.com", "c@example.com")]
    assert deliver_many(mail_rt, [d.id for d in rows]) == []
    assert [Delivery.get_by_id(d.id).status for d in rows] == ["sent", "skipped", "sent", "sent"]
    assert len(inbox.messages) == 3 and inbox.ehlos == 1
