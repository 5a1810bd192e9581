"""The one policy for every outbound call a stored or user-supplied URL drives.

Push endpoints come from browsers, webhook URLs from operators' users, plugin targets from
wherever a plugin reads them: any of them could point the worker at the network it runs in
(a metadata endpoint, an admin API, Redis). So every such call goes through here:

- ``https`` only; plain ``http`` only to a host that ``NOTIF_OUTBOUND_ALLOW`` lists;
- the host is resolved once, every address it resolves to is checked (private, loopback,
  link-local, multicast, reserved, unspecified, shared and other non-global ranges, IPv4 and
  IPv6 including mapped, 6to4, Teredo and NAT64 forms), and the connection is made to the
  checked address, so a DNS answer that changes between check and connect cannot slip through;
- numeric host spellings other than the dotted quad (``2130706433``, ``0177.0.0.1``,
  ``0x7f.1``) and credentials in URLs are refused;
- redirects are never followed, and the environment's proxies are not used;
- ``NOTIF_OUTBOUND_ALLOW`` lists hosts, ``host:port``s and CIDRs reachable in spite of all
  that (``127.0.0.1`` for a local push service in development; ``notif dev`` sets loopback).

:func:`session` gives plugins a ``requests.Session`` that applies all of it at connect time;
:meth:`OutboundPolicy.check` validates a URL up front (a 422 when a browser subscribes).
"""
from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

MAX_URL = 2000
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]*))*\.?$", re.IGNORECASE)
_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$")


class OutboundRefused(Exception):
    """The URL, or an address its host resolves to, breaks the outbound policy.

    ``reason`` says which rule, in words fit for a 422 or a dead-letter entry. Deliberately not
    an ``OSError``: urllib3 and requests let it through unwrapped and never retry it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the order the system gives them."""
    answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in answers))


def blocked_range(ip: IPAddress) -> str | None:
    """Which non-public range ``ip`` is in (None: a public address)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded: list[ipaddress.IPv4Address] = []
        if ip.ipv4_mapped is not None:
            embedded.append(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            embedded.append(ip.sixtofour)
        if ip.teredo is not None:
            embedded.extend(ip.teredo)
        if any(ip in net for net in _NAT64):
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        for inner in embedded:
            reason = blocked_range(inner)
            if reason:
                return f"{reason} (inside the IPv6 address {ip})"
        if ip.ipv4_mapped is not None:
            return None
    for name in ("loopback", "unspecified", "link_local", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{name}"):
            return name.replace("_", "-")
    if not ip.is_global:
        return "not globally reachable"
    return None


@dataclass(frozen=True)
class Allowance:
    """``NOTIF_OUTBOUND_ALLOW`` parsed: hosts, (host, port) pairs and networks."""

    hosts: frozenset[str] = frozenset()
    host_ports: frozenset[tuple[str, int]] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowance:
        hosts: set[str] = set()
        host_ports: set[tuple[str, int]] = set()
        networks: list[Network] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            host, port = _split_host_port(entry)
            if port is None:
                hosts.add(host)
            else:
                host_ports.add((host, port))
        return cls(frozenset(hosts), frozenset(host_ports), tuple(networks))

    def host(self, host: str, port: int) -> bool:
        return host in self.hosts or (host, port) in self.host_ports

    def address(self, ip: IPAddress, port: int) -> bool:
        return any(ip in net for net in self.networks if net.version == ip.version) or self.host(str(ip), port)

    def __bool__(self) -> bool:
        return bool(self.hosts or self.host_ports or self.networks)


def _split_host_port(entry: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` → (host, port or None); ValueError names the entry."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else None
        if rest and port_text is None:
            raise ValueError(f"cannot read {entry!r} as [address]:port")
    elif entry.count(":") == 1:
        host, port_text = entry.split(":")
    else:
        host, port_text = entry, None
    if port_text is not None and (not port_text.isdigit() or not 0 < int(port_text) < 65536):
        raise ValueError(f"port in {entry!r} must be 1-65535")
    if not host:
        raise ValueError(f"no host in {entry!r}")
    return host, int(port_text) if port_text is not None else None


def parse_allow(text: str) -> Allowance:
    """The ``NOTIF_OUTBOUND_ALLOW`` setting: ``127.0.0.1,push.internal:8443,10.1.0.0/16``."""
    return Allowance.parse(text.split(","))


@dataclass(frozen=True)
class Target:
    """A URL that passed the policy: where it goes and the addresses checked for it."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


