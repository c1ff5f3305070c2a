"""The address guard for channel targets (issue 12, item 5; OWASP SSRF Prevention Cheat Sheet).

Every refused address kind is walked at sign-up (`check_target(resolve=True)`) and at send
time (`post`), with the guard ON and no internet: literal IPs, `localhost`, odd IPv4
spellings, and names answered by a fake resolver (socket.getaddrinfo, monkeypatched).
`post` must never open a connection for a refused target: `socket.create_connection` (what
httpcore's sync backend connects with) is replaced by a recorder in those tests.

The fake receivers listen on 127.0.0.1 over http, which only the test setting
`channel_allow_private_targets` lets through: tests that need a real answer (redirects, size
cap, hangs) turn it on and nothing else.
"""

from __future__ import annotations

import contextlib
import inspect
import socket
import threading
import time

import httpx
import pytest

from notifier.delivery import safehttp
from notifier.delivery.safehttp import HttpAnswer, UnsafeTarget, check_target, post
from notifier.settings import Settings

from .fake_receivers import Answer, receivers  # noqa: F401

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"

REFUSED_LITERALS = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),  # AWS/GCP/Azure instance metadata
    ("169.254.170.2", "link-local"),  # ECS task metadata
    ("100.64.0.1", "shared (CGNAT)"),
    ("100.100.100.200", "shared (CGNAT)"),  # Alibaba Cloud metadata
    ("192.0.0.192", "special-purpose"),  # Oracle Cloud metadata
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "private"),
    ("255.255.255.255", "private"),
    ("198.18.0.1", "private"),
    ("[::1]", "loopback"),
    ("[::]", "unspecified"),
    ("[fe80::1]", "link-local"),
    ("[fc00::1]", "private"),
    ("[fd00:ec2::254]", "private"),  # AWS IPv6 instance metadata
    ("[::ffff:127.0.0.1]", "loopback"),  # IPv4-mapped
    ("[::ffff:a9fe:a9fe]", "link-local"),  # IPv4-mapped 169.254.169.254
    ("[::127.0.0.1]", "reserved"),  # IPv4-compatible (deprecated)
    ("[64:ff9b::a00:1]", "private"),  # NAT64 of 10.0.0.1
    ("[2002:a9fe:a9fe::1]", "link-local"),  # 6to4 of 169.254.169.254
    ("[ff02::1]", "multicast"),
    ("[2001:db8::1]", "private"),
]
ODD_SPELLINGS = ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0", "0x7f.1", "017700000001"]


@pytest.fixture
def guarded() -> Settings:
    """Production's guard: the test suite's override is off."""
    return Settings(app_env="test", channel_max_response_bytes=1024)


@pytest.fixture
def open_settings() -> Settings:
    """The test-only override, for tests that need the local fake receivers to answer."""
    return Settings(
        app_env="test", channel_allow_private_targets=True, channel_max_response_bytes=1024
    )


@pytest.fixture
def connects(monkeypatch) -> list:
    """Records every TCP connect attempt and refuses it: nothing leaves the machine."""
    attempts: list = []

    def refuse(address, *args, **kwargs):
        attempts.append(address)
        raise ConnectionRefusedError(111, "Connection refused (test recorder)")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


class FakeResolver:
    """socket.getaddrinfo with scripted answers per name (a list per lookup, in order)."""

    def __init__(self, real):
        self.real = real
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        if host not in self.answers:
            return self.real(host, port, family, type, proto, flags)
        self.lookups.append(host)
        queue = self.answers[host]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]


@pytest.fixture
def resolver(monkeypatch) -> FakeResolver:
    fake = FakeResolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@pytest.mark.parametrize(("host", "kind"), REFUSED_LITERALS)
def test_every_refused_address_kind_is_refused_at_sign_up_and_at_send(
    host, kind, guarded, connects
):
    url = f"https://{host}/hook"
    with pytest.raises(UnsafeTarget) as signup:
        check_target("webhook", url, guarded, resolve=True)
    bare = host.strip("[]")
    assert (signup.value.code, str(signup.value)) == (
        "address",
        f"Target address {bare} is a {kind} address, not a public one.",
    )
    with pytest.raises(UnsafeTarget) as sending:
        post(url, b"{}", {}, guarded, timeout=1.0)
    assert sending.value.code == "address"
    assert connects == []


