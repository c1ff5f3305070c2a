# PLACEHOLDER for net - replaced at merge
"""Channel senders (placeholder with the contract's names and signatures)."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit


@dataclass(frozen=True)
class ChannelResult:
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
    raise NotImplementedError("placeholder: notifier/delivery/senders.py comes from the net part")


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: "whsec_" + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def mask_target(url: str) -> str:
    """scheme://host/first-path-segment/… (no token), for pages and logs."""
    parts = urlsplit(url)
    first = parts.path.strip("/").split("/", 1)[0]
    return f"{parts.scheme}://{parts.hostname or ''}/" + (f"{first}/…" if first else "")
