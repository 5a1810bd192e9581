"""JWT checks: the algorithm pinned, `exp` required, optional `aud`/`iss`, a secret long enough."""
import os
import subprocess
import sys
import time

import jwt
import pytest

from helpers import WEB_SECRET, auth, other_algorithm
from notif.auth import AuthError, check_secret, make_token, verify_token
from notif.errors import ConfigError


def soon() -> int:
    return int(time.time()) + 60


@pytest.mark.parametrize("algorithm", ["none", "HS384", "HS512"])
def test_only_hs256_is_accepted(algorithm):
    claims = {"sub": "u1", "exp": soon()}
    forged = jwt.encode(claims, None, algorithm="none") if algorithm == "none" else other_algorithm(claims, algorithm)
    with pytest.raises(AuthError, match="algorithm not allowed: only HS256"):
        verify_token(WEB_SECRET, forged)


def test_a_token_without_exp_is_refused():
    with pytest.raises(AuthError, match="lacks the `exp` claim"):
        verify_token(WEB_SECRET, jwt.encode({"sub": "u1"}, WEB_SECRET, algorithm="HS256"))


def test_audience_and_issuer_are_required_and_checked_when_configured():
    checked = {"audience": "notif", "issuer": "https://host.example"}
    assert verify_token(WEB_SECRET, make_token(WEB_SECRET, "u1", **checked), **checked) == "u1"
    issued = {"iss": "https://host.example"}
    for claims, reason in [(issued, "lacks the `aud` claim"), ({**issued, "aud": "other"}, "must name 'notif'"),
                           ({"aud": "notif"}, "lacks the `iss` claim"),
                           ({"aud": "notif", "iss": "https://evil.example"}, "must be 'https://host.example'")]:
        token = jwt.encode({"sub": "u1", "exp": soon(), **claims}, WEB_SECRET, algorithm="HS256")
        with pytest.raises(AuthError, match=reason):
            verify_token(WEB_SECRET, token, **checked)
    # not configured: no aud expected, any iss ignored
    assert verify_token(WEB_SECRET, make_token(WEB_SECRET, "u1", issuer="anyone")) == "u1"
    with pytest.raises(AuthError, match="expects none"):
        verify_token(WEB_SECRET, make_token(WEB_SECRET, "u1", audience="notif"))


def test_the_web_routes_check_audience_and_issuer(app_client):
    client = app_client(NOTIF_JWT_AUDIENCE="notif", NOTIF_JWT_ISSUER="host")
    good = make_token(WEB_SECRET, "u1", audience="notif", issuer="host")
    assert client.get("/api/notifications", headers={"Authorization": f"Bearer {good}"}).status_code == 200
    refused = client.get("/api/notifications", headers=auth("u1"))
    assert refused.status_code == 401 and "`aud`" in refused.json()["reason"]
    assert client.get("/events", headers=auth("u1")).status_code == 401  # the SSE route checks the same way


def test_the_openapi_document_says_which_operations_answer_401(asgi):
    paths = asgi["client"].app.openapi()["paths"]
    signed_in = {(m, p) for p, ops in paths.items() for m, op in ops.items() if "401" in op["responses"]}
    assert {("get", "/api/notifications"), ("put", "/api/preferences"), ("delete", "/api/scheduled/{key}"),
            ("post", "/api/push/subscriptions")} <= signed_in
    assert ("get", "/healthz") not in signed_in and ("get", "/readyz") not in signed_in


def test_notif_token_signs_with_the_configured_audience_and_issuer(monkeypatch, capsys, tmp_path):
    from notif.cli import main
    monkeypatch.setenv("NOTIF_JWT_SECRET", WEB_SECRET)
    monkeypatch.setenv("NOTIF_JWT_AUDIENCE", "notif")
    monkeypatch.setenv("NOTIF_JWT_ISSUER", "host")
    monkeypatch.setenv("NOTIF_STATE_DIR", str(tmp_path))
    assert main(["token", "u1"]) == 0
    printed = capsys.readouterr().out.strip()
    assert verify_token(WEB_SECRET, printed, audience="notif", issuer="host") == "u1"


