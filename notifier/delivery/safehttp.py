"""Outbound HTTP to the targets subscribers give us (Slack, Teams, webhooks), safe from SSRF.

A target URL comes from a stranger on the public sign-up form, so every request to it must not
become a way into our own network (OWASP Server-Side Request Forgery Prevention Cheat Sheet):

- `check_target` validates a URL at sign-up: https only, no userinfo, Slack and Teams hosts
  only for those channels, and every address the host resolves to must be public.
- `post` checks again AT SEND TIME, resolves the host once and connects to that vetted address
  (a custom httpcore network backend), so a name that resolved to a public address at sign-up
  and to 127.0.0.1 now (DNS rebinding) is refused, and a second lookup between check and
  connect cannot switch the address. TLS still verifies the certificate against the host name
  (the URL keeps the name; only the TCP connect is pinned). Redirects are never followed (a 3xx
  is an answer), at most `channel_max_response_bytes` of the answer are read, and one overall
  deadline bounds connect, TLS, write and every read, so a server that trickles bytes cannot
  hold a sender longer than `timeout` seconds.

The test suite's only way around the address guard is `settings.channel_allow_private_targets`
(its fake receivers listen on 127.0.0.1 over http); production refuses that setting and this
module ignores it in production too.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import certifi
import httpcore
import httpx

MAX_URL_LENGTH = 2048
CONNECT_TIMEOUT_SECONDS = 5.0

# Slack incoming webhooks: https://hooks.slack.com/services/T…/B…/<token> (Slack docs,
# "Sending messages using incoming webhooks").
SLACK_HOST = "hooks.slack.com"
SLACK_PATH = re.compile(r"^/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+\Z")
# Teams: Workflows (Power Automate) webhooks, "Post to a channel when a webhook request is
# received": prod-NN.<region>.logic.azure.com/workflows/<id>/triggers/manual/paths/invoke?…
# and the newer <env>.environment.api.powerplatform.com/powerautomate/automations/direct/
# workflows/<id>/triggers/manual/paths/invoke?…; plus the retired Office 365 connectors'
# <tenant>.webhook.office.com/webhookb2/… that some tenants still run.
TEAMS_RULES = (
    (re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)*\.logic\.azure\.com\Z"), "/workflows/"),
    (
        re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)*\.api\.powerplatform\.com\Z"),
        "/powerautomate/automations/direct/workflows/",
    ),
    (re.compile(r"^[a-z0-9-]+\.webhook\.office\.com\Z"), "/webhookb2/"),
)
# Names that never point at the public internet: RFC 6761 (localhost), RFC 6762 (.local),
# RFC 8375 (.home.arpa), ICANN's private-use .internal (2024; GCP's metadata.google.internal).
INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".localdomain")
INTERNAL_NAMES = {"localhost", "localhost.localdomain"}

# Ranges refused on top of `not is_global` (which Python leaves True for some of them):
# IANA special-purpose registries (RFC 6890), CGNAT (RFC 6598), multicast, and the cloud
# metadata endpoints (AWS/GCP/Azure 169.254.169.254, ECS 169.254.170.2, Alibaba 100.100.100.200,
# Oracle 192.0.0.192, AWS IPv6 fd00:ec2::254) which these ranges already contain.
REFUSED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible ::a.b.c.d
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",  # IETF protocol assignments, Teredo 2001::/32 among them
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
CGNAT = ipaddress.ip_network("100.64.0.0/10")


class UnsafeTarget(ValueError):
    """A target URL the service will not send to; str(exc) is one English sentence for logs.

    `code`: 'scheme' (not https), 'host' (not a host this channel allows, or an internal name
    or odd IPv4 spelling), 'address' (resolves to a non-public address), 'unresolvable' (no
    address), 'format' (not a usable URL). Messages never contain the URL's path or query.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class HttpAnswer:
    """A target's answer: status, headers (lower-case names) and at most the capped body."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # lower case, IDNA-encoded, IPv6 without brackets
    port: int
    url: str  # normalized


def allow_private(settings) -> bool:
    """True when the test suite's override of the address guard is on (never in production)."""
    return bool(settings.channel_allow_private_targets) and not settings.production


