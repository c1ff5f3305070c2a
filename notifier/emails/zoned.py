"""How one shared rendering (notifier.render.SharedEmail) is filled in for one zone.

A `Variant` is a Message drawn with a Symbolic zone (notifier.emails.times): its subject,
text and HTML parts hold zone placeholders (notifier.emails.message.ZONE_KEY). `values(zone)`
gives each placeholder's text for a real zone, exactly as the direct rendering for that zone
has it at that place: single expressions as formatted, a subject as `subject_line` makes it
(and HTML-escaped for <title>), the text part's wrapped paragraphs wrapped with the zone's
texts in them (notifier.emails.templates.wrap_block).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from . import text
from .incident import SUBJECT_LIMIT
from .message import ZONE_KEY, Message, escape_text, has_placeholder
from .templates import render_html, render_text, wrap_block


@dataclass(frozen=True)
class Attachment:
    """A file sent with a mail (the maintenance.ics of notifier/calendar.py)."""

    filename: str  # e.g. "maintenance.ics"; no path, no CR/LF
    mime_type: str  # the Content-Type, parameters included: "text/calendar; method=PUBLISH; …"
    content: bytes


@dataclass(frozen=True)
class Email:
    subject: str  # single line, no CR/LF, ≤ 200 chars
    text: str  # complete plain-text part
    html: str  # complete HTML document with CSS inlined, readable without images
    # The same for every zone and reader of a rendering: they hold no placeholder and no time
    # in the reader's zone (notifier/calendar.py writes UTC).
    attachments: tuple[Attachment, ...] = ()


def subject_line(subject: str) -> str:
    """A built subject as sent: one line, at most SUBJECT_LIMIT characters."""
    # The builders made the subject from cleaned values; it only has to be one line here (a
    # second markup pass would eat a feed title's own "<POST /x>").
    return text.truncate(text.tidy_line(subject), SUBJECT_LIMIT)


class Variant:
    """One shared rendering (one rung of the ladder) and how to fill it for a zone."""

    def __init__(
        self,
        message: Message,
        expressions: dict[str, Callable[[str], str]],
        attachments: tuple[Attachment, ...] = (),
    ):
        self.expressions = expressions
        self.blocks: dict[str, tuple] = {}
        body = render_text(message, blocks=self.blocks)
        html = render_html(message)
        for key in expressions:
            if key.startswith("-zs"):  # the subject in <title>: HTML-escaped
                html = html.replace(key, "-zh" + key[3:])
        self.email = Email(subject_line(message.subject), body, html, attachments)
        self.email_parts = (self.email.subject, body, html)
        self.used = tuple(dict.fromkeys(ZONE_KEY.findall("\n".join(self.email_parts))))
        self.html_counts = {k: html.count(k) for k in dict.fromkeys(ZONE_KEY.findall(html))}
        self._html_bytes = len(html.encode("utf-8"))

    def values(self, zone: str) -> dict[str, str]:
        """Every placeholder's text for readers in `zone`, as the direct rendering has it."""
        values = {}
        for key, fn in self.expressions.items():
            value = escape_text(fn(zone))
            if key.startswith("-zs"):
                values[key] = subject_line(value)
                values["-zh" + key[3:]] = html_text(value)
            else:
                values[key] = value
        for key, (body, options) in self.blocks.items():
            values[key] = wrap_block(fill(body, values), options)
        return values

    def html_bytes(self, values: dict[str, str]) -> int:
        """The HTML part's size (UTF-8) with `values` filled in."""
        grow = sum(
            count * (len(values[key].encode("utf-8")) - len(key))
            for key, count in self.html_counts.items()
        )
        return self._html_bytes + grow

    def safe(self, values: dict[str, str]) -> bool:
        """No value holds a placeholder, and those in the HTML part read the same as HTML."""
        if any(has_placeholder(values[key]) for key in self.used):
            return False
        return all(
            key.startswith("-zh") or html_text(values[key]) == values[key]
            for key in self.html_counts
        )


def fill(body: str, values: dict[str, str]) -> str:
    """`body` with its zone placeholders replaced (in one pass, as SendGrid's are disjoint)."""
    return ZONE_KEY.sub(lambda m: values.get(m.group(0), m.group(0)), body)


def html_text(value: str) -> str:
    """Plain text as the HTML part writes it: escaped by the layout, then re-serialized by the
    CSS inliner (html5ever), which writes back only &, <, > and the no-break space as entities."""
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("\xa0", "&nbsp;")):
        value = value.replace(char, entity)
    return value


def json_bytes(values: dict) -> int:
    return len(json.dumps(values, ensure_ascii=False).encode("utf-8"))


def digest(values: dict) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode("utf-8")).hexdigest()
