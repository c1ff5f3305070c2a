# PLACEHOLDER for net - replaced at merge
"""Channel senders (issue 12, part A). Only the names the ops console needs exist here; the
real module (notifier/delivery/senders.py on the net branch) replaces this file at merge."""

from __future__ import annotations

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
    raise NotImplementedError("placeholder: the real sender comes with the net branch")


def new_webhook_secret() -> str:
    raise NotImplementedError("placeholder: the real function comes with the net branch")


def mask_target(url: str) -> str:
    """For UI/logs: scheme://host/first-path-segment/… (no token)."""
    parts = urlsplit(url or "")
    first = next((p for p in parts.path.split("/") if p), "")
    return f"{parts.scheme}://{parts.hostname or ''}/" + (f"{first}/…" if first else "…")