def check_target(channel: str, url: str, settings, *, resolve: bool = True) -> str:
    """The normalized target URL for `channel` ('slack', 'teams', 'webhook'), or UnsafeTarget.

    Production rules: https; no userinfo; Slack: hooks.slack.com/services/T…/B…/…; Teams: a
    Workflows/Power Automate (or legacy webhook.office.com) webhook host; webhook: any host.
    With `resolve`, every address the host resolves to must be public (see `refusal`). With
    settings.channel_allow_private_targets (tests only): http allowed, host/path and address
    rules off.
    """
    target = _parse(url, settings)
    if allow_private(settings):
        return target.url
    _check_channel_host(channel, target)
    _check_name(target.host)
    if resolve:
        vetted_addresses(target.host, target.port, settings)
    return target.url


def refusal(address: str) -> str | None:
    """Why an IP address must not be a target ('loopback', 'private', …), None if it is public.

    IPv4-mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16) IPv6 addresses are
    judged by the IPv4 address they carry.
    """
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return refusal(str(embedded))
    for kind in ("unspecified", "loopback", "link_local", "multicast", "private", "reserved"):
        if getattr(ip, "is_" + kind):
            return kind.replace("_", "-")
    if ip.version == 4 and ip in CGNAT:
        return "shared (CGNAT)"
    if any(ip.version == net.version and ip in net for net in REFUSED_NETWORKS):
        return "special-purpose"
    if not ip.is_global:
        return "not globally routable"
    return None


