# PLACEHOLDER for net - replaced at merge
"""Placeholder of part A's channel senders (issue 12): the contract's names and signatures,
a plain httpx POST without the address guard. Nothing here is relied on beyond the contract."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
from standardwebhooks.webhooks import Webhook


@dataclass(frozen=True)
class ChannelResult:
    outcome: str
    status_code: int | None = None
    error: str | None = None
    retry_after_seconds: float | None = None


def _retry_after(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
    except (TypeError, ValueError):
        return None


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
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if channel == "webhook" and secret:
        stamp = datetime.now(UTC)
        headers["webhook-id"] = message_id
        headers["webhook-timestamp"] = str(int(stamp.timestamp()))
        headers["webhook-signature"] = Webhook(secret).sign(message_id, stamp, body.decode())
    try:
        answer = httpx.post(url, content=body, headers=headers, timeout=timeout)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        return ChannelResult("transient", error=type(exc).__name__)
    except httpx.HTTPError as exc:
        return ChannelResult("maybe_sent", error=type(exc).__name__)
    code = answer.status_code
    if 200 <= code < 300:
        return ChannelResult("accepted", code)
    if code == 429:
        wait = _retry_after(answer.headers.get("retry-after"), now)
        return ChannelResult("rate_limited", code, f"HTTP {code}", wait)
    if code >= 500 or code == 408:
        return ChannelResult("transient", code, f"HTTP {code}")
    if code in (404, 410):
        return ChannelResult("gone", code, f"HTTP {code}")
    return ChannelResult("rejected", code, f"HTTP {code}")


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def mask_target(url: str) -> str:
    parts = urlsplit(url)
    first = parts.path.strip("/").split("/")[0]
    return f"{parts.scheme}://{parts.netloc}/{first}/…"
