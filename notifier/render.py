"""Email rendering: a notification's content snapshot in, a finished Email out. Pure.

A mail is rendered once per (notification, language, mailed before) and sent to many people in
many zones (issue 14): `SharedEmail` renders it with every zone-dependent text as a placeholder
and gives, per zone, the substitutions that turn it into exactly what `render_email` renders
for that zone (tests/test_shared_render.py walks zones, kinds and languages to prove it).
`render_email` stays the direct rendering for one zone: previews, golden files, that proof.
Per-recipient links are the literal PLACEHOLDERS strings, which the sender substitutes per
recipient. The content dicts are described in docs/ARCHITECTURE.md ("Email
content") and built for feed changes by `incident_content`; the pieces live in notifier/emails/
and templates/email/.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from . import calendar
from .emails import alerts, incident, labels, notices, times
from .emails.message import (
    PLACEHOLDERS,
    Message,
    escape_placeholders,
    map_strings,
)
from .emails.templates import render_html, render_text
from .emails.timeline import LADDER
from .emails.zoned import Attachment, Email, Variant, digest, fill, json_bytes, subject_line
from .feed import Entry

__all__ = [
    "PLACEHOLDERS",
    "Attachment",
    "Email",
    "SharedEmail",
    "ZoneMail",
    "attachments",
    "content_from_entry",
    "render_email",
]

log = logging.getLogger(__name__)

# Gmail clips an HTML part past ~102 KB, hiding the footer's preferences and unsubscribe links
# (issue 16): the rule is 90 KB as sent. Sending swaps each of the four link placeholders for a
# per-recipient URL (~150 bytes), so the rendered part keeps a few KB below that.
HTML_LIMIT_BYTES = 90_000
HTML_TARGET_BYTES = HTML_LIMIT_BYTES - 4_000
# SendGrid Mail Send: "The total collective size of your substitutions may not exceed 10,000
# bytes per personalization object" (docs.sendgrid.com, v3 Mail Send, personalizations[].
# substitutions; tests/fake_sendgrid.py counts them as compact JSON). The four link
# substitutions (URLs of ~100-300 bytes) keep LINK_RESERVE_BYTES of it.
SUBSTITUTIONS_LIMIT_BYTES = 10_000
LINK_RESERVE_BYTES = 2_500
ZONE_SUBSTITUTIONS_BYTES = SUBSTITUTIONS_LIMIT_BYTES - LINK_RESERVE_BYTES

KINDS: dict[str, Callable[[dict, str, str], Message]] = {
    "incident": incident.build,
    "maintenance": incident.build,
    "announcement": notices.build_announcement,
    "confirmation": notices.build_confirmation,
    "receipt": notices.build_receipt,
    "channel_notice": notices.build_channel_notice,
    "ops_alert": alerts.build_ops_alert,
}


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

    A maintenance mail about a window carries `maintenance.ics` (see `attachments`).

    ValueError for an unknown kind, language or zone; the message says which.
    """
    build = _check(content, language)
    times.zone(timezone)
    if build is incident.build:
        message, html = _fitted(dict(content), language, timezone, mailed_before)
    else:
        message = escape_placeholders(build(dict(content), language, timezone))
        html = render_html(message)
    return Email(
        subject=subject_line(message.subject),
        text=render_text(message),
        html=html,
        attachments=attachments(content, language),
    )


def attachments(content: dict, language: str) -> tuple[Attachment, ...]:
    """The files a mail with this content carries: `maintenance.ics` (notifier/calendar.py)
    for every maintenance mail whose content has both window times, else none. They depend on
    the content and language only (the event is in UTC), never on the reader's zone."""
    ics = calendar.attachment(content, language)
    return () if ics is None else (ics,)


def _check(content, language: str):
    """The kind's builder; ValueError for an unknown kind or language."""
    if language not in labels.LANGUAGES:
        raise ValueError(f"unsupported language {language!r} (use one of: de, en)")
    kind = content.get("kind") if isinstance(content, Mapping) else None
    build = KINDS.get(kind)
    if build is None:
        raise ValueError(f"unknown email kind {kind!r}")
    return build


@dataclass(frozen=True)
class ZoneMail:
    """How the readers in one zone get a SharedEmail: readers with equal `group` share requests.

    `group` is ("shared", rung): `email` holds zone placeholders, `substitutions` fill them
    for this zone (add them to the link ones); or ("class", rung, digest) when they would not
    fit SendGrid's limit: `email` has the single times filled in, the same for every zone of
    the class (zones whose times read the same in this mail), and `substitutions` fill the
    rest (zone name, subject, wrapped paragraphs).
    """

    group: tuple
    email: Email
    substitutions: dict[str, str]


