"""The language-neutral shape of one email, filled by the kind builders, drawn by the layouts.

Every string here is plain text: the text layout wraps it, the HTML layout escapes it (and
links URLs). Empty fields and sections are simply left out by both layouts.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

# Per-recipient links are unknown when a mail is rendered (once per notification, language and
# mailed-before wording); the sender swaps these literal strings per recipient (SendGrid
# substitutions, which replace every occurrence in subject and content). Text from feeds and
# ops could contain them literally, so `escape_placeholders` breaks every copy outside a
# Link.url before layout.
PLACEHOLDERS = {
    "preferences_url": "-preferences_url-",
    "unsubscribe_url": "-unsubscribe_url-",
    "confirm_url": "-confirm_url-",
    "undo_url": "-undo_url-",
}
# Reader-specific times are placeholders too when one rendering serves every zone (issue 14,
# notifier.emails.times.Symbolic): `-zt3-` (a time), `-zs4-`/`-zh4-` (a subject, as text and
# as HTML), `-zw5-` (a wrapped paragraph of the text part). Feed text that looks like one is
# broken like a link placeholder, in every rendering, so a rendering for one zone and the
# shared one with its values filled in stay byte-identical.
ZONE_KEY = re.compile(r"-z[a-z]\d+-")
WORD_JOINER = "\u2060"  # invisible: the text reads the same, the bytes no longer match
# The '-' that opens a placeholder, found by lookahead: copies that share a '-'
# ("-undo_url-preferences_url-") are each broken, which non-overlapping matching would miss.
_LIVE = re.compile(
    "-(?=(?:"
    + "|".join(re.escape(p[1:]) for p in PLACEHOLDERS.values())
    + "|"
    + ZONE_KEY.pattern[1:]
    + "))"
)


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
    more: Link | None = None  # the text was shortened: where the whole post is


@dataclass(frozen=True)
class Latest:
    """The update the mail is about (the newest new one): our translation (if ops wrote one)
    and the quoted original."""

    heading: str
    meta: str
    note: str
    translation: str
    quote_label: str
    quote: str
    quote_lang: str = "en"
    new: bool = False
    more: Link | None = None  # the quote was shortened: where the whole post is


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
    timeline_more: Link | None = None  # "N earlier updates on the status page"
    new_label: str = ""
    # A short line near the top of the HTML part, so the links survive a clipped mail.
    manage_label: str = ""
    manage_links: tuple[Link, ...] = ()
    signoff: str = ""
    footer: str = ""
    footer_links: tuple[Link, ...] = ()


def escape_text(text: str) -> str:
    """`text` with no live placeholder: each copy gets a WORD JOINER after its first '-'."""
    return _LIVE.sub("-" + WORD_JOINER, text)


def escape_url(url: str) -> str:
    """A Link.url: a placeholder itself stays; any other URL has each copy's '-' as %2D, the
    same URL to a server (RFC 3986 section 2.3) but no longer the placeholder's bytes."""
    if url in PLACEHOLDERS.values():
        return url
    return _LIVE.sub("%2D", url)


def escape_placeholders(value):
    """A Message (or any of its parts) that holds no live placeholder but where a kind builder
    put one on purpose: a Link.url that is exactly a placeholder. A Symbolic zone's raw
    placeholders (`-zt3x<nonce>-`) are left alone; `map_strings(m, zone.live_key)` arms them."""
    if isinstance(value, Link):
        return Link(escape_text(value.label), escape_url(value.url))
    return map_strings(value, escape_text, escape_placeholders)


def map_strings(value, fn, recurse=None):
    """`value` (a Message or any of its parts) with `fn` applied to every string in it."""
    recurse = recurse or (lambda v: map_strings(v, fn))
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, tuple):
        return tuple(recurse(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: recurse(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **changes)
    return value


def has_placeholder(text: str) -> bool:
    """Whether `text` holds a live placeholder (a link's or a zone's)."""
    return bool(_LIVE.search(text))