@pytest.mark.parametrize(("address", "kind"), REFUSED_LITERALS)
def test_a_name_resolving_to_a_refused_address_is_refused(
    address, kind, guarded, resolver, connects
):
    bare = address.strip("[]")
    resolver.answers["target.example"] = [[bare]]
    message = (
        f"Target host target.example resolves to {bare}, a {kind} address; "
        "targets must be public internet addresses."
    )
    for attempt in (
        lambda: check_target("webhook", "https://target.example/h", guarded, resolve=True),
        lambda: post("https://target.example/h", b"{}", {}, guarded, timeout=1.0),
    ):
        with pytest.raises(UnsafeTarget) as refused:
            attempt()
        assert (refused.value.code, str(refused.value)) == ("address", message)
    assert connects == []


def test_a_name_with_one_public_and_one_private_address_is_refused(guarded, resolver, connects):
    resolver.answers["mixed.example"] = [[PUBLIC_V4, "10.0.0.1"]]
    resolver.answers["mixed6.example"] = [[PUBLIC_V6, "::1"]]
    for host in ("mixed.example", "mixed6.example"):
        with pytest.raises(UnsafeTarget, match="resolves to") as signup:
            check_target("webhook", f"https://{host}/h", guarded)
        with pytest.raises(UnsafeTarget, match="resolves to") as sending:
            post(f"https://{host}/h", b"{}", {}, guarded, timeout=1.0)
        assert signup.value.code == sending.value.code == "address"
    assert connects == []


@pytest.mark.parametrize("host", ODD_SPELLINGS)
@pytest.mark.parametrize("scheme", ["https", "http"])
def test_odd_ipv4_spellings_are_refused_even_with_the_test_override(
    host, scheme, guarded, open_settings, connects
):
    url = f"{scheme}://{host}/hook"
    for settings in (guarded, open_settings):
        with pytest.raises(UnsafeTarget) as signup:
            check_target("webhook", url, settings)
        with pytest.raises(UnsafeTarget) as sending:
            post(url, b"{}", {}, settings, timeout=1.0)
        expected = (
            ("scheme", "Target URL scheme http is not https.")
            if scheme == "http" and settings is guarded
            else ("host", f"Target host {host} is an unusual spelling of an IPv4 address.")
        )
        assert (signup.value.code, str(signup.value)) == expected
        assert (sending.value.code, str(sending.value)) == expected
    assert connects == []


@pytest.mark.parametrize(
    "host",
    ["localhost", "LOCALHOST.", "api.localhost", "printer.local", "metadata.google.internal"],
)
def test_internal_names_are_refused_without_asking_dns(host, guarded, resolver, connects):
    for resolve in (False, True):
        with pytest.raises(UnsafeTarget) as refused:
            check_target("webhook", f"https://{host}/h", guarded, resolve=resolve)
        assert refused.value.code == "host"
    with pytest.raises(UnsafeTarget, match="is an internal name"):
        post(f"https://{host}/h", b"{}", {}, guarded, timeout=1.0)
    assert (resolver.lookups, connects) == ([], [])


def test_localhost_and_loopback_receivers_are_refused_and_never_reached(
    guarded,
    receivers,  # noqa: F811
):
    port = receivers.webhook.server_address[1]
    for url in (
        f"https://127.0.0.1:{port}/h",
        f"https://localhost:{port}/h",
        f"https://[::ffff:127.0.0.1]:{port}/h",
        receivers.webhook.url("/h"),  # http: refused for its scheme first
    ):
        with pytest.raises(UnsafeTarget):
            check_target("webhook", url, guarded)
        with pytest.raises(UnsafeTarget):
            post(url, b"{}", {}, guarded, timeout=1.0)
    assert receivers.webhook.received() == []


def test_dns_rebinding_after_sign_up_is_refused_at_send(guarded, resolver, connects):
    resolver.answers["rebind.example"] = [[PUBLIC_V4], ["127.0.0.1"]]
    assert check_target("webhook", "https://rebind.example/h", guarded) == (
        "https://rebind.example/h"
    )
    with pytest.raises(UnsafeTarget, match=r"resolves to 127\.0\.0\.1"):
        post("https://rebind.example/h", b"{}", {}, guarded, timeout=1.0)
    assert connects == []


