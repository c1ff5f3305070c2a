"""The message a Slack, Teams or webhook target gets for a notification (issue 12). Pure.

A channel message says what the mail says, shortened for chat: it is built from the same
content snapshot by the mail's own builders (notifier/emails/incident.py, notices.py), so the
status names, fact labels ("Status", "Beginn", "Betroffen"…), headline, intro sentence and the
times in the reader's zone and language are the mail's. What only a channel says is in
payload_labels.py. Feed text is untrusted: it is escaped for the markup of each channel, so a
post cannot mention `@channel`, disguise a link or format the message.

- Slack: Block Kit for incoming webhooks (docs.slack.dev, "Block Kit" and "Sending messages
  using incoming webhooks"): `text` (the notification and fallback line) and `blocks`: header,
  intro and fact sections (mrkdwn fields), the newest update, the link, a context footer.
  Limits from the block reference: header text 150 characters, section text 3000, a field
  2000, 10 fields, 50 blocks; longer text is shortened with an ellipsis.
- Teams: an Adaptive Card 1.4 (adaptivecards.io schema) in the `message` envelope that Teams
  Workflows webhooks take: TextBlocks, a FactSet and an ActionSet of Action.OpenUrl.
- Webhook: the versioned JSON event documented in docs/webhooks/README.md, with the JSON
  Schema WEBHOOK_SCHEMA; signing is the sender's (Standard Webhooks, notifier/delivery/senders).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from ..emails import incident as incident_mail
from ..emails import labels, notices, text, times
from ..emails.message import QA, Fact, Latest, Link, Message
from ..emails.timeline import LADDER, mark_new, select
from ..poller import page_url_for
from ..render import iso_utc
from ..store.base import from_db_time
from .payload_labels import WORDS

WEBHOOK_SCHEMA = "docs/webhooks/event.v1.schema.json"
WEBHOOK_VERSION = 1
CHANNELS = ("slack", "teams", "webhook")
KINDS = ("incident", "maintenance", "announcement", "channel_verification")
# Slack Block Kit limits (block and text object references).
SLACK_HEADER = 150
SLACK_TEXT = 3000
SLACK_FIELD = 2000
SLACK_FIELDS = 10
SLACK_BLOCKS = 50
QUOTE = 2500  # the newest update's text in a chat message; the link has the whole post
_MAINTENANCE_TYPES = {
    "scheduled": "maintenance.scheduled",
    "in_progress": "maintenance.started",
    "completed": "maintenance.completed",
    "rescheduled": "maintenance.rescheduled",
    "cancelled": "maintenance.cancelled",
    "reminder": "maintenance.reminder",
}


@dataclass(frozen=True)
class Chat:
    """What a Slack message and a Teams card show; every string is plain text."""

    fallback: str  # one line: the mail's subject
    heading: str
    intro: str
    facts: tuple[Fact, ...]  # a fact without label is a bullet (an announcement's)
    latest: Latest | None  # the mail's "latest update": our translation and the quoted post
    qa: QA | None  # the mail's "Do I need to do anything?" (or "How do I prepare?")
    link: Link | None
    zone_note: str
    # Where the team changes what it gets. Only words: the management links carry the owner's
    # token (unsubscribe, export, a new signing secret) and go to the owner by mail, never
    # into a channel that many read, or a webhook body that ends up in logs.
    manage_label: str


def build(
    channel: str,
    notification: dict,
    language: str,
    timezone: str,
    *,
    settings,
) -> dict:
    """The JSON-ready payload of `notification` (a notifications row: kind, content as JSON
    text or dict, id, created_at, resend_of) for one `channel` target ('slack', 'teams',
    'webhook') whose readers use `language` ('de'/'en') and `timezone` (IANA); `settings`
    gives the status page of announcements and test messages (the first feed's page). No
    message carries the subscription's management links (see Chat.manage_label).

    ValueError for an unknown channel, language or zone, and for a kind a channel does not
    get (confirmation, receipt, ops_alert, channel_notice: those are mails to the owner).
    """
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r} (use one of: slack, teams, webhook)")
    if language not in labels.LANGUAGES:
        raise ValueError(f"unsupported language {language!r} (use one of: de, en)")
    times.zone(timezone)
    kind = notification.get("kind")
    if kind not in KINDS:
        raise ValueError(f"a {kind!r} notification is not sent to channels")
    content = _content(notification)
    feeds = settings.feed_urls
    page_url = content.get("page_url") or (page_url_for(feeds[0]) if feeds else "")
    if channel == "webhook":
        return _event(notification, content, language, timezone, page_url)
    chat = _chat(kind, content, language, timezone, page_url)
    return slack_message(chat) if channel == "slack" else teams_message(chat, language)


def event_type(notification: dict) -> str:
    """The webhook `type` of a notification (docs/webhooks/README.md, "Event types").

    Incidents: `incident.created` for the first notice, `incident.resolved` when the newest
    status resolves it (Statuspage: resolved; completed counts too), else `incident.updated`.
    Maintenance: the mail's phase (scheduled, started = in progress or verifying, completed)
    or its window change (rescheduled, cancelled, reminder). ValueError for other kinds.
    """
    kind = notification.get("kind")
    if kind == "channel_verification":
        return "ping"
    if kind == "announcement":
        return "announcement.published"
    if kind not in ("incident", "maintenance"):
        raise ValueError(f"a {kind!r} notification is no webhook event")
    content = _content(notification)
    status = _status(content)
    if kind == "maintenance":
        return _MAINTENANCE_TYPES[incident_mail.mail_phase(kind, status, content.get("change"))]
    if content.get("change") == "new_incident":
        return "incident.created"
    resolved = incident_mail.phase_of(kind, status) == "resolved"
    return "incident.resolved" if resolved else "incident.updated"


def _content(notification: Mapping) -> dict:
    content = notification.get("content")
    if isinstance(content, str):
        content = json.loads(content)
    if not isinstance(content, dict):
        raise ValueError("notification content is not a JSON object")
    return content


def _status(content: dict) -> str:
    updates = [u for u in content.get("updates") or [] if isinstance(u, dict)]
    newest = updates[0].get("status") if updates else None
    return str(content.get("status") or newest or "scheduled")


def _sentence(value: str) -> str:
    """A mail intro follows "Hallo liebe/r Kund:in," in lower case; a chat message has no
    greeting, so its first letter is capitalised."""
    return value[:1].upper() + value[1:]


# --- what Slack and Teams show -----------------------------------------------------------
def _chat(kind, content, lang, tz, page_url) -> Chat:
    words, own = labels.WORDS[lang], WORDS[lang]
    note = words["times_in"].format(zone=tz)
    if kind == "channel_verification":
        intro = f"{own['verification_intro']} {own['verification_body']}"
        return Chat(
            fallback=own["verification_intro"],
            heading=own["verification_title"],
            intro=intro,
            facts=(),
            latest=None,
            qa=None,
            link=Link(words["link_page"], page_url) if page_url else None,
            zone_note="",
            manage_label=own["verification_manage"],
        )
    if kind == "announcement":
        message = notices.build_announcement(dict(content), lang, tz)
        link = Link(words["link_page"], page_url) if page_url else None
        # Ops wrote the intro for this notice; the mail's first words follow a greeting.
        intro, qa = _sentence(message.intro), None
    else:
        message = incident_mail.build(dict(content), lang, tz)
        link = message.button
        # The mail's intro points at what follows in the mail; its preheader is the summary
        # line an inbox shows, which is what a chat message needs.
        intro, qa = message.preheader, _todo(content, message)
    return Chat(
        fallback=message.subject,
        heading=message.heading,
        intro=intro,
        facts=message.summary,
        latest=message.latest,
        qa=qa,
        link=link,
        zone_note=note,
        manage_label=own["manage"],
    )


def _todo(content: dict, message: Message) -> QA | None:
    """The mail's answer to "Do I need to do anything?" ("How do I prepare?" before a
    maintenance). Ops' own questions replace a default in place or go before the last one,
    and these never are last, so the question keeps its place in the mail's FAQ order."""
    kind = content["kind"]
    phase = incident_mail.mail_phase(kind, _status(content), content.get("change"))
    keys = incident_mail.FAQ[(kind, phase)]
    key = next((k for k in ("todo", "prepare") if k in keys), None)
    if key is None or len(message.faq) <= keys.index(key):
        return None
    return message.faq[keys.index(key)]