def test_a_short_secret_is_a_startup_error_that_says_how_to_fix_it():
    with pytest.raises(ConfigError) as info:
        check_secret("x" * 31)
    assert "31 bytes" in str(info.value) and "secrets.token_urlsafe(32)" in str(info.value)
    check_secret("x" * 32)
    check_secret("é" * 16)  # bytes, not characters


def test_the_test_suites_own_secrets_are_long_enough(env):
    check_secret(WEB_SECRET)
    check_secret(env["NOTIF_JWT_SECRET"])


@pytest.mark.processes  # runs the notif command: not in the fast tier
def test_notif_serve_refuses_a_short_secret_but_notif_dev_allows_one(asgi):
    short = {**os.environ, **asgi["env"], "NOTIF_JWT_SECRET": "too-short", "PORT": "1"}
    result = subprocess.run([sys.executable, "-m", "notif.cli", "serve", "--host", "127.0.0.1"], env=short,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "NOTIF_JWT_SECRET is 9 bytes" in result.stderr and "token_urlsafe" in result.stderr

    from notif.config import load_settings
    from notif.web.app import create_app
    create_app(load_settings({**asgi["env"], "NOTIF_JWT_SECRET": "too-short", "NOTIF_DEV": "1"}, use_state=False))
    with pytest.raises(ConfigError):
        create_app(load_settings({**asgi["env"], "NOTIF_JWT_SECRET": "too-short"}, use_state=False))


# A verified token is remembered (notif.auth._checked): the next request with it skips the HMAC and the JSON.

OTHER_SECRET = "another-secret-also-at-least-32-bytes-long"


def count_decodes(monkeypatch) -> list:
    calls: list = []
    real = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    return calls


def test_a_verified_token_is_remembered(monkeypatch):
    decodes = count_decodes(monkeypatch)
    token = make_token(WEB_SECRET, "remembered-user")
    assert [verify_token(WEB_SECRET, token) for _ in range(3)] == ["remembered-user"] * 3
    assert len(decodes) == 1


def test_a_remembered_token_is_refused_once_it_expires(monkeypatch):
    token = make_token(WEB_SECRET, "expiring-user", ttl_seconds=30)
    assert verify_token(WEB_SECRET, token) == "expiring-user"  # remembered now
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    decodes = count_decodes(monkeypatch)
    monkeypatch.setattr(time, "time", lambda: expires)  # exp reached: PyJWT refuses from this second on
    with pytest.raises(AuthError, match="token expired"):
        verify_token(WEB_SECRET, token)
    monkeypatch.setattr(time, "time", lambda: expires - 1)
    assert verify_token(WEB_SECRET, token) == "expiring-user"
    assert decodes == []  # both answered from what was remembered: the expiry is checked on every use


def test_a_remembered_token_passes_for_its_own_secret_audience_and_issuer_only():
    token = make_token(WEB_SECRET, "u1")
    assert verify_token(WEB_SECRET, token) == "u1"
    with pytest.raises(AuthError, match="signature is invalid"):
        verify_token(OTHER_SECRET, token)
    with pytest.raises(AuthError, match="lacks the `aud` claim"):
        verify_token(WEB_SECRET, token, audience="notif")
    with pytest.raises(AuthError, match="lacks the `iss` claim"):
        verify_token(WEB_SECRET, token, issuer="host")
    assert verify_token(WEB_SECRET, token) == "u1"


def test_a_remembered_token_keeps_its_kind():
    user, service = make_token(WEB_SECRET, "u1"), make_token(WEB_SECRET, "host-app", service=True)
    assert verify_token(WEB_SECRET, user) == "u1" and verify_token(WEB_SECRET, service, service=True) == "host-app"
    with pytest.raises(AuthError, match="needs a service token"):
        verify_token(WEB_SECRET, user, service=True)
    with pytest.raises(AuthError, match="does not speak for a user"):
        verify_token(WEB_SECRET, service)


def test_a_refused_token_is_not_remembered(monkeypatch):
    decodes = count_decodes(monkeypatch)
    forged = make_token(OTHER_SECRET, "u1")
    for _ in range(2):
        with pytest.raises(AuthError, match="signature is invalid"):
            verify_token(WEB_SECRET, forged)
    assert len(decodes) == 2
