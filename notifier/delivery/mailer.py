"""Email backends: SendGrid's v3 Mail Send API, or .eml files in an outbox folder.

Both take one rendered message and up to 1000 recipients and return one SendResult; the
dispatcher decides what each outcome means for its delivery rows.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import tempfile
import threading
import time
import urllib.error
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import python_http_client
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Attachment as SendGridAttachment
from sendgrid.helpers.mail import Disposition, FileContent, FileName, FileType

from .mailheaders import header_value, mailbox, plain_address

log = logging.getLogger(__name__)

MAX_PERSONALIZATIONS = 1000  # SendGrid's limit per Mail Send request
EML_POLICY = policy.default.clone(max_line_length=998)
RATE_LIMIT_WAIT_SECONDS = (1.0, 300.0)  # bounds for retry_after_seconds
DEFAULT_RATE_LIMIT_WAIT_SECONDS = 60.0  # a 429 without a usable X-RateLimit-Reset


@dataclass(frozen=True)
class Recipient:
    delivery_id: int
    email: str
    substitutions: dict[str, str]  # "-unsubscribe_url-" -> "https://…"
    headers: dict[str, str]  # per-recipient headers (List-Unsubscribe)


@dataclass(frozen=True)
class Message:
    notification_id: int
    category: str  # incident | maintenance | announcement | confirmation | receipt
    from_addr: str  # "Sinch Status <status@example.com>"
    subject: str  # these three may contain substitution placeholders
    text: str
    html: str
    headers: dict[str, str]  # common headers: List-Id, List-Unsubscribe-Post
    # The same files for every recipient (notifier.emails.zoned.Attachment: filename,
    # mime_type, content bytes), e.g. a maintenance mail's maintenance.ics.
    attachments: tuple = ()


@dataclass(frozen=True)
class SendResult:
    outcome: str  # accepted | rate_limited | transient | maybe_sent | rejected | unauthorized
    status_code: int | None
    message_id: str | None  # X-Message-Id of an accepted request
    retry_after_seconds: float | None  # rate_limited only
    error: str | None  # one line
    # How long the SendGrid request took (set by SendGridBackend.send, for notifier.metrics);
    # a measurement, not part of the answer: equal answers compare equal whatever it is.
    duration_seconds: float | None = field(default=None, compare=False)


def mask_email(address: str) -> str:
    """`jane@example.com` -> `j***@example.com`: enough to tell addresses apart in logs."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def check_recipients(recipients: Sequence[Recipient]) -> None:
    """Refuse a batch SendGrid would refuse; the dispatcher batches, this is the safety net.

    Raises ValueError; UnsafeHeader (a ValueError) when an address is not a plain addr-spec,
    which the dispatcher checks per recipient before it gets here.
    """
    if not recipients:
        raise ValueError("no recipients")
    if len(recipients) > MAX_PERSONALIZATIONS:
        raise ValueError(f"{len(recipients)} recipients; at most {MAX_PERSONALIZATIONS} per send")
    seen: set[str] = set()
    for r in recipients:
        address = plain_address(r.email).lower()
        if address in seen:
            raise ValueError(f"duplicate recipient {mask_email(address)} in one send")
        seen.add(address)


def _address(value: str) -> dict[str, str]:
    """SendGrid's {"email", "name"} for `Name <addr>`; UnsafeHeader when it is not one."""
    name, email = mailbox(value)
    return {"email": email, "name": name} if name else {"email": email}


def _headers(headers: dict[str, str]) -> dict[str, str]:
    return {name: header_value(name, value) for name, value in headers.items()}


