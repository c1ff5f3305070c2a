"""The mail backends: the real `sendgrid` library against the fake server, and the outbox."""

from __future__ import annotations

import base64
import json
import logging
import socket
import time
import urllib.request
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

import pytest

from notifier.delivery.mailer import (
    Message,
    OutboxBackend,
    Recipient,
    SendGridBackend,
    SendResult,
    build_request_body,
    make_backend,
    mask_email,
)
from notifier.settings import Settings
from tests.fake_sendgrid import check_mail_send, find_schema, sendgrid  # noqa: F401

NOW_EPOCH = 1_795_000_000.0  # the backend's clock in rate-limit tests


def make_message(**changes) -> Message:
    values = dict(
        notification_id=45,
        category="incident",
        from_addr="Sinch Status <status@example.com>",
        subject="[Behoben] SMS (EU): Verzögerte Zustellung",
        text="Hallo liebe/r Kund:in,\n"
        "Abmelden: -unsubscribe_url-\nEinstellungen: -preferences_url-",
        html='<p>Hallo</p><a href="-unsubscribe_url-">Abmelden</a> '
        '<a href="-preferences_url-">Einstellungen</a>',
        headers={
            "List-Id": "Sinch status notifications <status.notifier.example.com>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    values.update(changes)
    return Message(**values)


def make_recipient(delivery_id: int, email: str | None = None) -> Recipient:
    email = email or f"user{delivery_id}@example.com"
    base = "https://status-notify.example.com"
    return Recipient(
        delivery_id=delivery_id,
        email=email,
        substitutions={
            "-unsubscribe_url-": f"{base}/unsubscribe/TOKEN{delivery_id}",
            "-preferences_url-": f"{base}/preferences/TOKEN{delivery_id}",
        },
        headers={
            "List-Unsubscribe": f"<{base}/unsubscribe/one-click/TOKEN{delivery_id}>, "
            f"<mailto:unsubscribe+{delivery_id}@example.com>"
        },
    )


@pytest.fixture
def backend(sendgrid):  # noqa: F811
    return SendGridBackend("SG.test-key", sendgrid.base_url, 2.0, clock=lambda: NOW_EPOCH)


def _expected_personalization(delivery_id: int) -> dict:
    r = make_recipient(delivery_id)
    return {
        "to": [{"email": r.email}],
        "substitutions": r.substitutions,
        "headers": r.headers,
        "custom_args": {"delivery_id": str(delivery_id), "notification_id": "45"},
    }


def test_two_recipient_send_posts_the_whole_expected_body(backend, sendgrid):  # noqa: F811
    message = make_message()
    result = backend.send(message, [make_recipient(123), make_recipient(124)])

    [request] = sendgrid.requests
    assert result == SendResult("accepted", 202, request.message_id, None, None)
    assert request.body == {
        "personalizations": [_expected_personalization(123), _expected_personalization(124)],
        "from": {"email": "status@example.com", "name": "Sinch Status"},
        "subject": "[Behoben] SMS (EU): Verzögerte Zustellung",
        "content": [
            {"type": "text/plain", "value": message.text},
            {"type": "text/html", "value": message.html},
        ],
        "categories": ["incident"],
        "tracking_settings": {
            "click_tracking": {"enable": False, "enable_text": False},
            "open_tracking": {"enable": False},
            "subscription_tracking": {"enable": False},
            "ganalytics": {"enable": False},
        },
        "headers": {
            "List-Id": "Sinch status notifications <status.notifier.example.com>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    }
    assert request.headers["Authorization"] == "Bearer SG.test-key"
    assert request.headers["Content-Type"] == "application/json"
    assert sendgrid.accepted_recipients() == [
        {"email": "user123@example.com", "delivery_id": "123", "message_id": request.message_id},
        {"email": "user124@example.com", "delivery_id": "124", "message_id": request.message_id},
    ]


def test_request_body_is_valid_against_the_official_schema():
    schema_path = find_schema()
    if schema_path is None:
        pytest.skip("../shared/fixtures/sendgrid is absent (a user's clone has none)")
    from jsonschema import Draft202012Validator

    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    body = build_request_body(make_message(), [make_recipient(1), make_recipient(2)])
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert [e.message for e in validator.iter_errors(body)] == []


def test_sender_without_display_name_is_sent_as_bare_address():
    body = build_request_body(make_message(from_addr="status@example.com"), [make_recipient(1)])
    assert body["from"] == {"email": "status@example.com"}


def test_rate_limited_send_waits_until_the_reset_header(backend, sendgrid):  # noqa: F811
    sendgrid.rate_limit_reset_at = int(NOW_EPOCH) + 45
    sendgrid.script("rate_limited")
    result = backend.send(make_message(), [make_recipient(1)])
    assert result == SendResult("rate_limited", 429, None, 45.0, "HTTP 429: too many requests")


@pytest.mark.parametrize(("reset_in", "wait"), [(3600, 300.0), (-30, 1.0), (0, 1.0)])
def test_rate_limit_wait_is_clamped(backend, sendgrid, reset_in, wait):  # noqa: F811
    sendgrid.rate_limit_reset_at = int(NOW_EPOCH) + reset_in
    sendgrid.script("rate_limited")
    assert backend.send(make_message(), [make_recipient(1)]).retry_after_seconds == wait


@pytest.mark.parametrize(("fault", "status"), [("server_error", 500), ("unavailable", 503)])
def test_server_errors_are_transient(backend, sendgrid, fault, status):  # noqa: F811
    sendgrid.script(fault)
    result = backend.send(make_message(), [make_recipient(1)])
    assert result == SendResult(
        "transient", status, None, None, f"HTTP {status}: internal server error"
    )
    assert sendgrid.accepted_recipients() == []


def test_bad_request_is_rejected_with_sendgrids_reason(backend, sendgrid):  # noqa: F811
    sendgrid.rejected_addresses = {"user2@example.com"}
    result = backend.send(make_message(), [make_recipient(1), make_recipient(2)])
    assert result == SendResult(
        "rejected",
        400,
        None,
        None,
        "HTTP 400: Does not contain a valid address. (personalizations.1.to.0.email)",
    )


def test_too_large_request_is_rejected(backend, sendgrid):  # noqa: F811
    sendgrid.max_request_bytes = 1000
    result = backend.send(make_message(html="<p>" + "x" * 2000 + "</p>"), [make_recipient(1)])
    assert result == SendResult("rejected", 413, None, None, "HTTP 413: content too large")


def test_wrong_api_key_is_unauthorized(sendgrid):  # noqa: F811
    backend = SendGridBackend("SG.revoked", sendgrid.base_url, 2.0)
    result = backend.send(make_message(), [make_recipient(1)])
    assert result == SendResult("unauthorized", 401, None, None, "HTTP 401: authorization required")


def test_forbidden_key_is_unauthorized(backend, sendgrid):  # noqa: F811
    sendgrid.auth_mode = 403
    result = backend.send(make_message(), [make_recipient(1)])
    assert result == SendResult("unauthorized", 403, None, None, "HTTP 403: access forbidden")


def test_timeout_is_honoured_and_maps_to_maybe_sent(sendgrid, monkeypatch):  # noqa: F811
    # The library's request goes out through urllib's OpenerDirector.open(request, timeout):
    # record the timeout it is given there, the backend's own decision, exactly.
    timeouts = []
    real_open = urllib.request.OpenerDirector.open

    def recording_open(self, request, data=None, timeout=socket._GLOBAL_DEFAULT_TIMEOUT):
        timeouts.append(timeout)
        return real_open(self, request, data, timeout)

    monkeypatch.setattr(urllib.request.OpenerDirector, "open", recording_open)
    backend = SendGridBackend("SG.test-key", sendgrid.base_url, 0.3)
    sendgrid.script("timeout")
    started = time.monotonic()
    result = backend.send(make_message(), [make_recipient(1)])
    elapsed = time.monotonic() - started
    assert timeouts == [0.3]
    # The client's own socket timeout fired ("TimeoutError"): without one it would have waited
    # for the fake's hang to end and read a closed connection ("RemoteDisconnected").
    assert result == SendResult(
        "maybe_sent", None, None, None, "no answer after sending: TimeoutError: timed out"
    )
    # A socket timeout never fires early, so this lower bound holds under any load; the upper
    # one is the fake's hang (5 s), which only a client that ignored its timeout waits out.
    assert 0.3 <= elapsed < sendgrid.hang_seconds
    assert sendgrid.accepted_recipients() == []


def test_lost_202_after_acceptance_is_maybe_sent(sendgrid):  # noqa: F811
    backend = SendGridBackend("SG.test-key", sendgrid.base_url, 0.3)
    sendgrid.script("timeout_accepted")
    result = backend.send(make_message(), [make_recipient(7)])
    assert result.outcome == "maybe_sent"
    # The provider did take it: this is the duplicate window the dispatcher must flag.
    assert [r["delivery_id"] for r in sendgrid.accepted_recipients()] == ["7"]


@pytest.mark.parametrize(
    ("fault", "exception"),
    [
        ("reset", "ConnectionResetError"),
        ("reset_accepted", "ConnectionResetError"),
        ("disconnect", "RemoteDisconnected"),
        ("disconnect_accepted", "RemoteDisconnected"),
    ],
)
def test_connection_lost_after_sending_is_maybe_sent(backend, sendgrid, fault, exception):  # noqa: F811
    sendgrid.script(fault)
    result = backend.send(make_message(), [make_recipient(1)])
    assert (result.outcome, result.status_code) == ("maybe_sent", None)
    assert result.error.startswith(f"no answer after sending: {exception}")


def test_connection_refused_is_transient():
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = SendGridBackend("SG.test-key", f"http://127.0.0.1:{port}", 2.0)
    result = backend.send(make_message(), [make_recipient(1)])
    assert (result.outcome, result.status_code, result.message_id) == ("transient", None, None)
    assert result.error.startswith("not sent: [Errno ")  # the errno number is per platform
    assert result.error.endswith("] Connection refused")


def test_slow_but_timely_answer_is_accepted(backend, sendgrid):  # noqa: F811
    sendgrid.latency_seconds = 0.05
    started = time.monotonic()
    assert backend.send(make_message(), [make_recipient(1)]).outcome == "accepted"
    assert time.monotonic() - started >= 0.05


def test_thousand_recipients_go_in_one_accepted_request(backend, sendgrid):  # noqa: F811
    recipients = [make_recipient(i) for i in range(1, 1001)]
    result = backend.send(make_message(), recipients)
    assert result.outcome == "accepted"
    assert len(sendgrid.requests) == 1
    assert len(sendgrid.requests[0].body["personalizations"]) == 1000
    assert [r["delivery_id"] for r in sendgrid.accepted_recipients()] == [
        str(i) for i in range(1, 1001)
    ]


def test_more_than_thousand_recipients_raise_before_sending(backend, sendgrid):  # noqa: F811
    with pytest.raises(ValueError, match="1001 recipients; at most 1000"):
        backend.send(make_message(), [make_recipient(i) for i in range(1, 1002)])
    assert sendgrid.requests == []


def test_duplicate_address_raises_before_sending(backend, sendgrid):  # noqa: F811
    recipients = [make_recipient(1, "Jane@Example.com"), make_recipient(2, "jane@example.com")]
    with pytest.raises(ValueError, match=r"duplicate recipient j\*\*\*@example.com"):
        backend.send(make_message(), recipients)
    assert sendgrid.requests == []


def test_send_logs_no_full_addresses(backend, sendgrid, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG, logger="notifier")
    backend.send(make_message(), [make_recipient(1, "jane.doe@example.com")])
    assert "sendgrid: notification 45 to 1 recipient(s): accepted (HTTP 202" in caplog.text
    assert "jane.doe@example.com" not in caplog.text


def test_mask_email_keeps_first_letter_and_domain():
    assert mask_email("jane@example.com") == "j***@example.com"
    assert mask_email("not-an-address") == "***"


# --- outbox -------------------------------------------------------------------------


def test_outbox_writes_one_parseable_message_per_recipient(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="notifier")
    now = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)
    outbox = OutboxBackend(tmp_path / "outbox", clock=lambda: now)
    result = outbox.send(make_message(), [make_recipient(123), make_recipient(124)])

    assert (result.outcome, result.status_code, result.error) == ("accepted", None, None)
    assert result.message_id.startswith("outbox-")
    files = sorted(p.name for p in (tmp_path / "outbox").iterdir())
    assert files == [
        "20261126T120000123456Z-n45-d123.eml",
        "20261126T120000123456Z-n45-d124.eml",
    ]
    raw = (tmp_path / "outbox" / files[0]).read_bytes()
    mail = BytesParser(policy=policy.default).parsebytes(raw)
    # Unfold (long headers are folded at 78 columns) and leave out the random values.
    headers = {k: " ".join(str(v).split()) for k, v in mail.items()}
    assert headers.pop("Message-ID").endswith("@example.com>")
    assert headers.pop("Content-Type").startswith("multipart/alternative; boundary=")
    assert headers == {
        "From": "Sinch Status <status@example.com>",
        "To": "user123@example.com",
        "Subject": "[Behoben] SMS (EU): Verzögerte Zustellung",
        "Date": "Thu, 26 Nov 2026 12:00:00 +0000",
        "List-Id": "Sinch status notifications <status.notifier.example.com>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Unsubscribe": "<https://status-notify.example.com/unsubscribe/one-click/TOKEN123>, "
        "<mailto:unsubscribe+123@example.com>",
        "X-Notifier-Notification-Id": "45",
        "X-Notifier-Delivery-Id": "123",
        "MIME-Version": "1.0",
    }
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert text == (
        "Hallo liebe/r Kund:in,\n"
        "Abmelden: https://status-notify.example.com/unsubscribe/TOKEN123\n"
        "Einstellungen: https://status-notify.example.com/preferences/TOKEN123\n"
    )
    assert html == (
        '<p>Hallo</p><a href="https://status-notify.example.com/unsubscribe/TOKEN123">Abmelden</a>'
        ' <a href="https://status-notify.example.com/preferences/TOKEN123">Einstellungen</a>\n'
    )
    assert "user123@example.com" not in caplog.text
    assert "wrote 20261126T120000123456Z-n45-d123.eml for u***@example.com" in caplog.text


def test_outbox_refuses_duplicates_and_oversized_batches(tmp_path):
    outbox = OutboxBackend(tmp_path)
    with pytest.raises(ValueError, match="duplicate"):
        outbox.send(make_message(), [make_recipient(1, "a@example.com")] * 2)
    with pytest.raises(ValueError, match="at most 1000"):
        outbox.send(make_message(), [make_recipient(i) for i in range(1001)])
    assert list(tmp_path.iterdir()) == []


# --- choosing a backend -------------------------------------------------------------


def test_make_backend_defaults_to_outbox_under_instance(tmp_path):
    backend = make_backend(Settings(instance_path=str(tmp_path)))
    assert isinstance(backend, OutboxBackend)
    assert backend.directory == tmp_path / "outbox"


def test_make_backend_builds_sendgrid_with_host_and_timeout():
    settings = Settings(
        email_backend="sendgrid",
        sendgrid_api_key="SG.key",
        sendgrid_api_host="http://127.0.0.1:9",
        sendgrid_timeout_seconds=4.5,
    )
    backend = make_backend(settings)
    assert isinstance(backend, SendGridBackend)
    assert (backend.host, backend.timeout_seconds) == ("http://127.0.0.1:9", 4.5)
    assert backend.max_batch == 1000


def test_make_backend_refuses_sendgrid_without_key():
    with pytest.raises(ValueError, match="SENDGRID_API_KEY is missing"):
        make_backend(Settings(email_backend="sendgrid"))


# --- attachments (issue 11: maintenance.ics) ------------------------------------------
ICS = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:PUBLISH\r\nEND:VCALENDAR\r\n"
ICS_TYPE = "text/calendar; method=PUBLISH; charset=UTF-8"


def with_ics() -> Message:
    from notifier.emails.zoned import Attachment

    return make_message(
        category="maintenance", attachments=(Attachment("maintenance.ics", ICS_TYPE, ICS),)
    )


def test_an_attachment_is_sent_once_per_request_base64_and_the_schema_still_validates(
    backend,
    sendgrid,  # noqa: F811
):
    message = with_ics()
    result = backend.send(message, [make_recipient(123), make_recipient(124)])

    [request] = sendgrid.requests
    assert (result.outcome, request.errors) == ("accepted", [])
    plain = build_request_body(make_message(category="maintenance"), [make_recipient(1)])
    assert {k for k in request.body if k not in plain} == {"attachments"}
    assert request.body["attachments"] == [
        {
            "content": "QkVHSU46VkNBTEVOREFSDQpWRVJTSU9OOjIuMA0KTUVUSE9EOlBVQkxJU0gNCkVORDpW"
            "Q0FMRU5EQVINCg==",
            "type": ICS_TYPE,
            "filename": "maintenance.ics",
            "disposition": "attachment",
        }
    ]
    assert base64.b64decode(request.body["attachments"][0]["content"]) == ICS
    if sendgrid.schema_path is not None:
        assert check_mail_send(request.body, sendgrid.schema_path) == []


def test_the_outbox_writes_the_attachment_as_a_mime_part(tmp_path):
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    mail = OutboxBackend.compose(with_ics(), make_recipient(7), now)
    parsed = BytesParser(policy=policy.default).parsebytes(OutboxBackend.as_bytes(mail))
    assert parsed.get_content_type() == "multipart/mixed"
    alternative, ics = parsed.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    assert " ".join(ics["Content-Type"].split()) == (
        'text/calendar; method="PUBLISH"; charset="UTF-8"'
    )
    assert (ics.get_filename(), ics.get_content_disposition()) == ("maintenance.ics", "attachment")
    assert ics.get_payload(decode=True) == ICS
    assert parsed.get_body(("plain",)).get_content().startswith("Hallo liebe/r Kund:in,\n")


def test_a_mime_type_without_a_slash_is_refused():
    from notifier.emails.zoned import Attachment

    message = make_message(attachments=(Attachment("x.ics", "calendar", ICS),))
    with pytest.raises(ValueError, match="not a MIME type"):
        OutboxBackend.compose(message, make_recipient(1), datetime(2026, 11, 26, tzinfo=UTC))
