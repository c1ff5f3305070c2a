"""Channel senders: one Slack, Teams or webhook message to one target, as a ChannelResult.

Every request goes through `safehttp` (the address guard, checked and pinned at send time; no
redirects; capped answers; one overall deadline). The channels:

- Slack: slack_sdk's `WebhookClient` builds and posts the incoming-webhook message. Its own
  transport is urllib (`urlopen`), which resolves the host itself, follows redirects and reads
  answers whole, so `_GuardedWebhookClient` hands the request it built to `safehttp.post`
  instead; slack_sdk's retry handlers are off (the ledger retries, with backoff). Error bodies
  are Slack's documented codes ("Handling errors" in the incoming-webhooks docs).
- Teams: the Adaptive Card message JSON, posted as is (Workflows answer 202 Accepted).
- Webhook: Standard Webhooks (standardwebhooks.com): headers webhook-id, webhook-timestamp and
  webhook-signature ("v1,<base64 HMAC-SHA256 of id.timestamp.body>"), signed with the
  `standardwebhooks` library over exactly the bytes sent (compact JSON, sorted keys).

Target URLs of Slack and Teams are bearer secrets: errors and logs only ever carry
`mask_target(url)`.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
from slack_sdk.errors import SlackRequestError
from slack_sdk.webhook import WebhookClient
from slack_sdk.webhook.webhook_response import WebhookResponse
from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

from . import safehttp

CHANNELS = ("slack", "teams", "webhook")
# RFC 9110 §10.2.3 lets a server ask for any delay; past an hour the ledger's own backoff (and
# the pause after a day of failures) is the better judge.
MAX_RETRY_AFTER_SECONDS = 3600.0
# Slack's incoming-webhook errors that mean the webhook, channel or workspace is gone for good.
SLACK_GONE = {"no_service", "channel_not_found", "channel_is_archived", "no_team", "team_disabled"}
# Documented ones that are the message's or the app's fault (a 400/403): 'rejected'.
SLACK_REJECTED = {
    "invalid_payload",
    "action_prohibited",
    "posting_to_general_channel_denied",
    "invalid_token",
    "no_text",
    "too_many_attachments",
}
ERROR_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}\Z")
# Nothing reached the target: safe to send again.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
NOT_SENT += (httpx.LocalProtocolError,)

# slack_sdk logs the full webhook URL (a secret) at DEBUG and every failure at ERROR; each
# outcome here is a ChannelResult the dispatcher logs once, masked.
_slack_log = logging.getLogger(__name__ + ".slack_sdk")
_slack_log.setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class ChannelResult:
    """What one send did.

    outcome: 'accepted' (2xx) | 'rate_limited' (429) | 'transient' (5xx, 408, nothing sent:
    connect error) | 'maybe_sent' (timeout or reset after the request went) | 'gone' (404,
    410, Slack's no_service/channel_not_found/channel_is_archived/no_team/team_disabled) |
    'rejected' (other 4xx, a 3xx - redirects are refused -, an invalid payload or secret) |
    'unsafe' (the address guard refused the target). error is short and has no secrets;
    retry_after_seconds comes from Retry-After (429/503), capped at MAX_RETRY_AFTER_SECONDS.
    """

    outcome: str
    status_code: int | None = None
    error: str | None = None
    retry_after_seconds: float | None = None


def send(
    channel: str,
    url: str,
    payload: dict,
    settings,
    *,
    secret: str | None,
    message_id: str,
    now: datetime,
    timeout: float,
) -> ChannelResult:
    """Send `payload` (payloads.build's dict for `channel`) to `url`; never raises for
    network or HTTP trouble. `message_id` is the webhook-id; `now` the webhook-timestamp."""
    try:
        body = _compact_json(payload)
    except (TypeError, ValueError):
        return ChannelResult("rejected", error="invalid payload: not JSON")
    try:
        safehttp.check_target(channel, url, settings, resolve=False)
        if channel == "slack":
            return _send_slack(url, payload, settings, now, timeout)
        if channel == "teams":
            headers = _headers(settings)
            answer = safehttp.post(url, body.encode(), headers, settings, timeout=timeout)
            return _result(answer.status, answer.headers, answer.body, now)
        if channel == "webhook":
            return _send_webhook(url, body, settings, secret, message_id, now, timeout)
        return ChannelResult("rejected", error=f"unknown channel {channel!r}")
    except safehttp.UnsafeTarget as exc:
        if exc.code == "unresolvable":
            # A failed lookup (often temporary: EAI_AGAIN) sent nothing and refuses nothing:
            # retried like a connect error, not counted as a permanent failure.
            return ChannelResult("transient", error=str(exc))
        return ChannelResult("unsafe", error=str(exc))
    except NOT_SENT as exc:
        return ChannelResult("transient", error=_describe(exc))
    except httpx.HTTPError as exc:  # timeouts, resets, broken answers after the request went
        return ChannelResult("maybe_sent", error=_describe(exc))
    except OSError as exc:  # a socket error outside the client's own mapping: nothing known sent
        return ChannelResult("transient", error=_describe(exc))
    except (TypeError, ValueError, UnicodeError) as exc:
        # The request cannot be made from this URL or payload (e.g. text the client cannot
        # encode): it never will be, so the row fails once instead of being retried forever.
        return ChannelResult("rejected", error=f"request not made: {type(exc).__name__}")


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: "whsec_" + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def mask_target(url: str) -> str:
    """`url` safe to show: scheme://host/first-path-segment/… (no token, query or userinfo)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except (ValueError, AttributeError):
        return "(invalid URL)"
    if not parts.scheme or not host:
        return "(invalid URL)"
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    segments = [s for s in parts.path.split("/") if s]
    # Slack's "/services/" and Teams' "/workflows/" say what the target is; a generic
    # webhook's first segment may be its token, so only known shapes keep one.
    known = {"services", "workflows", "powerautomate", "webhookb2"}
    if len(segments) >= 2 and segments[0].lower() in known:
        path = f"/{segments[0]}/…"
    elif segments or parts.query:
        path = "/…"
    else:
        path = "/"
    return f"{parts.scheme}://{netloc}{path}"


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Retry-After (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) in seconds from `now`,
    within 0..MAX_RETRY_AFTER_SECONDS; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - _utc(now)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class _GuardedWebhookClient(WebhookClient):
    """slack_sdk's WebhookClient with its HTTP call made by safehttp.post (guarded, pinned)."""

    def __init__(self, url: str, settings, timeout: float):
        super().__init__(
            url, timeout=math.ceil(timeout), logger=_slack_log, retry_handlers=[], proxy=None
        )
        self._settings = settings
        self._seconds = timeout

    def _perform_http_request_internal(self, url, req) -> WebhookResponse:
        # slack_sdk 3.48 calls this with the urllib Request it built; its caller turns the
        # WebhookResponse into send_dict's result (non-2xx included, as its HTTPError path does).
        answer = safehttp.post(
            url, req.data, dict(req.header_items()), self._settings, timeout=self._seconds
        )
        body = answer.body.decode("utf-8", "replace")
        status = answer.status
        return WebhookResponse(url=url, status_code=status, body=body, headers=answer.headers)


def _send_slack(url: str, payload: dict, settings, now: datetime, timeout: float) -> ChannelResult:
    client = _GuardedWebhookClient(url, settings, timeout)
    try:
        response = client.send_dict(payload, headers={"User-Agent": _user_agent(settings)})
    except SlackRequestError:
        return ChannelResult("rejected", error="Slack client refused the request")
    code = response.body.strip()
    if not 200 <= response.status_code < 300 and code in SLACK_GONE:
        return ChannelResult("gone", response.status_code, code)
    return _result(response.status_code, response.headers, response.body.encode(), now)


def _send_webhook(url, body: str, settings, secret, message_id, now, timeout) -> ChannelResult:
    if not secret:
        return ChannelResult("rejected", error="webhook has no signing secret")
    stamp = _utc(now)
    try:
        signature = Webhook(secret).sign(message_id, stamp, body)
    except (ValueError, EmptyWebhookSecretError):
        return ChannelResult("rejected", error="webhook signing secret is invalid")
    headers = _headers(settings) | {
        "webhook-id": message_id,
        "webhook-timestamp": str(math.floor(stamp.timestamp())),
        "webhook-signature": signature,
    }
    answer = safehttp.post(url, body.encode(), headers, settings, timeout=timeout)
    return _result(answer.status, answer.headers, answer.body, now)


def _result(status: int, headers, body: bytes, now: datetime) -> ChannelResult:
    """The outcome of an HTTP answer (headers: a case-insensitive or lower-case mapping)."""
    error = f"HTTP {status}" + (f" {code}" if (code := _error_code(body)) else "")
    if 200 <= status < 300:
        return ChannelResult("accepted", status)
    retry_after = None
    if status in (429, 503):
        retry_after = retry_after_seconds(_header(headers, "retry-after"), now)
    if status == 429:
        return ChannelResult("rate_limited", status, error, retry_after)
    if status in (404, 410):
        return ChannelResult("gone", status, error)
    if 300 <= status < 400:
        return ChannelResult("rejected", status, f"HTTP {status}: redirect refused")
    if 400 <= status < 500 and status != 408:
        return ChannelResult("rejected", status, error)
    return ChannelResult("transient", status, error, retry_after)


def _error_code(body: bytes) -> str | None:
    """A short error code from an answer: Slack's text ("no_service") or JSON error.code."""
    text = body[:1024].decode("utf-8", "replace").strip()
    if ERROR_CODE.match(text):
        return text
    try:
        data = json.loads(text)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    code = error.get("code") if isinstance(error, dict) else error
    return code if isinstance(code, str) and ERROR_CODE.match(code) else None


def _header(headers, name: str) -> str | None:
    for key, value in dict(headers).items():
        if key.lower() == name:
            return value
    return None


def _headers(settings) -> dict[str, str]:
    return {"content-type": "application/json", "user-agent": _user_agent(settings)}


def _user_agent(settings) -> str:
    return f"status-notifier/1 (+{settings.public_base_url})"


def _compact_json(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _utc(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc)[:120]}" if str(exc) else type(exc).__name__