def vetted_addresses(host: str, port: int, settings) -> list[tuple[int, tuple]]:
    """Resolve `host` once; every (family, sockaddr) must be public, else UnsafeTarget."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnsafeTarget("unresolvable", f"Target host {host} does not resolve.") from None
    addresses = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        if not allow_private(settings):
            reason = refusal(sockaddr[0])
            if reason is not None:
                raise UnsafeTarget(
                    "address",
                    f"Target host {host} resolves to {sockaddr[0]}, a {reason} address; "
                    "targets must be public internet addresses.",
                )
        if (family, sockaddr) not in addresses:
            addresses.append((family, sockaddr))
    if not addresses:
        raise UnsafeTarget("unresolvable", f"Target host {host} has no IP address.")
    return addresses


def post(url: str, body: bytes, headers: dict[str, str], settings, *, timeout: float) -> HttpAnswer:
    """POST `body` to `url` through the address guard, pinned to the vetted address.

    Reads at most settings.channel_max_response_bytes of the answer; `timeout` seconds bound
    the whole exchange (connect at most CONNECT_TIMEOUT_SECONDS of it). Raises UnsafeTarget
    (refused, nothing sent), httpx.ConnectError/ConnectTimeout (nothing sent),
    httpx.WriteTimeout/WriteError/ReadTimeout/ReadError/RemoteProtocolError (the request may
    have arrived; the answer is lost).
    """
    deadline = time.monotonic() + timeout
    target = _parse(url, settings)
    if not allow_private(settings):
        _check_name(target.host)
    addresses = vetted_addresses(target.host, target.port, settings)
    limit = settings.channel_max_response_bytes
    backend = _PinnedBackend(target.host, addresses, deadline)
    extensions = {
        "timeout": {
            "connect": min(CONNECT_TIMEOUT_SECONDS, timeout),
            "read": timeout,
            "write": timeout,
            "pool": timeout,
        }
    }
    with (
        _httpx_errors(),
        httpcore.ConnectionPool(
            ssl_context=_ssl_context(), max_connections=1, network_backend=backend
        ) as pool,
        pool.stream("POST", target.url, headers=headers, content=body, extensions=extensions) as r,
    ):
        received = bytearray()
        for chunk in r.iter_stream():
            received += chunk
            if len(received) >= limit:
                break  # the rest is never read: the connection is closed unread
        answer_headers: dict[str, str] = {}
        for name, value in r.headers:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            # Repeated headers join with ", " (RFC 9110 §5.3).
            previous = answer_headers.get(key)
            answer_headers[key] = text if previous is None else f"{previous}, {text}"
        return HttpAnswer(r.status, answer_headers, bytes(received[:limit]))


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # The CA bundle httpx uses; check_hostname verifies the certificate against the URL's name.
    # Loading it takes tens of milliseconds, so one context serves every send (SSLContext is
    # safe to share between threads).
    return ssl.create_default_context(cafile=certifi.where())


def _parse(url: str, settings) -> _Target:
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise UnsafeTarget("format", "Target URL is empty or too long.")
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise UnsafeTarget("format", "Target URL contains spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeTarget("format", "Target URL cannot be parsed.") from None
    scheme = parts.scheme.lower()
    allowed = ("https", "http") if allow_private(settings) else ("https",)
    if scheme not in allowed:
        raise UnsafeTarget("scheme", f"Target URL scheme {scheme or '(none)'} is not https.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("format", "Target URL must not contain a user name or password.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeTarget("format", "Target URL has no host.")
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise UnsafeTarget("format", "Target URL host is not a valid name.") from None
    _check_ip_spelling(host)
    port = port or (443 if scheme == "https" else 80)
    netloc = f"[{host}]" if ":" in host else host
    if port != (443 if scheme == "https" else 80):
        netloc += f":{port}"
    # Path and query go on the wire as given: non-ASCII must be percent-encoded already (the
    # HTTP client refuses it at send time, which would make the row fail on every attempt).
    if not (parts.path + parts.query).isascii():
        raise UnsafeTarget("format", "Target URL path must be ASCII (percent-encoded).")
    normalized = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    return _Target(scheme, host, port, normalized)


def _check_ip_spelling(host: str) -> None:
    # inet_aton (and so getaddrinfo) reads 2130706433, 0x7f.1, 0177.0.0.1, 127.1 and 0 as IPv4
    # addresses; only the dotted-quad form is a literal we accept.
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    try:
        socket.inet_aton(host)
    except OSError:
        return
    raise UnsafeTarget("host", f"Target host {host} is an unusual spelling of an IPv4 address.")


def _check_name(host: str) -> None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host in INTERNAL_NAMES or host.endswith(INTERNAL_SUFFIXES):
            raise UnsafeTarget("host", f"Target host {host} is an internal name.") from None
        return
    reason = refusal(host)
    if reason is not None:
        raise UnsafeTarget(
            "address", f"Target address {host} is a {reason} address, not a public one."
        )


def _check_channel_host(channel: str, target: _Target) -> None:
    path = urlsplit(target.url).path
    if channel == "slack":
        if target.host != SLACK_HOST or target.port != 443 or not SLACK_PATH.match(path):
            raise UnsafeTarget(
                "host", "Slack targets must be https://hooks.slack.com/services/… URLs."
            )
    elif channel == "teams":
        if not any(
            host.match(target.host) and path.startswith(prefix) for host, prefix in TEAMS_RULES
        ):
            raise UnsafeTarget(
                "host", f"Target host {target.host} is not a Microsoft Teams workflow webhook."
            )
    elif channel != "webhook":
        raise UnsafeTarget("format", f"Unknown channel {channel!r}.")


class _DeadlineStream(httpcore.NetworkStream):
    """Clamps every read/write/TLS timeout to what is left of one overall deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float):
        self._inner = inner
        self._deadline = deadline

    def _left(self, timeout: float | None, error: type[Exception]) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise error("the overall deadline passed")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        left = self._left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, left), self._deadline
        )

    def get_extra_info(self, info: str):
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects only to the vetted addresses of the one host it was made for (no DNS)."""

    def __init__(self, host: str, addresses: list[tuple[int, tuple]], deadline: float):
        self._host = host
        self._addresses = addresses
        self._deadline = deadline
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        if host.strip("[]").rstrip(".").lower() != self._host:
            raise httpcore.ConnectError(f"refusing to connect to unvetted host {host}")
        error: Exception = httpcore.ConnectError("no address")
        for _family, sockaddr in self._addresses:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ConnectTimeout("the overall deadline passed")
            try:
                # A numeric address: create_connection does no DNS lookup for it.
                stream = self._inner.connect_tcp(
                    sockaddr[0], sockaddr[1], min(timeout or left, left), local_address,
                    socket_options,
                )  # fmt: skip
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        raise error

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


_ERRORS = {
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
}


@contextmanager
def _httpx_errors() -> Iterator[None]:
    """httpcore's exceptions as the httpx ones callers know (as httpx's own transport does)."""
    try:
        yield
    except tuple(_ERRORS) as exc:
        for source, target in _ERRORS.items():
            if isinstance(exc, source):
                raise target(str(exc) or type(exc).__name__) from exc
        raise