def test_send_resolves_once_and_connects_only_to_the_vetted_address(guarded, resolver, connects):
    # Public on the first lookup, loopback on any later one: a client that resolved again to
    # connect (after the check) would be steered to 127.0.0.1.
    resolver.answers["rebind.example"] = [[PUBLIC_V4], ["127.0.0.1"]]
    with pytest.raises(httpx.ConnectError):
        post("https://rebind.example:8443/h", b"{}", {}, guarded, timeout=1.0)
    assert resolver.lookups == ["rebind.example"]
    assert connects == [(PUBLIC_V4, 8443)]


def test_each_vetted_address_is_tried_in_turn_and_nothing_else(guarded, resolver, connects):
    resolver.answers["two.example"] = [[PUBLIC_V6, PUBLIC_V4]]
    with pytest.raises(httpx.ConnectError):
        post("https://two.example/h", b"{}", {}, guarded, timeout=1.0)
    assert (resolver.lookups, connects) == (["two.example"], [(PUBLIC_V6, 443), (PUBLIC_V4, 443)])


def test_unresolvable_host_is_refused(guarded, resolver, connects):
    resolver.answers["nowhere.example"] = [[]]
    with pytest.raises(UnsafeTarget) as signup:
        check_target("webhook", "https://nowhere.example/h", guarded)
    with pytest.raises(UnsafeTarget) as sending:
        post("https://nowhere.example/h", b"{}", {}, guarded, timeout=1.0)
    assert (signup.value.code, str(signup.value)) == (
        "unresolvable",
        "Target host nowhere.example does not resolve.",
    )
    assert sending.value.code == "unresolvable"
    assert connects == []


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://hooks.example.com/h", "scheme"),
        ("ftp://hooks.example.com/h", "scheme"),
        ("hooks.example.com/h", "scheme"),
        ("https://user:pw@hooks.example.com/h", "format"),
        ("https://hooks.example.com:99999/h", "format"),
        ("https://hooks.example.com/a b", "format"),
        ("https:///h", "format"),
        ("", "format"),
        ("https://example.com/" + "a" * 2100, "format"),
    ],
)
def test_malformed_or_plain_http_urls_are_refused(url, code, guarded, connects):
    with pytest.raises(UnsafeTarget) as refused:
        check_target("webhook", url, guarded, resolve=False)
    assert refused.value.code == code
    with pytest.raises(UnsafeTarget):
        post(url, b"{}", {}, guarded, timeout=1.0)
    assert connects == []


@pytest.mark.parametrize(
    ("channel", "url", "normalized"),
    [
        (
            "slack",
            "https://Hooks.Slack.com:443/services/T0001/B0002/abcDEF123#x",
            "https://hooks.slack.com/services/T0001/B0002/abcDEF123",
        ),
        (
            "teams",
            "https://prod-12.westeurope.logic.azure.com:443/workflows/0a1b/triggers/manual/paths/"
            "invoke?api-version=2016-06-01&sp=%2Ftriggers&sv=1.0&sig=s3cr3t",
            "https://prod-12.westeurope.logic.azure.com/workflows/0a1b/triggers/manual/paths/"
            "invoke?api-version=2016-06-01&sp=%2Ftriggers&sv=1.0&sig=s3cr3t",
        ),
        (
            "teams",
            "https://default0a1b.c2.environment.api.powerplatform.com/powerautomate/automations"
            "/direct/workflows/0a1b/triggers/manual/paths/invoke?api-version=1&sig=x",
            "https://default0a1b.c2.environment.api.powerplatform.com/powerautomate/automations"
            "/direct/workflows/0a1b/triggers/manual/paths/invoke?api-version=1&sig=x",
        ),
        (
            "teams",
            "https://contoso.webhook.office.com/webhookb2/abc@def/IncomingWebhook/123/456",
            "https://contoso.webhook.office.com/webhookb2/abc@def/IncomingWebhook/123/456",
        ),
        ("webhook", "https://Ops.Example.COM:8443/in?x=1", "https://ops.example.com:8443/in?x=1"),
        ("webhook", "https://bücher.example/h", "https://xn--bcher-kva.example/h"),
    ],
)
def test_channel_hosts_accepted_and_normalized(channel, url, normalized, guarded):
    assert check_target(channel, url, guarded, resolve=False) == normalized


