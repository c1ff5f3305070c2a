"""Email rendering: a notification's content snapshot in, a finished Email out. Pure.

A mail is rendered once per (notification, language, time zone, mailed before) and sent to
many people, so per-recipient links are the literal PLACEHOLDERS strings, which the sender
substitutes per recipient. The content dicts are described in docs/ARCHITECTURE.md ("Email
content") and built for feed changes by `incident_content`; the pieces live in notifier/emails/
and templates/email/.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from .emails import incident, labels, notices, text, times
from .emails.message import PLACEHOLDERS, Message, escape_placeholders
from .emails.templates import render_html, render_text
from .emails.timeline import LADDER
from .feed import Entry

__all__ = ["PLACEHOLDERS", "Email", "content_from_entry", "render_email"]

log = logging.getLogger(__name__)

# Gmail clips an HTML part past ~102 KB, hiding the footer's preferences and unsubscribe links
# (issue 16): the rule is 90 KB as sent. Sending swaps each of the four link placeholders for a
# per-recipient URL (~150 bytes), so the rendered part keeps a few KB below that.
HTML_LIMIT_BYTES = 90_000
HTML_TARGET_BYTES = HTML_LIMIT_BYTES - 4_000

KINDS: dict[str, Callable[[dict, str, str], Message]] = {
    "incident": incident.build,
    "maintenance": incident.build,
    "announcement": notices.build_announcement,
    "confirmation": notices.build_confirmation,
    "receipt": notices.build_receipt,
}


@dataclass(frozen=True)
class Email:
    subject: str  # single line, no CR/LF, ≤ 200 chars
    text: str  # complete plain-text part
    html: str  # complete HTML document with CSS inlined, readable without images


def render_email(
    content: dict, language: str, timezone: str, *, mailed_before: bool = False
) -> Email:
    """Render one notification for readers of `language` in `timezone` (an IANA name).

    `mailed_before` (incident and maintenance mails): these readers were already sent an email
    about the same incident, so "since our last email" is true for them; a subscriber's first
    email about an incident says so instead (issue 13). The sender renders each group twice at
    most: once for first-time readers, once for the others.

    Incident and maintenance mails are fitted under Gmail's clip: their HTML part is at most
    HTML_TARGET_BYTES (UTF-8) before substitution, so under HTML_LIMIT_BYTES as sent (see
    notifier/emails/timeline.py for what is shortened first).

    ValueError for an unknown kind, language or zone; the message says which.
    """
    if language not in labels.LANGUAGES:
        raise ValueError(f"unsupported language {language!r} (use one of: de, en)")
    times.zone(timezone)
    kind = content.get("kind") if isinstance(content, Mapping) else None
    build = KINDS.get(kind)
    if build is None:
        raise ValueError(f"unknown email kind {kind!r}")
    if build is incident.build:
        message, html = _fitted(dict(content), language, timezone, mailed_before)
    else:
        message = escape_placeholders(build(dict(content), language, timezone))
        html = render_html(message)
    # The builders made the subject from cleaned values; it only has to be one line here (a
    # second markup pass would eat a feed title's own "<POST /x>").
    subject = text.truncate(text.tidy_line(message.subject), incident.SUBJECT_LIMIT)
    return Email(subject=subject, text=render_text(message), html=html)


def _fitted(
    content: dict, language: str, timezone: str, mailed_before: bool
) -> tuple[Message, str]:
    """The incident Message and its HTML on the first rung of the size ladder whose HTML part
    fits HTML_TARGET_BYTES (UTF-8); the last rung when none does, logged (new updates are never
    left out: tests/test_mail_size.py fits 200 new long ones at once, more may not fit)."""
    for limits in LADDER:
        built = incident.build(content, language, timezone, limits, mailed_before=mailed_before)
        message = escape_placeholders(built)
        html = render_html(message)
        size = len(html.encode("utf-8"))
        if size <= HTML_TARGET_BYTES:
            break
    else:
        log.warning("incident mail HTML is %s bytes even at its shortest (%s)", size, language)
    return message, html


def incident_content(
    *,
    kind: str,
    page_name: str,
    page_url: str,
    key: str,
    title: str,
    link: str,
    impact: str | None,
    components: Iterable[Mapping],
    scheduled_start: datetime | None,
    scheduled_end: datetime | None,
    status: str,
    change: str,
    new_updates: int,
    updates: Iterable[tuple],
    time_doubt: Iterable[str] = (),
) -> dict:
    """The JSON-able incident/maintenance content dict; `updates` are (status, at, text) or
    (status, at, text, is_new), newest first. The one place this shape is built (feed entries,
    stored incidents).

    An update that triggered the notification carries `"new": true` (notifications built from
    change rows mark them; the mail leads with them, whatever their display times). Content
    without any such mark (stored before issue 16, or built from a feed entry) is read as
    before: the newest `new_updates` updates are the new ones.

    Two keys appear only when they matter, so ordinary snapshots stay as they were:
    `incident.time_doubt`, the parser's doubts about the times (notifier.stamps), and
    `text_format: "plain"` when a feed text holds '<' (the parser made title and texts plain
    text; the mail must escape that '<', not strip it as markup). Content without the key is
    read as possibly marked up, as content stored before it existed was.
    """
    updates = [_update_dict(*u) for u in updates]
    content = {
        "kind": kind,
        "page_name": page_name,
        "page_url": page_url,
        "incident": {
            "key": key,
            "title": title,
            "link": link,
            "impact": impact,
            "components": [{"id": str(c["id"]), "name": str(c["name"])} for c in components],
            "scheduled_start": iso_utc(scheduled_start),
            "scheduled_end": iso_utc(scheduled_end),
        },
        "status": status,
        "change": change,
        "new_updates": new_updates,
        "updates": updates,
    }
    doubts = list(time_doubt or ())
    if doubts:
        content["incident"]["time_doubt"] = doubts
    if "<" in title or any("<" in u["text"] for u in updates):
        content["text_format"] = "plain"
    return content


def _update_dict(status: str, at: datetime, text: str, new: bool = False) -> dict:
    update = {"status": status, "at": iso_utc(at), "text": text}
    if new:
        update["new"] = True
    return update


def content_from_entry(
    entry: Entry,
    page_name: str,
    page_url: str,
    *,
    status: str | None = None,
    change: str = "new_update",
    new_updates: int = 1,
    components: Iterable[Mapping] = (),
    impact: str | None = None,
) -> dict:
    """The content dict for a parsed feed entry."""
    newest = entry.updates[0].status if entry.updates else None
    fallback = "scheduled" if entry.kind == "maintenance" else "investigating"
    return incident_content(
        kind=entry.kind,
        page_name=page_name,
        page_url=page_url,
        key=entry.key,
        title=entry.title,
        link=entry.link,
        impact=impact,
        components=components,
        scheduled_start=entry.scheduled_start,
        scheduled_end=entry.scheduled_end,
        status=status or newest or fallback,
        change=change,
        new_updates=new_updates,
        updates=((u.status, u.at, u.text) for u in entry.updates),
        time_doubt=entry.time_doubts,
    )


def iso_utc(value: datetime | None) -> str | None:
    """An aware datetime as the content dicts' UTC text, e.g. 2023-06-27T16:30:00Z."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None