def build_request_body(message: Message, recipients: Sequence[Recipient]) -> dict:
    """The Mail Send JSON body: one personalization per recipient."""
    check_recipients(recipients)  # every address is a plain addr-spec (header_value's "To")
    personalizations = []
    for r in recipients:
        # Checked once above: header_value("To", a) is plain_address(a), which returns a as
        # given; checking it again cost a tenth of a 1000-recipient request's CPU.
        p: dict = {"to": [{"email": r.email}]}
        if r.substitutions:
            p["substitutions"] = dict(r.substitutions)
        if r.headers:
            p["headers"] = _headers(r.headers)
        # custom_args come back in every webhook event: how a bounce finds its delivery row.
        p["custom_args"] = {
            "delivery_id": str(r.delivery_id),
            "notification_id": str(message.notification_id),
        }
        personalizations.append(p)
    content = [
        {"type": kind, "value": value}
        for kind, value in (("text/plain", message.text), ("text/html", message.html))
        if value  # SendGrid refuses empty values; text/plain must come first
    ]
    if not content:
        raise ValueError("message has neither text nor html")
    body: dict = {
        "personalizations": personalizations,
        "from": _address(message.from_addr),
        "subject": header_value("Subject", message.subject),
        "content": content,
        "categories": [message.category],
        # Click tracking (and Google Analytics) rewrite links: the signed one-click unsubscribe
        # and preferences URLs must reach the subscriber untouched. Open tracking adds a pixel we
        # do not want; subscription tracking would add SendGrid's own unsubscribe link and header
        # next to ours, and ours is the one that updates our database.
        "tracking_settings": {
            "click_tracking": {"enable": False, "enable_text": False},
            "open_tracking": {"enable": False},
            "subscription_tracking": {"enable": False},
            "ganalytics": {"enable": False},
        },
    }
    if message.headers:
        body["headers"] = _headers(message.headers)
    if message.attachments:
        body["attachments"] = [_attachment(a) for a in message.attachments]
    return body


def _attachment(attachment) -> dict:
    """SendGrid's attachment object, built with the library's helper: base64 `content`,
    `type` (the MIME type with its parameters), `filename`, `disposition` attachment.

    The content travels once per request, not per recipient (v3 Mail Send `attachments`); the
    whole request must stay under SendGrid's 30 MB, which a calendar file (~1 KB) never nears.
    """
    encoded = base64.b64encode(attachment.content).decode("ascii")
    return SendGridAttachment(
        FileContent(encoded),
        FileName(attachment.filename),
        FileType(attachment.mime_type),
        Disposition("attachment"),
    ).get()


def _one_line(text: str, limit: int = 500) -> str:
    return " ".join(text.split())[:limit]


def _error_text(status: int, body: bytes | None, reason: str | None) -> str:
    """`HTTP 400: <errors[].message>`, naming the field when SendGrid gives one."""
    messages = []
    try:
        for err in json.loads(body or b"").get("errors", []):
            text = str(err.get("message") or "").strip()
            where = err.get("field")
            messages.append(f"{text} ({where})" if where and where != "null" else text)
    except (ValueError, AttributeError):
        pass
    detail = "; ".join(m for m in messages if m) or reason or "no error details"
    return _one_line(f"HTTP {status}: {detail}")