@dataclass
class OutboundPolicy:
    allow: Allowance = field(default_factory=Allowance)
    resolver: Resolver = system_resolver
    #: what plain http may reach, when narrower than ``allow`` (the webhook sender allows its https endpoints'
    #: hosts, never plain http to them unless NOTIF_OUTBOUND_ALLOW lists them); None: ``allow``
    plain: Allowance | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> OutboundPolicy:
        return cls(allow=Allowance.parse(settings.outbound_allow))

    def parse(self, url: str) -> tuple[str, str, int]:
        """(scheme, host, port) of ``url`` if its form is acceptable, before any DNS."""
        if not isinstance(url, str) or not url:
            raise OutboundRefused("the URL is empty")
        if len(url) > MAX_URL:
            raise OutboundRefused(f"the URL is {len(url)} characters; the limit is {MAX_URL}")
        if re.search(r"[\x00-\x20\x7f]", url):
            raise OutboundRefused("the URL contains whitespace or a control character")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise OutboundRefused(f"the URL cannot be read: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("https", "http"):
            raise OutboundRefused(f"the URL must use https (got `{scheme or 'no'}` scheme)")
        if parts.username is not None or parts.password is not None:
            raise OutboundRefused("the URL must not carry credentials (user:password@)")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise OutboundRefused("the URL has no host")
        port = port or (443 if scheme == "https" else 80)
        if ":" not in host:  # not an IPv6 literal
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                if _NUMERIC_HOST.match(host):
                    raise OutboundRefused(f"the host `{host}` is a numeric address in an ambiguous form; "
                                          "write an IPv4 address as four decimal numbers") from None
                if not _HOST.match(host):
                    raise OutboundRefused(f"the host `{host}` is not a valid host name") from None
        if scheme == "http" and not self._plain():  # with a list, each address is checked against it at connect
            raise OutboundRefused("the URL must use https; plain http is allowed only to hosts NOTIF_OUTBOUND_ALLOW "
                                  "lists")
        return scheme, host, port

    def addresses(self, host: str, port: int, *, plain: bool = False) -> list[str]:
        """Resolve ``host`` once and check every answer; the addresses to connect to, in order.

        Raises OutboundRefused when an answer is not allowed, ``socket.gaierror`` when the
        name does not resolve. ``plain`` (http): every address must be explicitly allowed.
        """
        allow = self._plain() if plain else self.allow
        host_allowed = allow.host(host, port)
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        answers = [host] if literal is not None else self.resolver(host, port)
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} has no address")
        for answer in answers:
            ip = ipaddress.ip_address(answer.split("%")[0])
            if host_allowed or allow.address(ip, port):
                continue
            if plain:
                raise OutboundRefused(f"plain http to {host} ({ip}) is not allowed: NOTIF_OUTBOUND_ALLOW does not "
                                      "list it")
            reason = blocked_range(ip)
            if reason:
                shown = host if literal is not None else f"{host} resolves to {ip}, which"
                raise OutboundRefused(f"{shown} is a {reason} address; outbound calls go only to public addresses "
                                      "(NOTIF_OUTBOUND_ALLOW lists exceptions)")
        return answers

    def _plain(self) -> Allowance:
        return self.allow if self.plain is None else self.plain

    def check(self, url: str) -> Target:
        """Validate ``url`` and resolve its host now: the Target, or OutboundRefused with the reason.

        A host that does not resolve is refused too (use this where a person is waiting for
        the answer; at send time, a failed lookup is a transient error instead).
        """
        scheme, host, port = self.parse(url)
        try:
            found = self.addresses(host, port, plain=scheme == "http")
        except (socket.gaierror, UnicodeError) as exc:
            raise OutboundRefused(f"the host `{host}` does not resolve ({exc})") from None
        return Target(url, scheme, host, port, tuple(found))

    def connect(self, conn: HTTPConnection, plain: bool) -> socket.socket:
        """Open the socket for urllib3's ``conn``: resolve, check, connect to a checked address."""
        try:
            found = self.addresses(conn.host.strip("[]").rstrip("."), conn.port or (80 if plain else 443), plain=plain)
        except socket.gaierror as exc:
            raise NameResolutionError(conn.host, conn, exc) from exc
        error: OSError | None = None
        for address in found:
            try:
                return urllib3_connection.create_connection(
                    (address, conn.port), conn.timeout, source_address=conn.source_address,
                    socket_options=conn.socket_options)
            except TimeoutError as exc:
                raise ConnectTimeoutError(conn, f"connection to {conn.host} timed out") from exc
            except OSError as exc:
                error = exc
        raise NewConnectionError(conn, f"failed to connect to {conn.host}: {error}")


def _pool_classes(policy: OutboundPolicy) -> dict[str, type]:
    """urllib3 pools whose connections open their sockets through ``policy``."""

    class CheckedHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return policy.connect(self, plain=True)

    class CheckedHTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return policy.connect(self, plain=False)  # TLS then verifies the certificate for the host name

    class CheckedHTTPPool(HTTPConnectionPool):
        ConnectionCls = CheckedHTTPConnection

    class CheckedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = CheckedHTTPSConnection

    return {"http": CheckedHTTPPool, "https": CheckedHTTPSPool}


class _CheckedAdapter(HTTPAdapter):
    def __init__(self, policy: OutboundPolicy, **kwargs: Any) -> None:
        self._policy = policy
        super().__init__(max_retries=0, **kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self._policy)


class OutboundSession(requests.Session):
    """A ``requests.Session`` bound to the policy: URL form checked before the request,
    addresses checked at connect, no redirects, no proxies from the environment."""

    def __init__(self, policy: OutboundPolicy) -> None:
        super().__init__()
        self.policy = policy
        self.trust_env = False  # HTTPS_PROXY would move the connection (and the check) to the proxy
        adapter = _CheckedAdapter(policy)
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        text = url.decode() if isinstance(url, bytes) else url
        self.policy.parse(text)
        kwargs["allow_redirects"] = False
        return super().request(method, text, *args, **kwargs)


def session(settings: Any) -> OutboundSession:
    """The plugin kit's HTTP client: every call it makes obeys the outbound policy."""
    return OutboundSession(OutboundPolicy.from_settings(settings))


def matches_suffix(host: str, suffixes: Iterable[str]) -> bool:
    """``host`` is one of ``suffixes`` or a subdomain of one."""
    host = host.lower().rstrip(".")
    return any(host == s or host.endswith("." + s) for s in (x.lower().strip(".") for x in suffixes) if s)