class SharedEmail:
    """One notification rendered for readers of `language` in any zone (issue 14).

    Everything that depends on the zone is a placeholder (keys in
    notifier.emails.message.ZONE_KEY): each distinct time expression (`-zt<n>-`, the zone's
    name is `-zt0-`), a subject whose length depends on the zone (`-zs<n>-`, and `-zh<n>-` for
    its HTML-escaped copy in <title>), and, in the text part, every wrapped paragraph holding
    one (`-zw<n>-`: wrapping depends on the times' lengths). Their values for a zone are what
    `render_email(content, language, zone, mailed_before=…)` has at those places, so the mail
    a reader gets after substitution is byte-identical to the direct rendering. Values that
    appear in the HTML part are checked to be HTML-safe as they are (a time or a zone name
    always is); a zone whose values are not gets its own complete rendering.

    Incident mails step down the size ladder per zone: the HTML size after substitution is
    known from the placeholder counts, so no zone-specific rendering is needed. When a zone's
    substitutions exceed ZONE_SUBSTITUTIONS_BYTES (long timelines: a time per post), its
    readers fall back to an equivalence class of zones whose times read the same (Kolkata and
    Calcutta; New York and Toronto), one rendering per class with those filled in (see
    ZoneMail). `for_zone` results are cached per zone. ValueError as `render_email`.
    """

    def __init__(self, content: dict, language: str, *, mailed_before: bool = False):
        self.build = _check(content, language)
        self.content, self.language, self.mailed_before = dict(content), language, mailed_before
        self.rungs = range(len(LADDER)) if self.build is incident.build else range(1)
        self._variants: dict[int, Variant | str] = {}  # str: why it cannot be built
        self._zones: dict[str, ZoneMail] = {}
        self._classes: dict[tuple, Email] = {}
        self._filled: dict[str, Email] = {}
        # Once per (notification, language): the same file for every zone (issue 11).
        self.attachments = attachments(self.content, language)

    def for_zone(self, zone: str) -> ZoneMail:
        """The ZoneMail for readers in `zone` (an IANA name); ValueError for unknown zones."""
        mail = self._zones.get(zone)
        if mail is None:
            times.zone(zone)
            mail = self._zones[zone] = self._zone_mail(zone)
        return mail

    def filled(self, zone: str) -> Email:
        """The mail every reader in `zone` gets: `for_zone(zone)`'s email with its
        substitutions filled in, so a request whose readers all live in `zone` carries no
        per-recipient copy of them (1-2 KB each; issue 14). The same bytes as `render_email`
        for that zone (tests/test_shared_render.py). Cached per zone; ValueError as `for_zone`.
        """
        email = self._filled.get(zone)
        if email is None:
            mail = self.for_zone(zone)
            values = mail.substitutions
            email = mail.email
            if values:
                parts = (fill(part, values) for part in (email.subject, email.text, email.html))
                email = Email(*parts, attachments=email.attachments)
            self._filled[zone] = email
        return email

    def _zone_mail(self, zone: str) -> ZoneMail:
        for rung in self.rungs:
            variant = self._variant(rung)
            values = variant.values(zone)
            if variant.html_bytes(values) <= HTML_TARGET_BYTES:
                break
        else:
            if self.build is incident.build:
                log.warning("incident mail HTML is over target even at its shortest (%s)", zone)
        subs = {key: values[key] for key in variant.used}
        safe = variant.safe(values)
        if safe and json_bytes(subs) <= ZONE_SUBSTITUTIONS_BYTES:
            return ZoneMail(("shared", rung), variant.email, subs)
        # Too much to substitute: the single times (a timeline's, mostly) are filled in, and
        # readers are grouped by them; zone name, subject and paragraphs stay placeholders
        # (the zone's name alone would otherwise make every zone a class of its own).
        fixed = {k: v for k, v in subs.items() if k.startswith("-zt") and k != "-zt0-"}
        kept = {k: v for k, v in subs.items() if k not in fixed}
        if safe and json_bytes(kept) <= ZONE_SUBSTITUTIONS_BYTES:
            key = ("class", rung, digest(fixed))
            if key not in self._classes:
                parts = (fill(part, fixed) for part in variant.email_parts)
                self._classes[key] = Email(*parts, attachments=self.attachments)
            return ZoneMail(key, self._classes[key], kept)
        mailed_before = self.mailed_before  # never seen: a complete rendering for this zone
        direct = render_email(self.content, self.language, zone, mailed_before=mailed_before)
        key = ("class", rung, digest({"": direct.subject + direct.text + direct.html}))
        return ZoneMail(key, self._classes.setdefault(key, direct), {})

    def _variant(self, rung: int) -> Variant:
        variant = self._variants.get(rung)
        if isinstance(variant, str):  # content that cannot be built fails every zone
            raise ValueError(variant)
        if variant is None:
            zone = times.Symbolic()
            try:
                built = self._build(zone, rung)
            except ValueError as exc:
                self._variants[rung] = str(exc)
                raise
            message = map_strings(escape_placeholders(built), zone.live_key)
            variant = Variant(message, zone.expressions, self.attachments)
            self._variants[rung] = variant
        return variant

    def _build(self, zone: times.Symbolic, rung: int) -> Message:
        if self.build is incident.build:
            limits = LADDER[rung]
            return incident.build(
                dict(self.content), self.language, zone, limits, mailed_before=self.mailed_before
            )
        return self.build(dict(self.content), self.language, zone)


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
    window_sequence: int = 0,
    previous_window: tuple[datetime | None, datetime | None] | None = None,
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

    Maintenance windows (issue 11): `incident.window_sequence`, how often the window moved or
    was cancelled (the iCalendar SEQUENCE), appears when it is not 0 (absent means 0);
    `previous_window` {"start", "end"} (ISO UTC or None) when given, for a `rescheduled`
    change: the window before the move, `scheduled_start`/`scheduled_end` the one after it.
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
    if window_sequence:
        content["incident"]["window_sequence"] = int(window_sequence)
    if previous_window is not None:
        content["previous_window"] = {
            "start": iso_utc(previous_window[0]),
            "end": iso_utc(previous_window[1]),
        }
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
