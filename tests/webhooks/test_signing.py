"""Signing as Standard Webhooks says: the spec's published test vector, and every header notif makes
verified by the official library (standardwebhooks), not by notif's own code."""
import base64
import datetime as dt

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from notif.webhooks.signing import headers, new_webhook_id, parse_secret, secret_key, signature

# standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py::test_sign_function (the same
# vector is in the Go, JavaScript, Java, C# and PHP libraries' tests)
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_specs_test_vector():
    assert signature(secret_key(VECTOR_SECRET), VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE
    assert headers(secret_key(VECTOR_SECRET), VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == {
        "webhook-id": VECTOR_ID, "webhook-timestamp": str(VECTOR_TIMESTAMP), "webhook-signature": VECTOR_SIGNATURE}
    # and the official library agrees on it
    sent_at = dt.datetime.fromtimestamp(VECTOR_TIMESTAMP, dt.UTC)
    assert Webhook(VECTOR_SECRET).sign(VECTOR_ID, sent_at, VECTOR_BODY.decode()) == VECTOR_SIGNATURE


def test_the_official_library_verifies_what_notif_signs_and_nothing_else():
    secret = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    body = b'{"type":"notification.read","timestamp":"2026-01-01T00:00:00.000Z","data":{"user_id":"ana \\u00e9"}}'
    webhook_id = new_webhook_id()
    now = int(dt.datetime.now(dt.UTC).timestamp())
    signed = headers(secret_key(secret), webhook_id, now, body)
    assert Webhook(secret).verify(body, signed)["data"]["user_id"] == "ana é"
    for tampered in (body.replace(b"read", b"seen"), body + b" "):
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(tampered, signed)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**signed, "webhook-id": new_webhook_id()})
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(bytes(32)).decode()).verify(body, signed)


def test_webhook_ids_are_fresh_and_fit_the_signed_string():
    ids = {new_webhook_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("msg_") and "." not in i and len(i) <= 64 for i in ids)


@pytest.mark.parametrize("secret, problem", [
    ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "starts with `whsec_`"),
    ("whsec_not base64!!", "not base64"),
    ("whsec_" + base64.b64encode(b"too short").decode(), "decodes to 9 bytes"),
    ("whsec_" + base64.b64encode(bytes(65)).decode(), "decodes to 65 bytes"),
])
def test_a_bad_secret_is_refused_without_quoting_it(secret, problem):
    with pytest.raises(ValueError, match=problem) as caught:
        parse_secret(secret)
    assert secret.removeprefix("whsec_") not in str(caught.value)


def test_a_good_secret_padded_or_not():
    assert parse_secret(VECTOR_SECRET) == VECTOR_SECRET  # 24 bytes: the spec's smallest
    unpadded = "whsec_" + base64.b64encode(bytes(range(25))).decode().rstrip("=")
    assert secret_key(parse_secret(unpadded)) == bytes(range(25))


def test_several_secrets_are_each_checked_and_named_by_position():
    other = "whsec_" + base64.b64encode(bytes(range(40))).decode()
    assert parse_secret(f" {VECTOR_SECRET} ,{other}") == f"{VECTOR_SECRET},{other}"
    with pytest.raises(ValueError, match="secret 2 of 2 .*starts with `whsec_`") as caught:
        parse_secret(f"{VECTOR_SECRET},MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert "MfKQ9r8G" not in str(caught.value)
    with pytest.raises(ValueError, match="secret 2 of 2 .*empty"):
        parse_secret(f"{VECTOR_SECRET},")