class SendGridBackend:
    """Sends through the official `sendgrid` library (which speaks HTTP through urllib);
    `send` may be called from several threads at once."""

    max_batch = MAX_PERSONALIZATIONS

    def __init__(
        self,
        api_key: str,
        host: str,
        timeout_seconds: float,
        *,
        clock: Callable[[], float] = time.time,
    ):
        self.host = host
        self.timeout_seconds = timeout_seconds
        self._clock = clock  # epoch seconds, to turn X-RateLimit-Reset into a wait
        self._api_key = api_key
        # One library client per sender thread (the dispatcher sends from several): the
        # python_http_client chain shares one request-headers dict that `post` mutates (it sets
        # Content-Type on the first call), and nothing in it is documented as thread-safe. A
        # client is a few small objects and opens no connection of its own (urllib opens one
        # per request), so one per thread costs nothing.
        self._local = threading.local()

    @property
    def _sg(self) -> SendGridAPIClient:
        """This thread's library client."""
        sg = getattr(self._local, "sg", None)
        if sg is None:
            sg = self._local.sg = SendGridAPIClient(self._api_key, host=self.host)
            # The library sets no timeout: a stalled connection would hang the dispatcher
            # forever. python_http_client copies `timeout` into every child client
            # (sg.client.mail.send) and hands it to urllib, where it bounds the connect and
            # each socket read.
            sg.client.timeout = self.timeout_seconds
        return sg

    def send(
        self,
        message: Message,
        recipients: Sequence[Recipient],
        *,
        timeout_seconds: float | None = None,
    ) -> SendResult:
        """One Mail Send request for all recipients; never raises for HTTP or network errors.

        `timeout_seconds` (default: the backend's) bounds the connect and each socket read of
        this request; the dispatcher cuts it to what the shutdown budget leaves.
        """
        body = build_request_body(message, recipients)
        started = time.monotonic()
        result = self._post(body, timeout_seconds or self.timeout_seconds)
        result = replace(result, duration_seconds=time.monotonic() - started)
        log.info(
            "sendgrid: notification %s to %d recipient(s): %s (HTTP %s, %.2fs)%s",
            message.notification_id,
            len(recipients),
            result.outcome,
            result.status_code,
            result.duration_seconds,
            f": {result.error}" if result.error else "",
        )
        return result

    def _post(self, body: dict, timeout_seconds: float) -> SendResult:
        try:
            response = self._sg.client.mail.send.post(request_body=body, timeout=timeout_seconds)
        except python_http_client.exceptions.HTTPError as exc:
            return self._from_status(exc.status_code, exc.headers, exc.body, exc.reason)
        except urllib.error.URLError as exc:
            # urllib wraps every error raised while connecting and sending the request (refused,
            # DNS, connect timeout, reset while sending): SendGrid cannot have taken the mail.
            return SendResult("transient", None, None, None, _one_line(f"not sent: {exc.reason}"))
        except (OSError, http.client.HTTPException) as exc:
            # Raised while waiting for or reading the answer (read timeout, reset, closed without
            # a status line): the request went out and may have been accepted - the lost 202.
            error = _one_line(f"no answer after sending: {type(exc).__name__}: {exc}")
            return SendResult("maybe_sent", None, None, None, error)
        return self._from_status(response.status_code, response.headers, response.body, None)

    def _from_status(self, status: int, headers, body: bytes | None, reason) -> SendResult:
        if 200 <= status < 300:  # 202, or 200 in sandbox mode
            message_id = headers.get("X-Message-Id") if headers is not None else None
            return SendResult("accepted", status, message_id, None, None)
        error = _error_text(status, body, reason)
        if status == 429:
            return SendResult("rate_limited", status, None, self._retry_after(headers), error)
        if status in (401, 403):
            return SendResult("unauthorized", status, None, None, error)
        if status >= 500:
            return SendResult("transient", status, None, None, error)
        return SendResult("rejected", status, None, None, error)

    def _retry_after(self, headers) -> float:
        low, high = RATE_LIMIT_WAIT_SECONDS
        try:
            # X-RateLimit-Reset is the epoch second at which the window reopens.
            wait = float(headers.get("X-RateLimit-Reset")) - self._clock()
        except (TypeError, ValueError, AttributeError):
            wait = DEFAULT_RATE_LIMIT_WAIT_SECONDS
        return min(max(wait, low), high)


def apply_substitutions(text: str, substitutions: dict[str, str]) -> str:
    """What SendGrid does with `substitutions`: replace each tag, longest tags first."""
    for tag in sorted(substitutions, key=len, reverse=True):
        text = text.replace(tag, substitutions[tag])
    return text


