"""The language-neutral shape of one email, filled by the kind builders, drawn by the layouts.

Every string here is plain text: the text layout wraps it, the HTML layout escapes it (and
links URLs). Empty fields and sections are simply left out by both layouts.
"""

from __future__ import annotations

from dataclasses import dataclass

# Per-recipient links are unknown when a mail is rendered (once per notification, language and
# zone); the sender swaps these literal strings per recipient (SendGrid substitutions).
PLACEHOLDERS = {
    "preferences_url": "-preferences_url-",
    "unsubscribe_url": "-unsubscribe_url-",
    "confirm_url": "-confirm_url-",
    "undo_url": "-undo_url-",
}


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class Fact:
    """One "Zusammengefasst" bullet; ops-written bullets have no label."""

    label: str
    value: str


@dataclass(frozen=True)
class QA:
    question: str
    answer: str


@dataclass(frozen=True)
class Post:
    """One status-page update in the timeline."""

    when: str
    status: str
    text: str
    new: bool = False


@dataclass(frozen=True)
class Latest:
    """The newest update: our translation (if ops wrote one) and the quoted original."""

    heading: str
    meta: str
    note: str
    translation: str
    quote_label: str
    quote: str
    quote_lang: str = "en"


@dataclass(frozen=True)
class Message:
    lang: str
    subject: str
    preheader: str
    kicker: str
    heading: str
    subheading: str = ""
    greeting: str = ""
    intro: str = ""
    summary_heading: str = ""
    summary: tuple[Fact, ...] = ()
    latest: Latest | None = None
    button: Link | None = None
    button_fallback: str = ""
    outro: str = ""
    faq_heading: str = ""
    q_prefix: str = ""
    faq: tuple[QA, ...] = ()
    timeline_heading: str = ""
    timeline_note: str = ""
    timeline: tuple[Post, ...] = ()
    new_label: str = ""
    signoff: str = ""
    footer: str = ""
    footer_links: tuple[Link, ...] = ()
