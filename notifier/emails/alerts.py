"""Ops alert mails (issue 15): short, in OPS_LANGUAGE, to OPS_ALERT_EMAILS (notifier/alerts.py).

Content: notifier.alerts.alert_content. No per-recipient links and no unsubscribe: the
recipients are configured ops addresses, not subscribers.
"""

from __future__ import annotations

from . import labels, text, times
from .incident import SUBJECT_LIMIT
from .message import Fact, Link, Message
from .templates import Copy

EVENTS = ("start", "reminder", "end")


def build_ops_alert(content: dict, lang: str, tz: str) -> Message:
    """The mail for one alert event: "[Alert] Feed failing: https://…" and its facts."""
    words = labels.ALERT[lang]
    alert = content.get("alert") or {}
    event = content.get("event") if content.get("event") in EVENTS else "start"
    kind = alert.get("kind") if alert.get("kind") in words else "other"
    headline = words[kind]
    subject_text = _subject(alert.get("subject"), words)
    detail = text.single_line(alert.get("message"))
    copy = Copy(
        lang,
        "ops_alert",
        {"page_name": "Sinch", "headline": headline, "detail": detail, "subject": subject_text},
    )
    facts = []
    if subject_text:
        facts.append(Fact(words["about"], subject_text))
    started = times.parse_time(alert.get("started_at"))
    ended = times.parse_time(alert.get("ended_at"))
    if started is not None:
        facts.append(Fact(words["started"], times.format_time(started, lang, tz)))
    if ended is not None and event == "end":
        facts.append(Fact(words["ended"], times.format_time(ended, lang, tz)))
    if detail:
        facts.append(Fact(words["detail"], detail))
    title = f"{headline}: {subject_text}" if subject_text else headline
    url = str(content.get("dashboard_url") or "")
    return Message(
        lang=lang,
        subject=text.truncate(f"[{words[event]}] {title}", SUBJECT_LIMIT),
        preheader=text.truncate(copy("preheader"), 140),
        kicker=words["kicker"],
        heading=title,
        greeting=words["greeting"],
        intro=_intro(copy, event, kind),
        summary_heading=words[event],
        summary=tuple(facts),
        button=Link(words["dashboard"], url) if url.startswith(("https://", "http://")) else None,
        outro=copy(f"outro_{event}"),
        signoff=words["signoff"],
        footer=copy("footer"),
    )


def _intro(copy: Copy, event: str, kind: str) -> str:
    """What happened; a recovery mail says what is fine again, not what went wrong."""
    if event != "end":
        return copy(f"intro_{kind}")
    return copy(f"end_{kind}") if copy.has(f"end_{kind}") else copy("end_other")


def _subject(value, words: dict) -> str:
    """What the alert is about, for people: "notification:42" (notifier.alerts) reads
    "Notification #42"; anything else (a feed URL) as it is."""
    subject = text.single_line(value)
    kind, _, number = subject.partition(":")
    if kind == "notification" and number.isdigit():
        return words["notification"].format(id=number)
    return subject
