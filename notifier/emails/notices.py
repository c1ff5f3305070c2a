"""Announcements (written by ops), double opt-in confirmations and unsubscribe receipts."""

from __future__ import annotations

from . import labels, text, times
from .incident import SUBJECT_LIMIT, footer_links
from .message import PLACEHOLDERS, QA, Fact, Link, Message
from .templates import Copy


def build_announcement(content: dict, lang: str, tz: str) -> Message:
    words = labels.WORDS[lang]
    other = "en" if lang == "de" else "de"
    # The composer requires both languages; should one be missing, the other beats no mail.
    data = content.get(lang) or content.get(other) or {}
    products = [text.single_line(p) for p in content.get("products") or []]
    products = [p for p in products if p]
    product_text = ", ".join(products) or "Sinch"
    title = text.single_line(data.get("title")) or product_text
    window = _announcement_window(content.get("window") or {}, lang, tz)
    values = {
        "title": title,
        "products": product_text,
        "window": window,
        "page_name": "Sinch",
        "zone": tz,
    }
    copy = Copy(lang, "announcement", values)
    intro = text.plain_text(data.get("intro"))
    facts = []
    if window:
        facts.append(Fact(words["window"], window))
    if products:
        facts.append(Fact(words["products"], product_text))
    facts += [Fact("", text.plain_text(b)) for b in data.get("bullets") or [] if text.plain_text(b)]
    faq = [
        QA(text.single_line(item.get("q")), text.plain_text(item.get("a")))
        for item in data.get("qa") or []
        if isinstance(item, dict) and text.single_line(item.get("q"))
    ]
    # Ops titles often name the product already ("… von Sinch Engage …"); say it once.
    named = any(p.casefold() in title.casefold() for p in products) or not products
    subject = f"[{words['notice']}] " + (title if named else f"{product_text}: {title}")
    return Message(
        lang=lang,
        subject=text.truncate(subject, SUBJECT_LIMIT),
        preheader=text.single_line(intro) or copy("preheader"),
        kicker=words["kicker"],
        heading=title,
        subheading=" · ".join(v for v in (product_text, window) if v),
        greeting=words["greeting"],
        intro=intro,
        summary_heading=words["summary"],
        summary=tuple(facts),
        faq_heading=words["more"],
        q_prefix=words["q"],
        faq=tuple(faq),
        signoff=words["signoff"],
        footer=copy("footer"),
        footer_links=footer_links(lang),
    )


def _announcement_window(window: dict, lang: str, tz: str) -> str:
    start, end = times.parse_time(window.get("start")), times.parse_time(window.get("end"))
    if start is None:
        return ""
    if end is None:
        return labels.WORDS[lang]["since"].format(time=times.format_time(start, lang, tz))
    return times.format_window(start, end, lang, tz)


def _personal(kind: str, lang: str, button: str, url: str, footer_links=()) -> Message:
    """A short one-button mail to one person (confirmation, receipt)."""
    words = labels.WORDS[lang]
    copy = Copy(lang, kind, {"page_name": "Sinch"})
    return Message(
        lang=lang,
        subject=words[f"subject_{kind}"],
        preheader=copy("preheader"),
        kicker=words["kicker"],
        heading=copy("heading"),
        greeting=words["greeting"],
        intro=copy("intro"),
        button=Link(words[button], url),
        button_fallback=words["button_fallback"],
        outro=copy("outro"),
        signoff=words["signoff"],
        footer=copy("footer"),
        footer_links=footer_links,
    )


def build_confirmation(content: dict, lang: str, tz: str) -> Message:
    return _personal("confirmation", lang, "confirm", PLACEHOLDERS["confirm_url"])


def build_receipt(content: dict, lang: str, tz: str) -> Message:
    preferences = Link(labels.WORDS[lang]["preferences"], PLACEHOLDERS["preferences_url"])
    return _personal("receipt", lang, "undo", PLACEHOLDERS["undo_url"], (preferences,))


CHANNEL_EVENTS = ("paused", "verification_failed")


def build_channel_notice(content: dict, lang: str, tz: str) -> Message:
    """The one mail to a channel subscription's owner (issue 12): the Slack, Microsoft Teams or
    webhook channel was paused after failed deliveries (`event` "paused") or its target did not
    accept the test message ("verification_failed").

    Content (notifier.store.channels `pause_channel`): {"kind": "channel_notice", "channel":
    "slack"|"teams"|"webhook", "target": the masked URL (senders.mask_target, never the token),
    "reason": a short technical reason, "event", "paused_at": ISO UTC}. What happened, what it
    means (no more messages to that channel until fixed), what to do (per channel), then
    "Resume" on the preferences page: the button is the owner's preferences link
    (PLACEHOLDERS["preferences_url"], filled in per recipient by the mail Dispatcher).
    ValueError for an unknown channel.
    """
    words = labels.WORDS[lang]
    names = labels.CHANNEL[lang]
    channel = content.get("channel")
    if channel not in ("slack", "teams", "webhook"):
        raise ValueError(f"unknown channel {channel!r} in a channel notice")
    event = content.get("event") if content.get("event") in CHANNEL_EVENTS else "paused"
    name, yours = names[channel], names[f"your_{channel}"]
    target = text.single_line(content.get("target"))
    reason = text.single_line(content.get("reason"))
    copy = Copy(
        lang, "channel_notice", {"page_name": "Sinch", "channel": yours, "target": target or "–"}
    )
    facts = [Fact(names["channel"], name)]
    if target:
        facts.append(Fact(names["target"], target))
    if reason:
        facts.append(Fact(names["reason"], reason))
    paused_at = times.parse_time(content.get("paused_at"))
    if paused_at is not None and event == "paused":
        facts.append(Fact(names["paused_at"], times.format_time(paused_at, lang, tz)))
    preferences = Link(words["preferences"], PLACEHOLDERS["preferences_url"])
    return Message(
        lang=lang,
        subject=text.truncate(names[f"subject_{event}"].format(channel=yours), SUBJECT_LIMIT),
        preheader=copy(f"preheader_{event}"),
        kicker=words["kicker"],
        heading=copy(f"heading_{event}"),
        greeting=words["greeting"],
        intro=copy(f"intro_{event}"),
        summary_heading=names["facts"],
        summary=tuple(facts),
        faq_heading=words["more"],
        q_prefix=words["q"],
        faq=(
            QA(copy("q_meaning"), copy("a_meaning")),
            QA(copy("q_fix"), copy(f"a_fix_{channel}") + "\n\n" + copy("a_resume")),
        ),
        button=Link(names["button"], PLACEHOLDERS["preferences_url"]),
        button_fallback=words["button_fallback"],
        signoff=words["signoff"],
        footer=copy("footer"),
        footer_links=(preferences,),
    )
