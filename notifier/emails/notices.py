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
