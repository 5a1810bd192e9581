import datetime as dt
from email.utils import format_datetime

import pytest

from notif.errors import PermanentError, TransientError, classify, from_http_status, from_smtp_code, parse_retry_after
from notif.retries import RetryPolicy


@pytest.mark.parametrize("status,kind", [(429, TransientError), (500, TransientError), (503, TransientError),
                                         (408, TransientError), (400, PermanentError), (401, PermanentError),
                                         (404, PermanentError), (410, PermanentError), (413, PermanentError)])
def test_http_statuses(status, kind):
    error = from_http_status(status, "why")
    assert isinstance(error, kind) and error.reason == f"HTTP {status}: why"


def test_smtp_codes():
    assert isinstance(from_smtp_code(451, "try later"), TransientError)
    assert isinstance(from_smtp_code(550, "no such mailbox"), PermanentError)


def test_retry_after_in_seconds_or_as_a_date():
    assert parse_retry_after("30") == 30
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=90)
    assert 85 <= parse_retry_after(format_datetime(later, usegmt=True)) <= 91
    assert parse_retry_after("soon") is None
    assert from_http_status(429, retry_after="7").retry_after == 7


def test_unknown_exceptions_are_transient_with_their_type_in_the_reason():
    error = classify(ConnectionResetError("peer reset"))
    assert isinstance(error, TransientError) and error.reason == "ConnectionResetError: peer reset"


def test_backoff_grows_and_is_capped():
    policy = RetryPolicy(max_attempts=5, base_seconds=1, cap_seconds=8)
    for attempt, (low, high) in enumerate([(0.5, 1), (1, 2), (2, 4), (4, 8), (4, 8), (4, 8)], start=1):
        assert low <= policy.delay(attempt) <= high
    assert policy.delay(1, retry_after=30) == 30
    assert not policy.exhausted(4) and policy.exhausted(5)
