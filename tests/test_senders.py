"""Channel senders against the local fake Slack, Teams and webhook receivers (issue 12).

Slack goes through slack_sdk's WebhookClient, Teams and webhooks through safehttp.post; all
three end at real HTTP servers on 127.0.0.1 (tests/fake_receivers.py), so these tests turn on
the test-only `channel_allow_private_targets` (the address guard has tests/test_safehttp.py).
The webhook receiver verifies Standard Webhooks signatures with the `standardwebhooks` library.
"""

from __future__ import annotations

import base64
import json
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import pytest
from standardwebhooks.webhooks import Webhook

from notifier.delivery import safehttp
from notifier.delivery.safehttp import UnsafeTarget, check_target
from notifier.delivery.senders import (
    ChannelResult,
    mask_target,
    new_webhook_secret,
    retry_after_seconds,
    send,
)
from notifier.settings import Settings

from .fake_receivers import Answer, receivers  # noqa: F401

SLACK_PATH = "/services/T0001/B0002/SeCrEtToKeN"
TEAMS_PATH = "/workflows/0a1b/triggers/manual/paths/invoke?api-version=1&sig=SeCrEtToKeN"
WEBHOOK_PATH = "/hooks/status"
USER_AGENT = "status-notifier/1 (+https://status-notify.example.com)"
PAYLOADS = {
    "slack": {
        "text": "Störung: SMS API",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Störung* – SMS API"}}],
    },
    "teams": {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [{"type": "TextBlock", "text": "Störung – SMS API"}],
                },
            }
        ],
    },
    "webhook": {
        "version": 1,
        "type": "incident.updated",
        "id": "evt_7",
        "data": {"title": "Störung – SMS API", "status": "investigating"},
    },
}
# Whole second: webhook-timestamp and HTTP-dates have no fractions, so results are exact.
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def _fresh_now(monkeypatch):
    """Each test signs at its own start: a Standard Webhooks receiver refuses timestamps more
    than 5 minutes away, and a long suite runs this module well after importing it."""
    monkeypatch.setattr(sys.modules[__name__], "NOW", datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def settings() -> Settings:
    return Settings(
        app_env="test",
        public_base_url="https://status-notify.example.com",
        channel_allow_private_targets=True,
    )


def receiver_and_url(receivers, channel):  # noqa: F811
    receiver = getattr(receivers, channel)
    path = {"slack": SLACK_PATH, "teams": TEAMS_PATH, "webhook": WEBHOOK_PATH}[channel]
    return receiver, path, receiver.url(path)


def send_to(channel, url, settings, *, secret="default", timeout=2.0, message_id="msg_42"):
    if secret == "default":
        secret = SECRET if channel == "webhook" else None
    return send(
        channel,
        url,
        PAYLOADS[channel],
        settings,
        secret=secret,
        message_id=message_id,
        now=NOW,
        timeout=timeout,
    )


SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def expected_body(channel: str) -> bytes:
    if channel == "slack":  # WebhookClient's own json.dumps
        return json.dumps(PAYLOADS["slack"]).encode()
    return json.dumps(
        PAYLOADS[channel], separators=(",", ":"), sort_keys=True, ensure_ascii=False
    ).encode()


def expected_headers(channel: str, port: int, body: bytes) -> dict[str, str]:
    headers = {
        "host": f"127.0.0.1:{port}",
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "content-length": str(len(body)),
    }
    if channel == "slack":
        headers["content-type"] = "application/json;charset=utf-8"
    if channel == "webhook":
        headers |= {
            "webhook-id": "msg_42",
            "webhook-timestamp": str(int(NOW.timestamp())),
            "webhook-signature": Webhook(SECRET).sign("msg_42", NOW, body.decode()),
        }
    return headers


@pytest.mark.parametrize(
    ("channel", "status", "answer_body"),
    [
        ("slack", 200, b"ok"),
        ("teams", 202, b""),
        ("teams", 200, b"1"),
        ("webhook", 204, b""),
        ("webhook", 200, b'{"ok":true}'),
        ("webhook", 202, b""),
    ],
)
def test_2xx_is_accepted_and_the_request_is_sent_whole(
    channel,
    status,
    answer_body,
    settings,
    receivers,  # noqa: F811
):
    receiver, path, url = receiver_and_url(receivers, channel)
    receiver.answer(path, Answer(status, {}, answer_body))
    if channel == "webhook":
        receiver.secrets[path] = SECRET
    assert send_to(channel, url, settings) == ChannelResult("accepted", status)
    (request,) = receiver.received(path)
    body = expected_body(channel)
    port = receiver.server_address[1]
    assert {k: request[k] for k in ("method", "path", "headers", "body", "json")} == {
        "method": "POST",
        "path": path,
        "headers": expected_headers(channel, port, body),
        "body": body,
        "json": PAYLOADS[channel],
    }
    if channel == "webhook":
        assert request["verified"] is True
        assert Webhook(SECRET).verify(body, request["headers"]) == PAYLOADS["webhook"]


def answers_and_outcomes() -> list:
    """Built when a test runs: the HTTP-date Retry-After is 120 s after that test's NOW."""
    return [
        (Answer(429, {"Retry-After": "30"}), ChannelResult("rate_limited", 429, "HTTP 429", 30.0)),
        (
            Answer(429, {"Retry-After": format_datetime(NOW + timedelta(seconds=120), True)}),
            ChannelResult("rate_limited", 429, "HTTP 429", 120.0),
        ),
        (
            Answer(429, {"Retry-After": "86400"}),
            ChannelResult("rate_limited", 429, "HTTP 429", 3600.0),
        ),
        (Answer(429), ChannelResult("rate_limited", 429, "HTTP 429")),
        (Answer(500), ChannelResult("transient", 500, "HTTP 500")),
        (Answer(502, {}, b"<html>bad gateway</html>"), ChannelResult("transient", 502, "HTTP 502")),
        (Answer(503, {"Retry-After": "5"}), ChannelResult("transient", 503, "HTTP 503", 5.0)),
        (Answer(408), ChannelResult("transient", 408, "HTTP 408")),
        (Answer(404), ChannelResult("gone", 404, "HTTP 404")),
        (Answer(410), ChannelResult("gone", 410, "HTTP 410")),
        (
            Answer(400, {}, b"invalid_payload"),
            ChannelResult("rejected", 400, "HTTP 400 invalid_payload"),
        ),
        (
            Answer(400, {}, b'{"error":{"code":"InvalidRequestContent","message":"x"}}'),
            ChannelResult("rejected", 400, "HTTP 400 InvalidRequestContent"),
        ),
        (Answer(401), ChannelResult("rejected", 401, "HTTP 401")),
        (Answer(413), ChannelResult("rejected", 413, "HTTP 413")),
    ]


@pytest.mark.parametrize("channel", ["slack", "teams", "webhook"])
def test_http_answers_map_to_outcomes(
    channel,
    settings,
    receivers,  # noqa: F811
):
    receiver, path, url = receiver_and_url(receivers, channel)
    receiver.answer(path, *(answer for answer, _ in answers_and_outcomes()))
    results = [send_to(channel, url, settings) for _ in answers_and_outcomes()]
    assert results == [expected for _, expected in answers_and_outcomes()]
    # One request per send: no retry inside the sender (the ledger retries, with backoff).
    assert len(receiver.received(path)) == len(answers_and_outcomes())


SLACK_ERRORS = [
    # Slack's incoming-webhook errors ("Handling errors", Slack docs).
    (400, "invalid_payload", "rejected"),
    (404, "no_service", "gone"),
    (404, "channel_not_found", "gone"),
    (410, "channel_is_archived", "gone"),
    (403, "action_prohibited", "rejected"),
    (403, "posting_to_general_channel_denied", "rejected"),
    (404, "no_team", "gone"),
    (403, "team_disabled", "gone"),
    (403, "invalid_token", "rejected"),
]


def test_slack_error_bodies(settings, receivers):  # noqa: F811
    for status, code, _ in SLACK_ERRORS:
        answer = Answer(status, {"Content-Type": "text/plain"}, code.encode())
        receivers.slack.answer(SLACK_PATH, answer)
    results = [send_to("slack", receivers.slack.url(SLACK_PATH), settings) for _ in SLACK_ERRORS]
    assert results == [
        ChannelResult(outcome, status, code if outcome == "gone" else f"HTTP {status} {code}")
        for status, code, outcome in SLACK_ERRORS
    ]


@pytest.mark.parametrize("channel", ["slack", "teams", "webhook"])
def test_a_hanging_target_is_maybe_sent_within_the_timeout(
    channel,
    settings,
    receivers,  # noqa: F811
    monkeypatch,
):
    # Every channel's request goes through safehttp.post, whose `timeout` bounds the whole
    # exchange (tests/test_safehttp.py shows that): record the timeout each channel hands it.
    timeouts = []
    real_post = safehttp.post

    def recording_post(*args, timeout, **kwargs):
        timeouts.append(timeout)
        return real_post(*args, timeout=timeout, **kwargs)

    monkeypatch.setattr(safehttp, "post", recording_post)
    receiver, path, url = receiver_and_url(receivers, channel)
    receiver.answer(path, Answer(hang=True))
    started = time.monotonic()
    # 2 s, not less: the connect counts against the timeout too, and on a loaded CI machine
    # it alone once took more than 0.5 s (a ConnectTimeout, nothing sent).
    assert send_to(channel, url, settings, timeout=2.0) == ChannelResult(
        "maybe_sent", error="ReadTimeout: timed out"
    )
    assert timeouts == [2.0]  # exactly the caller's, e.g. not Slack's whole-second ceil
    # Only the gross failure by the clock: 2.5 s is a starved thread's delay on a loaded
    # 2-core machine, and still shorter than any wrong default (5 s connect, 10 s setting).
    assert time.monotonic() - started < 2.0 + 2.5
    assert len(receiver.received(path)) == 1


@pytest.mark.parametrize("channel", ["slack", "teams", "webhook"])
def test_a_reset_connection_is_maybe_sent(
    channel,
    settings,
    receivers,  # noqa: F811
):
    receiver, path, url = receiver_and_url(receivers, channel)
    receiver.answer(path, Answer(reset=True))
    result = send_to(channel, url, settings)
    assert (result.outcome, result.status_code, result.retry_after_seconds) == (
        "maybe_sent",
        None,
        None,
    )
    assert result.error in (
        "ReadError: [Errno 104] Connection reset by peer",
        "RemoteProtocolError: Server disconnected without sending a response.",
    )


@pytest.mark.parametrize("channel", ["slack", "teams", "webhook"])
def test_nothing_listening_is_transient(channel, settings):
    with socket.create_server(("127.0.0.1", 0)) as spare:
        port = spare.getsockname()[1]
    result = send_to(channel, f"http://127.0.0.1:{port}/services/T0/B0/x", settings)
    assert result == ChannelResult(
        "transient", error="ConnectError: [Errno 111] Connection refused"
    )


@pytest.mark.parametrize("channel", ["slack", "teams", "webhook"])
def test_a_redirect_is_rejected_and_not_followed(
    channel,
    settings,
    receivers,  # noqa: F811
):
    receiver, path, url = receiver_and_url(receivers, channel)
    receiver.answer(path, Answer(302, {"Location": receiver.url("/elsewhere")}))
    assert send_to(channel, url, settings) == ChannelResult(
        "rejected", 302, "HTTP 302: redirect refused"
    )
    assert [r["path"] for r in receiver.received()] == [path]


def test_a_wrong_webhook_secret_is_refused_by_the_receiver(settings, receivers):  # noqa: F811
    receivers.webhook.secrets[WEBHOOK_PATH] = SECRET
    result = send_to(
        "webhook", receivers.webhook.url(WEBHOOK_PATH), settings, secret=new_webhook_secret()
    )
    assert result == ChannelResult("rejected", 401, "HTTP 401")
    (request,) = receivers.webhook.received(WEBHOOK_PATH)
    assert request["verified"] is False


@pytest.mark.parametrize("secret", [None, "", "whsec_"])
def test_a_webhook_without_a_usable_secret_is_not_sent(
    secret,
    settings,
    receivers,  # noqa: F811
):
    result = send_to("webhook", receivers.webhook.url(WEBHOOK_PATH), settings, secret=secret)
    assert result.outcome == "rejected"
    assert result.error in ("webhook has no signing secret", "webhook signing secret is invalid")
    assert receivers.webhook.received() == []


def test_the_signature_covers_exactly_the_bytes_sent_with_a_non_utc_now(
    settings,
    receivers,  # noqa: F811
):
    receivers.webhook.secrets[WEBHOOK_PATH] = SECRET
    berlin = NOW.astimezone(ZoneInfo("Europe/Berlin"))
    result = send(
        "webhook",
        receivers.webhook.url(WEBHOOK_PATH),
        PAYLOADS["webhook"],
        settings,
        secret=SECRET,
        message_id="msg_43",
        now=berlin,
        timeout=2.0,
    )
    assert result == ChannelResult("accepted", 204)
    (request,) = receivers.webhook.received(WEBHOOK_PATH)
    assert (request["verified"], request["headers"]["webhook-timestamp"]) == (
        True,
        str(int(NOW.timestamp())),
    )


@pytest.mark.parametrize("channel", ["slack", "teams", "webhook"])
def test_the_address_guard_applies_to_every_channel_at_send(
    channel,
    receivers,  # noqa: F811
):
    guarded = Settings(app_env="test", public_base_url="https://status-notify.example.com")
    receiver, _, _ = receiver_and_url(receivers, channel)
    port = receiver.server_address[1]
    targets = {
        "slack": f"https://hooks.slack.com.127.0.0.1.nip.io:{port}{SLACK_PATH}",
        "teams": f"https://127.0.0.1:{port}{TEAMS_PATH}",
        "webhook": f"https://127.0.0.1:{port}{WEBHOOK_PATH}",
    }
    result = send_to(channel, targets[channel], guarded)
    assert result.outcome == "unsafe"
    assert "SeCrEtToKeN" not in result.error
    assert receiver.received() == []


def test_the_slack_client_connects_only_after_the_guard_with_a_public_name(monkeypatch):
    # The real Slack host, answered by a fake resolver with a private address: refused at send.
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if host == "hooks.slack.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 443))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    guarded = Settings(app_env="test")
    result = send_to("slack", "https://hooks.slack.com" + SLACK_PATH, guarded)
    assert result == ChannelResult(
        "unsafe",
        error="Target host hooks.slack.com resolves to 10.1.2.3, a private address; "
        "targets must be public internet addresses.",
    )


def test_an_unserializable_payload_is_rejected_without_sending(settings, receivers):  # noqa: F811
    result = send(
        "teams",
        receivers.teams.url(TEAMS_PATH),
        {"when": datetime(2026, 1, 1)},
        settings,
        secret=None,
        message_id="msg_1",
        now=NOW,
        timeout=1.0,
    )
    assert result == ChannelResult("rejected", error="invalid payload: not JSON")
    assert receivers.teams.received() == []


def test_retry_after_parsing():
    now = datetime(2026, 12, 1, 6, 0, 0, tzinfo=UTC)
    assert [
        retry_after_seconds(value, now)
        for value in (
            "0",
            "17",
            " 17 ",
            "4000",
            "Tue, 01 Dec 2026 06:01:30 GMT",
            "Tuesday, 01-Dec-26 06:01:30 GMT",
            "Tue, 01 Dec 2026 05:00:00 GMT",
            "-5",
            "1.5",
            "soon",
            "",
            None,
        )
    ] == [0.0, 17.0, 17.0, 3600.0, 90.0, 90.0, 0.0, None, None, None, None, None]


def test_mask_target_hides_tokens():
    assert [
        mask_target(url)
        for url in (
            "https://hooks.slack.com/services/T0001/B0002/SeCrEtToKeN",
            "https://prod-12.westeurope.logic.azure.com:443/workflows/0a1b/triggers?sig=SeCrEt",
            "https://ops.example.com/SeCrEtToKeN",
            "https://ops.example.com/?token=SeCrEt",
            "https://user:pw@ops.example.com:8443/",
            "https://ops.example.com/abcdefghijklmnopqrstuvwxyz0123/x",
            "not a url",
        )
    ] == [
        "https://hooks.slack.com/services/…",
        "https://prod-12.westeurope.logic.azure.com:443/workflows/…",
        "https://ops.example.com/…",
        "https://ops.example.com/…",
        "https://ops.example.com:8443/",
        "https://ops.example.com/…",
        "(invalid URL)",
    ]


def test_new_webhook_secret_is_standard_webhooks_shaped():
    first, second = new_webhook_secret(), new_webhook_secret()
    assert first != second
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32
    Webhook(first)  # the library accepts it


def test_a_failed_lookup_is_temporary_and_sends_nothing(monkeypatch):
    """A DNS failure (often EAI_AGAIN) refuses nothing about the target: it is retried like a
    connect error, never an 'unsafe' target that fails the row and counts towards a pause."""

    def resolve(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    guarded = Settings(app_env="test", public_base_url="https://status-notify.example.com")
    result = send_to("webhook", "https://hooks.example.org/w", guarded)
    assert result.outcome == "transient"


def test_a_target_path_with_raw_non_ascii_is_refused_at_sign_up_and_fails_once_at_send(
    settings,
    receivers,  # noqa: F811
):
    """The HTTP client cannot send a raw non-ASCII path: sign-up refuses it, and a stored one
    fails its row once ('unsafe', a permanent outcome) instead of raising in the dispatcher
    on every attempt."""
    url = receivers.webhook.url("/hooks/ü")
    with pytest.raises(UnsafeTarget) as refused:
        check_target("webhook", url, settings, resolve=False)
    assert refused.value.code == "format"
    result = send_to("webhook", url, settings)
    assert result.outcome == "unsafe"
    assert receivers.webhook.received() == []
