"""The outbound-URL policy, attacked: every form of a private address, refused before a byte is sent."""
from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from notif.config import ConfigError, load_settings
from notif.outbound import OutboundPolicy, OutboundRefused, OutboundSession, parse_allow, system_resolver
from tls_redis import self_signed_certificate

PUBLIC = "93.184.216.34"  # never contacted: only resolved by the fake resolver below


def resolver(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        if host in table:
            return table[host]
        return system_resolver(host, port)
    return resolve


def policy(allow: str = "", **names: list[str]) -> OutboundPolicy:
    return OutboundPolicy(allow=parse_allow(allow), resolver=resolver({"push.example.com": [PUBLIC], **names}))


@pytest.mark.parametrize("url, reason", [
    ("https://127.0.0.1/x", "127.0.0.1 is a loopback address"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://[::1]/x", "::1 is a loopback address"),
    ("https://[::ffff:127.0.0.1]/x", "loopback (inside the IPv6 address ::ffff:7f00:1)"),
    ("https://[::ffff:169.254.169.254]/x", "link-local (inside the IPv6 address"),
    ("https://[64:ff9b::a9fe:a9fe]/x", "link-local (inside the IPv6 address"),  # NAT64 of 169.254.169.254
    ("https://[2002:7f00:1::]/x", "loopback (inside the IPv6 address"),  # 6to4 of 127.0.0.1
    ("https://[fe80::1]/x", "link-local"),
    ("https://[fd00::1]/x", "private"),
    ("https://2130706433/x", "ambiguous form"),  # 127.0.0.1 as one decimal number
    ("https://0177.0.0.1/x", "ambiguous form"),  # octal
    ("https://0x7f.1/x", "ambiguous form"),  # hex, shortened
    ("https://127.1/x", "ambiguous form"),
    ("https://10.0.0.5/x", "private"),
    ("https://192.168.1.1/x", "private"),
    ("https://100.64.0.1/x", "not globally reachable"),  # carrier-grade NAT
    ("https://0.0.0.0/x", "unspecified"),
    ("https://224.0.0.1/x", "multicast"),
    ("https://localhost/x", "localhost resolves to"),  # a DNS name for loopback
    ("https://internal.example.com/x", "internal.example.com resolves to 10.1.2.3, which is a private address"),
    ("https://mixed.example.com/x", "resolves to 127.0.0.1"),  # one bad answer among good ones
    ("http://push.example.com/x", "must use https"),
    ("ftp://push.example.com/x", "must use https"),
    ("javascript:alert(1)", "must use https"),
    ("https://user:pw@push.example.com/x", "must not carry credentials"),
    ("https://push.example.com:99999/x", "cannot be read"),
    ("https://push example.com/x", "whitespace"),
    ("https:///x", "no host"),
    ("https://bad_host!.com/x", "not a valid host name"),
    ("https://nowhere.invalid/x", "does not resolve"),
])
def test_private_and_malformed_targets_are_refused_with_the_rule(url, reason):
    p = policy(**{"internal.example.com": ["10.1.2.3"], "mixed.example.com": [PUBLIC, "127.0.0.1"]})
    with pytest.raises(OutboundRefused) as refused:
        p.check(url)
    assert reason in refused.value.reason


def test_a_public_host_passes_with_the_addresses_it_was_checked_at():
    target = policy().check("https://push.example.com/send/abc")
    assert (target.host, target.port, target.addresses) == ("push.example.com", 443, (PUBLIC,))


def test_the_allow_list_admits_hosts_ports_and_networks_and_only_those_over_http():
    p = policy("127.0.0.1,push.local:8443,10.20.0.0/16,[::1]:9000", **{"push.local": ["192.168.5.5"]})
    assert p.check("http://127.0.0.1:5000/x").addresses == ("127.0.0.1",)
    assert p.check("https://push.local:8443/x").addresses == ("192.168.5.5",)
    assert p.check("https://10.20.3.4/x")
    assert p.check("http://[::1]:9000/x")
    for url, reason in [("https://push.local:9443/x", "192.168.5.5, which is a private address"),  # another port
                        ("http://[::1]:9001/x", "plain http to ::1"),
                        ("https://10.21.0.1/x", "private"),
                        ("http://push.example.com/x", "plain http to push.example.com")]:  # public, but http
        with pytest.raises(OutboundRefused, match=reason):
            p.check(url)


def test_a_bad_allow_entry_stops_start_up_naming_it(env):
    with pytest.raises(ConfigError, match="NOTIF_OUTBOUND_ALLOW.*port in 'host:70000'"):
        load_settings({**env, "NOTIF_OUTBOUND_ALLOW": "127.0.0.1,host:70000"}, use_state=False)


class Receiver:
    """An HTTP(S) server on loopback that counts what reaches it; ``/redirect`` answers 302."""

    def __init__(self, tls_files=None) -> None:
        self.requests: list[tuple[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                receiver.requests.append((self.path, self.headers.get("Host", "")))
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", f"http://127.0.0.1:{receiver.port}/landed")
                else:
                    self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        if tls_files:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls_files)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_no_request_reaches_a_loopback_service_without_an_allowance(receiver):
    session = OutboundSession(policy(**{"push.test": ["127.0.0.1"]}))
    for url, reason in [(f"https://127.0.0.1:{receiver.port}/", "loopback"),
                        (f"https://push.test:{receiver.port}/", "push.test resolves to 127.0.0.1"),
                        (f"http://127.0.0.1:{receiver.port}/", "must use https")]:
        with pytest.raises(OutboundRefused, match=reason):
            session.post(url, data=b"x", timeout=5)
    assert receiver.requests == []


def test_the_connection_goes_to_the_address_that_was_checked(receiver):
    """A DNS answer that changes after the check (rebinding) cannot move the connection."""
    answers = iter([["127.0.0.1"]])
    calls = []

    def rebinding(host, port):
        calls.append(host)
        return next(answers, ["169.254.169.254"])

    session = OutboundSession(OutboundPolicy(allow=parse_allow("127.0.0.1"), resolver=rebinding))
    response = session.post(f"http://rebind.test:{receiver.port}/send", data=b"x", timeout=5)
    assert response.status_code == 201
    assert calls == ["rebind.test"]  # resolved once; the socket went to that answer
    assert receiver.requests == [("/send", f"rebind.test:{receiver.port}")]
    session.close()  # a new connection resolves again, and is checked again
    with pytest.raises(OutboundRefused, match="169.254.169.254"):
        OutboundSession(OutboundPolicy(allow=parse_allow("127.0.0.1"), resolver=rebinding)).post(
            f"http://rebind.test:{receiver.port}/send", data=b"x", timeout=5)


def test_redirects_are_not_followed(receiver):
    session = OutboundSession(policy("127.0.0.1"))
    response = session.post(f"http://127.0.0.1:{receiver.port}/redirect", data=b"x", timeout=5)
    assert response.status_code == 302
    assert [path for path, _ in receiver.requests] == ["/redirect"]


def test_tls_is_verified_for_the_host_name_while_connecting_to_the_checked_address(tmp_path):
    cert, key = self_signed_certificate(tmp_path, "push")  # valid for localhost and 127.0.0.1 only
    server = Receiver((cert, key))
    try:
        session = OutboundSession(policy("127.0.0.1", **{"localhost": ["127.0.0.1"], "push.test": ["127.0.0.1"]}))
        session.verify = str(cert)
        assert session.get(f"https://localhost:{server.port}/ok", timeout=5).status_code == 201
        assert server.requests == [("/ok", f"localhost:{server.port}")]
        with pytest.raises(requests.exceptions.SSLError, match="push.test"):  # same address, wrong name
            session.get(f"https://push.test:{server.port}/ok", timeout=5)
    finally:
        server.close()


def test_notif_check_url_gives_the_policys_verdict(monkeypatch, capsys, tmp_path):
    from notif.cli import main
    monkeypatch.setenv("NOTIF_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("NOTIF_OUTBOUND_ALLOW", raising=False)
    assert main(["check-url", "https://169.254.169.254/latest/meta-data/"]) == 1
    assert capsys.readouterr().out.startswith("refused: 169.254.169.254 is a link-local address")
    monkeypatch.setenv("NOTIF_OUTBOUND_ALLOW", "127.0.0.0/8")
    assert main(["check-url", "http://127.0.0.1:3000/hook"]) == 0
    assert capsys.readouterr().out == "allowed: http://127.0.0.1:3000 at 127.0.0.1\n"