@pytest.mark.parametrize(
    ("channel", "url"),
    [
        ("slack", "https://hooks.slack.com.evil.example/services/T0/B0/x"),
        ("slack", "https://hooks.slack.com/triggers/T0/1/x"),
        ("slack", "https://hooks.slack.com:8443/services/T0/B0/x"),
        ("slack", "https://evil.example/services/T0/B0/x"),
        ("teams", "https://evil.example/workflows/x"),
        ("teams", "https://logic.azure.com.evil.example/workflows/x"),
        ("teams", "https://prod-1.westus.logic.azure.com/other/x"),
    ],
)
def test_slack_and_teams_targets_must_be_their_webhook_hosts(channel, url, guarded):
    with pytest.raises(UnsafeTarget) as refused:
        check_target(channel, url, guarded, resolve=False)
    assert refused.value.code == "host"
    assert "/x" not in str(refused.value)  # the path (the secret part) is never in messages


def test_a_public_slack_host_passes_sign_up(guarded, resolver):
    resolver.answers["hooks.slack.com"] = [[PUBLIC_V4, PUBLIC_V6]]
    url = "https://hooks.slack.com/services/T0001/B0002/abc"
    assert check_target("slack", url, guarded) == url
    assert resolver.lookups == ["hooks.slack.com"]


def test_redirects_are_answers_never_followed(
    open_settings,
    receivers,  # noqa: F811
):
    receivers.webhook.answer(
        "/h", Answer(302, {"Location": "http://169.254.169.254/latest/meta-data/"})
    )
    receivers.webhook.answer("/h", Answer(307, {"Location": receivers.webhook.url("/next")}))
    first = post(receivers.webhook.url("/h"), b"{}", {}, open_settings, timeout=2.0)
    second = post(receivers.webhook.url("/h"), b"{}", {}, open_settings, timeout=2.0)
    assert (first.status, first.headers["location"], first.body) == (
        302,
        "http://169.254.169.254/latest/meta-data/",
        b"",
    )
    assert (second.status, second.headers["location"]) == (307, receivers.webhook.url("/next"))
    assert [r["path"] for r in receivers.webhook.received()] == ["/h", "/h"]


def test_post_sends_the_body_and_headers_and_returns_the_answer_whole(
    open_settings,
    receivers,  # noqa: F811
):
    receivers.webhook.answer(
        "/h", Answer(200, {"X-Thing": "a", "Content-Type": "text/plain"}, b"k")
    )
    answer = post(
        receivers.webhook.url("/h"),
        b'{"a":1}',
        {"Content-Type": "application/json", "User-Agent": "t/1"},
        open_settings,
        timeout=2.0,
    )
    assert answer == HttpAnswer(
        200,
        {
            "server": answer.headers["server"],
            "date": answer.headers["date"],
            "x-thing": "a",
            "content-type": "text/plain",
            "content-length": "1",
        },
        b"k",
    )
    (request,) = receivers.webhook.received("/h")
    assert (request["method"], request["headers"], request["body"]) == (
        "POST",
        {
            "host": f"127.0.0.1:{receivers.webhook.server_address[1]}",
            "content-type": "application/json",
            "user-agent": "t/1",
            "content-length": "7",
        },
        b'{"a":1}',
    )


def test_a_hanging_target_times_out_within_the_budget(
    open_settings,
    receivers,  # noqa: F811
):
    receivers.webhook.answer("/hang", Answer(hang=True))
    started = time.monotonic()
    # 2 s, not less: the connect counts against the timeout, and on a loaded CI machine it
    # alone once took more than 0.5 s (a ConnectTimeout, not the ReadTimeout under test).
    with pytest.raises(httpx.ReadTimeout):
        post(receivers.webhook.url("/hang"), b"{}", {}, open_settings, timeout=2.0)
    # The read waits until the deadline, never less. Above: 2.5 s is a starved thread's delay
    # on a loaded 2-core machine, and still shorter than a wrong timeout would take
    # (CONNECT_TIMEOUT_SECONDS 5 s, the 10 s default setting).
    assert 2.0 - 0.1 < time.monotonic() - started < 2.0 + 2.5
    assert len(receivers.webhook.received("/hang")) == 1