def _fit(value: str, limit: int, escape: Callable[[str], str]) -> str:
    """`escape(value)`, shortened at a word with an ellipsis until it is at most `limit`
    characters as sent (escaping lengthens: `&` is `&amp;` in Slack)."""
    out, room = escape(value), min(len(value), limit)
    while len(out) > limit:
        out = escape(text.truncate(value, room))
        room -= max(1, len(out) - limit)
    return out


# --- Slack -------------------------------------------------------------------------------
def slack_escape(value: str) -> str:
    """Feed text for Slack mrkdwn: `&`, `<`, `>` as entities, the only control characters
    Slack parses (docs.slack.dev, "Formatting text for app surfaces", escaping): `<!channel>`
    and `<https://x|label>` then show as written instead of pinging or disguising a link."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(link: Link) -> str:
    url = slack_escape(link.url).replace("|", "%7C")
    return f"<{url}|{slack_escape(link.label)}>"


def _mrkdwn(value: str) -> dict:
    # verbatim: Slack does not turn names, channels or URLs in the text into mentions/links.
    return {"type": "mrkdwn", "text": value, "verbatim": True}


def slack_message(chat: Chat) -> dict:
    """The incoming-webhook body for `chat`: {"text", "blocks", "unfurl_*"} (module docstring).
    Links are mrkdwn link text, not buttons: a button sends its click to the app's request
    URL, which a plain incoming webhook does not have."""
    blocks: list[dict] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": text.truncate(chat.heading, SLACK_HEADER)},
        }
    ]
    if chat.intro:
        blocks.append(_section(chat.intro))
    labelled = [f for f in chat.facts if f.label]
    bullets = [f.value for f in chat.facts if not f.label]
    if labelled:
        fields = [_field(f) for f in labelled[:SLACK_FIELDS]]
        blocks.append({"type": "section", "fields": fields})
    if bullets:
        blocks.append(_section("\n".join(f"• {b}" for b in bullets)))
    if chat.latest:
        blocks.append(_slack_latest(chat.latest))
    if chat.qa:
        question = f"*{slack_escape(chat.qa.question)}*\n"
        answer = _fit(chat.qa.answer, SLACK_TEXT - len(question), slack_escape)
        blocks.append({"type": "section", "text": _mrkdwn(question + answer)})
    if chat.link:
        blocks.append({"type": "section", "text": _mrkdwn(_slack_link(chat.link))})
    blocks.append(_slack_footer(chat))
    return {
        "text": _fit(chat.fallback, SLACK_TEXT, slack_escape),
        "blocks": blocks[:SLACK_BLOCKS],
        "unfurl_links": False,
        "unfurl_media": False,
    }


def _section(value: str) -> dict:
    return {"type": "section", "text": _mrkdwn(_fit(value, SLACK_TEXT, slack_escape))}


def _field(fact: Fact) -> dict:
    label = f"*{slack_escape(fact.label)}*\n"
    return _mrkdwn(label + _fit(fact.value, SLACK_FIELD - len(label), slack_escape))


def _slack_latest(latest: Latest) -> dict:
    head = f"*{slack_escape(latest.heading)}*\n{slack_escape(latest.meta)}\n"
    if latest.translation:
        head += _fit(latest.translation, QUOTE // 2, slack_escape) + "\n"
    head += f"_{slack_escape(latest.quote_label)}:_\n"
    quote = latest.quote
    room = min(QUOTE, SLACK_TEXT - len(head))
    body = _fit(quote, room - 2 * (quote.count("\n") + 1), slack_escape)
    quoted = "\n".join(f">{line}" for line in body.split("\n"))
    return {"type": "section", "text": _mrkdwn(head + quoted)}


def _slack_footer(chat: Chat) -> dict:
    parts = [slack_escape(chat.zone_note), slack_escape(chat.manage_label)]
    return {"type": "context", "elements": [_mrkdwn("\n".join(p for p in parts if p.strip()))]}


# --- Microsoft Teams ---------------------------------------------------------------------
_MARKDOWN = re.compile(r"([\\`*_\[\]<>{&])")
_LIST_START = re.compile(r"^(\s*)(?:([-+])|(\d+)\.)(?=\s)", re.M)


def teams_escape(value: str) -> str:
    """Feed text for an Adaptive Card TextBlock, which renders a CommonMark subset (bold,
    italic, lists, `[label](url)` links; adaptivecards.io "Text features"): the characters
    that open emphasis, code, a link or an autolink (`<https://…>`) or an entity (`&amp;`)
    are escaped with a backslash (CommonMark's ASCII punctuation escape), and a line that
    would start a list keeps its marker as text. `{` is escaped too: the card host reads
    `{{DATE(…)}}` as a function. Without `[` no link can form, so `(` stays as written."""
    return _LIST_START.sub(_unlisted, _MARKDOWN.sub(r"\\\1", value))


def _unlisted(match: re.Match) -> str:
    """`- x` -> `\\- x`, `15. Juni` -> `15\\. Juni`: a German date never starts a list."""
    indent, bullet, number = match.groups()
    return f"{indent}\\{bullet}" if bullet else f"{indent}{number}\\."


def _block(value: str, **style) -> dict:
    return {"type": "TextBlock", "text": value, "wrap": True, **style}


def teams_message(chat: Chat, lang: str) -> dict:
    """The Teams Workflows webhook body for `chat`: {"type": "message", "attachments": [one
    Adaptive Card 1.4]} (Microsoft Teams, "Create and send messages" with Adaptive Cards)."""
    body = [_block(_fit(chat.heading, 300, teams_escape), size="Large", weight="Bolder")]
    if chat.intro:
        body.append(_block(_fit(chat.intro, SLACK_TEXT, teams_escape)))
    labelled = [f for f in chat.facts if f.label]
    if labelled:
        facts = [
            {"title": teams_escape(f.label), "value": _fit(f.value, 500, teams_escape)}
            for f in labelled
        ]
        body.append({"type": "FactSet", "facts": facts})
    for bullet in (f.value for f in chat.facts if not f.label):
        body.append(_block("• " + _fit(bullet, 500, teams_escape), spacing="Small"))
    if chat.latest:
        body.extend(_teams_latest(chat.latest))
    if chat.qa:
        body.append(_block(teams_escape(chat.qa.question), weight="Bolder", spacing="Medium"))
        body.append(_block(_fit(chat.qa.answer, SLACK_TEXT, teams_escape), spacing="None"))
    if chat.link:
        body.append(_actions([chat.link]))
    footer = " ".join(p for p in (chat.zone_note, chat.manage_label) if p)
    body.append(_block(teams_escape(footer), size="Small", isSubtle=True, spacing="Medium"))
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "lang": lang,
        "body": body,
        "msteams": {"width": "Full"},
    }
    attachment = {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
    return {"type": "message", "attachments": [attachment]}


def _teams_latest(latest: Latest) -> list:
    blocks = [
        _block(teams_escape(latest.heading), weight="Bolder", spacing="Medium"),
        _block(teams_escape(latest.meta), isSubtle=True, spacing="None"),
    ]
    if latest.translation:
        blocks.append(_block(_fit(latest.translation, QUOTE // 2, teams_escape)))
    blocks.append(_block(teams_escape(latest.quote_label) + ":", isSubtle=True, size="Small"))
    blocks.append(_block(_fit(latest.quote, QUOTE, teams_escape), spacing="None"))
    return blocks


def _actions(links) -> dict:
    actions = [{"type": "Action.OpenUrl", "title": link.label, "url": link.url} for link in links]
    return {"type": "ActionSet", "actions": actions}


# --- Webhook -----------------------------------------------------------------------------
def _at(value: datetime | None, tz: str, suffix: str) -> dict:
    """{"<name>_utc": "…Z", "<name>_local": "…+02:00"}: an instant as UTC and in the zone."""
    local = value.astimezone(times.zone(tz)).isoformat() if value else None
    return {f"{suffix}_utc": iso_utc(value), f"{suffix}_local": local}


def _event(notification, content, lang, tz, page_url) -> dict:
    kind = notification["kind"]
    created = from_db_time(notification.get("created_at"))
    data = {
        "summary": "",
        "page": {"name": content.get("page_name") or "Sinch", "url": page_url or None},
        "incident": None,
        "update": None,
        "maintenance": None,
        "announcement": None,
        "links": {
            "status_page": page_url or None,
            "incident": None,
        },
    }
    if kind == "channel_verification":
        data["summary"] = WORDS[lang]["verification_intro"]
    elif kind == "announcement":
        data["summary"] = notices.build_announcement(dict(content), lang, tz).subject
        data["announcement"] = _announcement(content, lang, tz)
    else:
        found = _incident_data(content, lang, tz)
        data["links"]["incident"] = found.pop("incident_url")
        data.update(found)
    resend = notification.get("resend_of")
    return {
        "version": WEBHOOK_VERSION,
        "id": f"evt_{notification['id']}",
        "type": event_type(notification),
        "timestamp": iso_utc(created),
        "resend_of": f"evt_{resend}" if resend else None,
        "language": lang,
        "timezone": tz,
        "data": data,
    }


def _incident_data(content: dict, lang: str, tz: str) -> dict:
    kind = content["kind"]
    raw = content.get("incident") or {}
    plain = content.get("text_format") == "plain"
    # The mail's own reading of the posts: cleaned texts, newest first, the new ones marked.
    updates = incident_mail._updates(content.get("updates") or [], plain)
    status = _status(content)
    phase = incident_mail.mail_phase(kind, status, content.get("change"))
    window_change = phase in incident_mail.WINDOW_CHANGES
    if window_change:
        updates = [u.__class__(u.status, u.at, u.text, False) for u in updates]
    elif updates:
        updates = mark_new(updates, incident_mail._count(content.get("new_updates")))
    start, end, _planned = incident_mail._span(kind, phase, raw, updates)
    if kind == "maintenance":  # the window is its own object; this is when it really began
        start = next((u.at for u in reversed(updates) if u.status == "in_progress"), None)
    override = (content.get("overrides") or {}).get(lang) or {}
    link = incident_mail._web_url(raw.get("link")) or None
    incident = {
        "id": str(raw.get("key") or ""),
        "kind": kind,
        "name": (text.tidy_line if plain else text.single_line)(raw.get("title")),
        "translated_name": text.single_line(override.get("title")) or None,
        "status": status,
        "status_label": labels.status_label(lang, status),
        "impact": raw.get("impact") or None,
        "impact_label": labels.impact_label(lang, raw.get("impact")),
        "url": link,
        "components": [
            {"id": str(c.get("id")), "name": text.single_line(c.get("name"))}
            for c in raw.get("components") or []
            if isinstance(c, dict)
        ],
        **_at(start, tz, "started_at"),
        **_at(end, tz, "ended_at"),
    }
    lead = select(updates, LADDER[0]).lead.update if updates else None
    message = incident_mail.build(dict(content), lang, tz)
    return {
        "summary": message.subject,
        "incident": incident,
        "update": _update(lead, override, lang, tz) if lead else None,
        "maintenance": _maintenance(content, tz) if kind == "maintenance" else None,
        "incident_url": link,
    }


def _update(lead, override: dict, lang: str, tz: str) -> dict:
    return {
        "status": lead.status,
        "status_label": labels.status_label(lang, lead.status),
        "body": lead.text,
        "translation": text.plain_text(override.get("text")) or None,
        "new": lead.new,
        **_at(lead.at, tz, "posted_at"),
    }


def _maintenance(content: dict, tz: str) -> dict:
    raw = content.get("incident") or {}
    start, end = (times.parse_time(raw.get(k)) for k in ("scheduled_start", "scheduled_end"))
    previous = content.get("previous_window")
    old = None
    if isinstance(previous, dict):
        old_start, old_end = (times.parse_time(previous.get(k)) for k in ("start", "end"))
        old = {**_at(old_start, tz, "starts_at"), **_at(old_end, tz, "ends_at")}
    offset = (content.get("reminder") or {}).get("offset_minutes")
    return {
        **_at(start, tz, "starts_at"),
        **_at(end, tz, "ends_at"),
        "sequence": int(raw.get("window_sequence") or 0),
        "cancelled": content.get("change") == "cancelled",
        "previous_window": old,
        "reminder_offset_minutes": int(offset) if offset is not None else None,
    }


def _announcement(content: dict, lang: str, tz: str) -> dict:
    other = "en" if lang == "de" else "de"
    part = content.get(lang) or content.get(other) or {}
    window = content.get("window") or {}
    start, end = times.parse_time(window.get("start")), times.parse_time(window.get("end"))
    return {
        "title": text.single_line(part.get("title")),
        "intro": _sentence(text.plain_text(part.get("intro"))),
        "bullets": [text.plain_text(b) for b in part.get("bullets") or [] if text.plain_text(b)],
        "products": [text.single_line(p) for p in content.get("products") or []],
        "window": {**_at(start, tz, "starts_at"), **_at(end, tz, "ends_at")} if start else None,
    }
