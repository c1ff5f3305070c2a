# PLACEHOLDER for pay - replaced at merge
"""Placeholder of part B's channel payloads (issue 12): the contract's names and signatures,
a minimal payload per channel. Nothing here is relied on beyond the contract."""

from __future__ import annotations

WEBHOOK_SCHEMA = "docs/webhooks/event.v1.schema.json"
_TYPES = {
    "incident": "incident.updated",
    "maintenance": "maintenance.updated",
    "announcement": "announcement.published",
    "channel_verification": "ping",
}


def event_type(notification: dict) -> str:
    kind = notification["kind"]
    if kind not in _TYPES:
        raise ValueError(f"no channel payload for kind {kind!r}")
    return _TYPES[kind]


def build(
    channel: str,
    notification: dict,
    language: str,
    timezone: str,
    *,
    subscriber: dict,
    links: dict[str, str],
    settings,
) -> dict:
    kind = event_type(notification) and notification["kind"]
    content = notification.get("content") or {}
    title = (content.get("incident") or {}).get("title") or kind
    text = f"[{language} {timezone}] {title}"
    if channel in ("slack", "teams"):
        return {"kind": kind, "text": text, "links": links}
    return {
        "type": event_type(notification),
        "version": 1,
        "id": f"evt_{notification['id']}",
        "data": {"text": text, "links": links},
    }