class OutboxBackend:
    """Writes one RFC 5322 .eml file per recipient: development and offline runs."""

    max_batch = MAX_PERSONALIZATIONS

    def __init__(self, directory: Path, *, clock: Callable[[], datetime] | None = None):
        self.directory = Path(directory)
        self._clock = clock or (lambda: datetime.now(UTC))

    def send(
        self,
        message: Message,
        recipients: Sequence[Recipient],
        *,
        timeout_seconds: float | None = None,
    ) -> SendResult:
        """Write the files; accepted once all of them are on disk (no timeout applies)."""
        check_recipients(recipients)
        self.directory.mkdir(parents=True, exist_ok=True)
        now = self._clock()
        batch_id = f"outbox-{uuid.uuid4().hex}"
        try:
            for r in recipients:
                path = self._write(self.compose(message, r, now), message, r, now)
                log.info("outbox: wrote %s for %s", path.name, mask_email(r.email))
        except OSError as exc:
            return SendResult("transient", None, None, None, _one_line(f"outbox: {exc}"))
        return SendResult("accepted", None, batch_id, None, None)

    @staticmethod
    def compose(message: Message, recipient: Recipient, now: datetime) -> EmailMessage:
        """The email one recipient gets, substitutions applied; every header value through
        header_value (UnsafeHeader when one cannot be written)."""
        subs = recipient.substitutions
        display, sender = mailbox(message.from_addr)
        email = EmailMessage()
        email["From"] = Address(display_name=display, addr_spec=sender)
        email["To"] = header_value("To", recipient.email)
        email["Subject"] = header_value("Subject", apply_substitutions(message.subject, subs))
        email["Date"] = format_datetime(now)
        email["Message-ID"] = make_msgid(domain=sender.partition("@")[2] or None)
        # Like SendGrid, substitute in subject and content only: headers come per recipient.
        for name, value in {**message.headers, **recipient.headers}.items():
            email[name] = header_value(name, value)
        email["X-Notifier-Notification-Id"] = str(message.notification_id)
        email["X-Notifier-Delivery-Id"] = str(recipient.delivery_id)
        email.set_content(apply_substitutions(message.text, subs))
        email.add_alternative(apply_substitutions(message.html, subs), subtype="html")
        for attachment in message.attachments:
            # Makes the message multipart/mixed: the alternative, then each file (base64).
            maintype, subtype, params = _content_type(attachment.mime_type)
            email.add_attachment(
                attachment.content,
                maintype=maintype,
                subtype=subtype,
                filename=attachment.filename,
                params=params,
            )
        return email

    @staticmethod
    def as_bytes(email: EmailMessage) -> bytes:
        """The .eml bytes. Headers fold only past RFC 5322's 998 characters: the email
        package would otherwise fold a long List-Unsubscribe URL, which has no space to fold
        at, into RFC 2047 encoded words that no mail client reads as a URL."""
        return email.as_bytes(policy=EML_POLICY)

    def _write(self, email: EmailMessage, message: Message, r: Recipient, now: datetime) -> Path:
        stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.directory / f"{stamp}-n{message.notification_id}-d{r.delivery_id}.eml"
        # Temp file + rename: a reader (or a crash) never sees half a message.
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".eml")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(self.as_bytes(email))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def _content_type(mime_type: str) -> tuple[str, str, dict[str, str]]:
    """A MIME type split for EmailMessage: `text/calendar; method=PUBLISH; charset=UTF-8` ->
    ("text", "calendar", {"method": "PUBLISH", "charset": "UTF-8"}); ValueError without "/"."""
    kind, *parts = (p.strip() for p in mime_type.split(";"))
    maintype, slash, subtype = kind.partition("/")
    if not slash or not maintype or not subtype:
        raise ValueError(f"not a MIME type: {mime_type!r}")
    params = {}
    for part in parts:
        name, _, value = part.partition("=")
        if name:
            params[name.strip()] = value.strip().strip('"')
    return maintype, subtype, params


def make_backend(settings) -> SendGridBackend | OutboxBackend:
    """The backend EMAIL_BACKEND names."""
    if settings.email_backend == "sendgrid":
        if not settings.sendgrid_api_key:
            raise ValueError("EMAIL_BACKEND is sendgrid but SENDGRID_API_KEY is missing")
        return SendGridBackend(
            settings.sendgrid_api_key,
            settings.sendgrid_api_host,
            settings.sendgrid_timeout_seconds,
        )
    return OutboxBackend(settings.outbox_path)