class RawServer:
    """A TCP server on 127.0.0.1 that reads one request and then runs `script(conn, stop)`."""

    def __init__(self, script):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.stop = threading.Event()
        self.script = script
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}{path}"

    def _serve(self):
        self.listener.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                with contextlib.suppress(OSError):  # the client hung up
                    self.script(conn, self.stop)

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.listener.close()


@pytest.fixture
def raw_server():
    servers = []

    def start(script):
        servers.append(RawServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


TRICKLE_SECONDS = 0.05 * (17 + 9 + 200)  # at least: each byte waits 50 ms


def trickle(conn, stop):
    """One byte of a never-ending header every 50 ms, for at least TRICKLE_SECONDS."""
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:
        if stop.wait(0.05):
            return
        conn.sendall(bytes([byte]))


def endless_body(conn, stop):
    """A 100 GB answer, sent as fast as the client reads."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n")
    chunk = b"x" * 65536
    while not stop.is_set():
        conn.sendall(chunk)


def test_an_endless_answer_is_read_only_up_to_the_cap(open_settings, raw_server):
    server = raw_server(endless_body)
    started = time.monotonic()
    answer = post(server.url("/big"), b"{}", {}, open_settings, timeout=5.0)
    assert (answer.status, answer.headers, answer.body) == (
        200,
        {"content-length": "100000000000"},
        b"x" * 1024,
    )
    # Reading on past the cap would end only at the deadline, with a ReadTimeout; the bound
    # is that deadline, not a tighter guess at how fast a loaded machine reads 1 KB.
    assert time.monotonic() - started < 5.0


def test_a_trickling_target_cannot_hold_a_sender_past_the_deadline(open_settings, raw_server):
    # Every read gets a byte well within its own timeout; only the overall deadline stops it.
    server = raw_server(trickle)
    started = time.monotonic()
    # 2 s, not less: the connect counts against the timeout, and on a loaded CI machine it
    # alone once took more than 0.5 s (a ConnectTimeout, not the ReadTimeout under test).
    with pytest.raises(httpx.ReadTimeout):
        post(server.url("/slow"), b"{}", {}, open_settings, timeout=2.0)
    # Without the overall deadline the header would arrive whole (no ReadTimeout), after at
    # least TRICKLE_SECONDS (11.3 s); with it the wait ends at 2 s. Above: 2.5 s for a
    # starved thread on a loaded 2-core machine, far below the trickle's length.
    assert 2.0 - 0.1 < time.monotonic() - started < 2.0 + 2.5


def test_a_closed_port_is_a_connect_error(open_settings):
    with socket.create_server(("127.0.0.1", 0)) as spare:
        port = spare.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        post(f"http://127.0.0.1:{port}/h", b"{}", {}, open_settings, timeout=1.0)


def test_only_the_setting_lifts_the_guard_and_never_in_production(
    receivers,  # noqa: F811
    monkeypatch,
):
    monkeypatch.setenv("CHANNEL_ALLOW_PRIVATE_TARGETS", "on")  # env is read by load_settings only
    url = receivers.webhook.url("/h")
    https_url = f"https://127.0.0.1:{receivers.webhook.server_address[1]}/h"
    for settings in (
        Settings(app_env="test"),
        Settings(app_env="development"),
        Settings(app_env="production", channel_allow_private_targets=True),
        Settings(app_env="test", dyno="web.1", channel_allow_private_targets=True),
    ):
        for target in (url, https_url):
            with pytest.raises(UnsafeTarget):
                check_target("webhook", target, settings, resolve=False)
            with pytest.raises(UnsafeTarget):
                post(target, b"{}", {}, settings, timeout=1.0)
    assert receivers.webhook.received() == []
    # No keyword or argument beyond the contract's can switch it off.
    assert list(inspect.signature(check_target).parameters) == [
        "channel",
        "url",
        "settings",
        "resolve",
    ]
    assert list(inspect.signature(post).parameters) == [
        "url",
        "body",
        "headers",
        "settings",
        "timeout",
    ]
    allowed = Settings(app_env="test", channel_allow_private_targets=True)
    assert post(url, b"{}", {}, allowed, timeout=2.0).status == 204
    assert safehttp.allow_private(allowed) is True
