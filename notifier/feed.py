"""Statuspage feeds (Atom and RSS) parsed into frozen values. Pure: bytes in, values out.

Facts this module relies on (see DESIGN.md, "Feed ingestion"): one entry per incident or
maintenance; its updates are HTML paragraphs in the content, newest first, each
`<small>Mon DD, HH:MM TZ</small><br><strong>Status</strong> - text`, with no year, minute
precision and the page's time-zone abbreviation. Whitespace and `<var>` tags differ between
template versions, so everything here matches tolerantly.

The XML itself is read strictly: a body feedparser calls "bozo" (not well-formed, cut off, not
an Atom or RSS document) is refused with FeedError. Statuspage generates well-formed UTF-8, so
such a body is a fault on the way (a cut-off transfer, a proxy page); read leniently it would
lose or mangle updates, and those mangled texts would be stored as edits. Refusing it keeps the
previous state, and the next good body is read as usual.

One exception (issue 16): bytes that are not UTF-8 in a body declared (or defaulting to) UTF-8,
such as a cp1252 apostrophe (0x92) pasted into an old incident, spoil only the entries they sit
in. The body is decoded again with each invalid byte sequence replaced by a marker character;
an entry whose id, link, title, content or dates hold a marker is skipped and reported (see
ParsedFeed.damaged), every other entry is read as usual. A damaged entry is never news, so no
mangled text is mailed; only a baseline stores it, silently (ParsedFeed.damaged_entries). A body
that is still not well-formed after that is refused.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import feedparser

from . import zones
from .stamps import (
    EntryDates,
    Reading,
    Stamp,
    Stated,
    page_zones,
    read_stamps,
    read_update,
    read_window,
    window_zones,
)
from .stamps import stated_date as _stated_date

MAINTENANCE_STATUSES = frozenset({"scheduled", "in_progress", "verifying", "completed"})
INCIDENT_STATUSES = frozenset(
    {"investigating", "identified", "monitoring", "update", "resolved", "postmortem"}
)
KNOWN_STATUSES = MAINTENANCE_STATUSES | INCIDENT_STATUSES
# Statuspage writes "Postmortem"; older templates and hand-made feeds say "Post-mortem".
_STATUS_ALIASES = {
    "post-mortem": "postmortem",
    "post_mortem": "postmortem",
    "inprogress": "in_progress",
}

# What an abbreviation stands for when nothing else is known (tz_offset): the IANA database's
# meaning when it has only one (notifier.zones), else the zone Statuspage pages most commonly use,
# as the parser's earlier hand-kept table had it. Feed entries are read with notifier.stamps,
# which lets the page's own stated offsets decide instead.
USUAL_MEANING_HOURS: dict[str, float] = {"CST": -6, "IST": 5.5, "PST": -8, "BST": 1}
_USUAL_DATE = datetime(2026, 1, 15, 12, 0)  # a winter and a summer day to ask the database about
_USUAL_SUMMER = datetime(2026, 7, 15, 12, 0)
# The instants a feed's dates and times may name. Statuspage pages date from 2013 on; the rest of
# the system writes years with four digits (%Y) and moves times by up to 14 h into subscribers'
# zones, which fails near year 1 and year 9999. An entry beyond these is skipped, not the feed.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
_VAR_TAG = re.compile(r"</?var\b[^>]*>", re.I)
_STAMP = re.compile(
    r"<small>\s*(?P<mon>[A-Za-z]{3})[a-z]*\.?\s+(?P<day>\d{1,2})\s*,?\s*"
    r"(?P<hh>\d{1,2}):(?P<mm>\d{2})\s*(?P<tz>[A-Za-z]{1,5}|[+-]\d{2}(?::?\d{2})?)?\s*</small>"
    r"\s*(?:<br\s*/?>)?\s*<strong>\s*(?P<status>[^<]{1,40}?)\s*</strong>\s*(?:[-–—:]\s*)?",
    re.I,
)
_BANNER = re.compile(
    r"THIS IS A SCHEDULED EVENT\s+(?P<mon>[A-Za-z]{3})[a-z]*\.?\s+(?P<day>\d{1,2})\s*,?\s*"
    r"(?P<hh>\d{1,2}):(?P<mm>\d{2})\s*(?P<tz1>(?:[A-Za-z]{1,5}|[+-]\d{2}(?::?\d{2})?)(?=\s*-))?"
    r"\s*-\s*"
    r"(?:(?P<mon2>[A-Za-z]{3})[a-z]*\.?\s+(?P<day2>\d{1,2})\s*,?\s*)?"
    r"(?P<hh2>\d{1,2}):(?P<mm2>\d{2})\s*(?P<tz>[A-Za-z]{1,5}|[+-]\d{2}(?::?\d{2})?)?",
    re.I,
)
_INCIDENT_CODE = re.compile(r"/incidents/([A-Za-z0-9_-]+)")
_LINK = re.compile(r"<a\b[^>]*?href\s*=\s*([\"'])(.*?)\1[^>]*>(.*?)</a\s*>", re.I | re.S)
# What an HTML parser takes for markup: a tag starts with "<" and a letter (or "</" and one), a
# comment with "<!--"; any other "<" is text ("a <-> b", "< 5%"), as browsers show it (HTML
# Living Standard, 13.2.5.6 "Tag open state").
_TAG = re.compile(r"<!--.*?-->|<[!?][^>]*>|</?[A-Za-z][^>]*>", re.S)
# The elements a title marked as HTML may carry for formatting: the HTML Living Standard's
# "Text-level semantics" (section 4.5) that format text, and the obsolete big/font/strike/tt of its
# section 16. Only their well-formed tags leave a title; "<Video>", "<HEAD /x>", "<Data API>" stay.
INLINE_ELEMENTS = frozenset(
    {"a", "abbr", "b", "bdi", "bdo", "big", "br", "cite", "code", "del", "dfn", "em", "font"}
    | {"i", "ins", "kbd", "mark", "q", "s", "samp", "small", "span", "strike", "strong", "sub"}
    | {"sup", "tt", "u", "var", "wbr"}
)
# A start tag with valid attribute syntax (HTML Living Standard, 13.1.2.3 "Attributes": names
# without spaces, quotes, '>', '/' or '='; unquoted, single- or double-quoted values); an end tag.
_ATTRIBUTE = r"""\s+[^\s"'<>/=\x00-\x1f\x7f]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?"""
_INLINE_TAG = re.compile(
    rf"<(?P<open>[A-Za-z][A-Za-z0-9]*)(?:{_ATTRIBUTE})*\s*/?>|</(?P<close>[A-Za-z][A-Za-z0-9]*)\s*>"
)
_SAFE_URL = re.compile(r"(?:https?://|mailto:)[^\s<>]+\Z", re.I)
_SPACE = re.compile(r"\s+")


class FeedError(ValueError):
    """The body is not a usable Atom or RSS feed; the message says why."""


@dataclass(frozen=True)
class Update:
    status: str
    at: datetime
    text: str


@dataclass(frozen=True)
class Entry:
    key: str
    kind: str
    title: str
    link: str
    updates: tuple[Update, ...]
    content_hash: str
    published: datetime | None = None
    updated: datetime | None = None
    scheduled_start: datetime | None = None
    scheduled_end: datetime | None = None
    # Where the window was read: "banner" (the "THIS IS A SCHEDULED EVENT" paragraph: start and
    # end), "end_date" (RSS <maintenanceEndDate> alone: only the end is the page's; the start
    # stands in from <pubDate>, which tracks the newest update once the banner is gone), None.
    window_from: str | None = None
    # Times read with doubt (notifier.stamps): one line each, naming the stamp and what was used.
    time_doubts: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedFeed:
    """A parsed body. `found` counts the entries the body holds (read or skipped); `problems`
    has one line per skipped entry or odd value; `damaged` repeats the lines of the entries
    skipped for bytes that are not UTF-8 (each is also in `problems`).

    `damaged_entries` are those skipped entries as far as they read with U+FFFD for the bad
    bytes (only those whose code comes from an undamaged link or id). They are never news: a
    baseline stores them silently, so that when the page repairs them they are known entries
    (their texts then stored as edits), not new incidents mailed about old news.
    """

    format: str
    title: str
    link: str
    entries: tuple[Entry, ...]
    problems: tuple[str, ...] = field(default=())
    found: int = 0
    damaged: tuple[str, ...] = field(default=())
    damaged_entries: tuple[Entry, ...] = field(default=())


@functools.lru_cache(maxsize=256)
def normalize_status(word: str) -> str:
    """'In progress' -> 'in_progress'; unknown words come back normalized, not rejected."""
    status = _SPACE.sub("_", html.unescape(word).strip().lower())
    return _STATUS_ALIASES.get(status, status)


@functools.lru_cache(maxsize=256)
def tz_offset(abbreviation: str | None) -> timedelta | None:
    """The usual UTC offset of a zone abbreviation ('CEST' -> 2 h) or a numeric one ('+0530').

    None for None and for names no zone uses. Ambiguous names give USUAL_MEANING_HOURS; a feed's
    stamps are not read with this but with notifier.stamps, where the page's offsets decide.
    """
    if not abbreviation:
        return None
    numeric = zones.numeric_offset(abbreviation)
    if numeric is not None:
        return numeric
    abbr = abbreviation.strip().upper()
    if abbr in USUAL_MEANING_HOURS:
        return timedelta(hours=USUAL_MEANING_HOURS[abbr])
    for local in (_USUAL_DATE, _USUAL_SUMMER):
        offsets = {m.offset for m in zones.meanings(abbr, local)}
        if offsets:
            return min(offsets)  # one in practice; min() keeps the answer stable if not
    return None


def plain_text(fragment: str) -> str:
    """HTML fragment -> inert plain text: tags dropped, links kept as 'label (url)'.

    Only what an HTML parser takes for a tag is dropped (see _TAG); entities are decoded once,
    so an escaped '&lt;b&gt;' stays the text '<b>'. Whitespace collapses to single spaces.
    """

    def link(match: re.Match) -> str:
        url, label = html.unescape(match.group(2)).strip(), _TAG.sub("", match.group(3)).strip()
        # Only web and mail links are worth keeping; "javascript:" and the like are dropped.
        if not _SAFE_URL.match(url) or url in html.unescape(label):
            return label
        return f"{label} ({url})"

    # Every tag (<br>, </p> and </li> included) becomes a space; the checks before each step
    # skip regex passes that cannot match (this runs for every update of every entry).
    text = _LINK.sub(link, fragment) if "<a" in fragment or "<A" in fragment else fragment
    if "<" in text:
        text = _TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    return " ".join(text.split())


def title_text(title: str, html_type: bool = False) -> str:
    """An entry or feed title -> one line of text; `html_type` when feedparser reports it as
    markup (Atom type="html" or "xhtml"; an RSS title its heuristic takes for HTML).

    feedparser has already decoded the XML, so a text title is text: '<', '>' and '&' in it are
    the page's own ("Errors on <HEAD /x> in EU", "Sinch <-> Meta", "AT&T") and nothing is
    stripped. From a markup title only well-formed tags of INLINE_ELEMENTS go (<br> becomes a
    space) and entities are decoded once; any other '<…>' stays as written (issue 10).
    """
    if html_type:
        if "<" in title:
            title = _INLINE_TAG.sub(_inline_tag, title)
        if "&" in title:
            title = html.unescape(title)
    return " ".join(title.split())


def _inline_tag(match: re.Match) -> str:
    name = (match["open"] or match["close"]).lower()
    if name not in INLINE_ELEMENTS:
        return match.group(0)
    return " " if name == "br" else ""


def _title(raw) -> str:
    detail = raw.get("title_detail") or {}
    html_type = detail.get("type") in ("text/html", "application/xhtml+xml")
    return title_text(raw.get("title", "") or "", html_type)


def _own(item, key: str):
    """item[key] without feedparser's deprecated fallback from updated_* to published_*."""
    # RSS has no <updated>; feedparser's get()/[] then answer with pubDate and a
    # DeprecationWarning. Only its `in` checks what the entry really has.
    return item[key] if key in item else None  # noqa: SIM401 - .get() takes the fallback


def _struct_to_dt(value) -> datetime | None:
    """feedparser's UTC struct_time -> aware datetime; OverflowError outside the years 1-9999."""
    if not value:
        return None
    try:
        return datetime(*value[:6], tzinfo=UTC)
    except ValueError as exc:  # "year 0 is out of range": what a date of year 1 east of UTC gives
        raise OverflowError(str(exc)) from None


def parse_updates(
    content: str,
    reference: datetime,
    problems: list[str] | None = None,
    *,
    dates: EntryDates | None = None,
    doubts: list[str] | None = None,
) -> tuple[tuple[Update, ...], tuple[datetime, datetime] | None]:
    """Updates (newest first) and the scheduled window (UTC) of an entry's HTML content.

    `reference` is the newest date the entry carries (UTC); `dates` all it states (its dates with
    the offsets they were written in, the feed's own date; default: `reference` alone). Years
    and zones are read by notifier.stamps: the year nearest to the entry's dates, the meaning of
    an abbreviation that agrees with the page's stated offsets. A time read with doubt adds one
    line to `doubts`; an unknown zone also one to `problems`. ValueError for a date that does
    not exist (an unknown month name), OverflowError for a time outside the years 1-9999.
    """
    dates = dates or EntryDates(references=(reference,))
    content = _VAR_TAG.sub("", content)
    matches = list(_STAMP.finditer(content))
    stamps = [Stamp(m["mon"], m["day"], m["hh"], m["mm"], m["tz"]) for m in matches]
    # Numeric stamps ("+03") are offsets the page states itself, like its dates.
    numeric = [read_update(s, dates) for s in stamps if s.zone and s.zone[0] in "+-"]
    dates = dates.with_stated(Stated(r.at, r.offset) for r in numeric)
    # The entry is published at its newest update (a postmortem comes days later), an upcoming
    # maintenance at its window's start.
    statuses = [normalize_status(m["status"]) for m in matches]
    anchor = next((i for i, status in enumerate(statuses) if status != "postmortem"), 0)
    banner = _banner(content)
    # The window lies ahead of the entry's dates: it is placed after (reference - 1 day).
    hint = window_zones(*banner, dates, reference - timedelta(days=1)) if banner else None
    if hint and statuses and statuses[anchor] == "scheduled":
        anchor = None
    readings = read_stamps(stamps, dates, anchor, hint)
    updates: list[Update] = []
    for i, (match, reading) in enumerate(zip(matches, readings, strict=True)):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(content)
        _note(reading, problems, doubts)
        text = plain_text(content[match.end() : end])
        updates.append(Update(status=statuses[i], at=reading.at, text=text))
    window = _banner_window(banner, reference, dates, readings, hint, problems, doubts)
    return tuple(updates), window


def _note(reading: Reading, problems: list[str] | None, doubts: list[str] | None) -> None:
    if reading.problem and problems is not None and reading.problem not in problems:
        problems.append(reading.problem)
    if reading.doubt and doubts is not None and reading.doubt not in doubts:
        doubts.append(reading.doubt)


def _banner(content: str) -> tuple[Stamp, Stamp] | None:
    """The (start, end) stamps of a "THIS IS A SCHEDULED EVENT" banner, or None."""
    banner = _BANNER.search(content)
    if not banner:
        return None
    # "Oct 5, 04:00 - 05:00 UTC" names one zone for both ends, and "Mar 28, 01:00 - 04:00 CEST"
    # too although 01:00 is still CET there: the start is read in the end's zone, not with its
    # offset. A window across days names both: "Mar 27, 22:00 CET - Mar 28, 04:00 CEST".
    start = Stamp(banner["mon"], banner["day"], banner["hh"], banner["mm"], banner["tz1"])
    end = Stamp(
        banner["mon2"] or banner["mon"],
        banner["day2"] or banner["day"],
        banner["hh2"],
        banner["mm2"],
        banner["tz"],
    )
    return start, end


def _banner_window(
    banner: tuple[Stamp, Stamp] | None,
    reference: datetime,
    dates: EntryDates,
    readings: list[Reading],
    hint: frozenset[str] | None,
    problems: list[str] | None,
    doubts: list[str] | None,
) -> tuple[datetime, datetime] | None:
    if banner is None:
        return None
    page = readings[0] if readings else None
    # The page's zone, as its updates tell it (or, failing them, the window's own start).
    within = page_zones(readings, dates) or hint
    first, last = read_window(*banner, dates, reference - timedelta(days=1), page, within)
    for reading in (first, last):
        _note(reading, problems, doubts)
    return first.at, last.at


def _rfc822(value: str) -> datetime | None:
    """An RFC 822 date -> UTC; None when unreadable, OverflowError outside the years 1-9999."""
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def incident_key(link: str) -> str | None:
    match = _INCIDENT_CODE.search(link or "")
    return match.group(1) if match else None


def _entry_content(raw) -> str:
    if raw.get("content"):
        return raw["content"][0].get("value", "")
    return raw.get("summary", "") or raw.get("description", "")


def _entry_dates(raw, published, updated, feed: EntryDates) -> EntryDates:
    """The entry's dates with their written offsets; the feed's when it states none itself.

    OverflowError when one lies outside the years 1-9999 (read as written: feedparser makes
    nothing, or another year, of some of those).
    """
    stated = (_stated_date(raw.get("published")), _stated_date(_own(raw, "updated")))
    own = tuple(d for d in (published, updated) if d)
    if not own:
        return feed
    return EntryDates(
        references=own, stated=tuple(s for s in stated if s), latest=feed.latest or updated
    )


def _parse_entry(raw, feed_dates: EntryDates, problems: list[str]) -> Entry | None:
    link = raw.get("link", "") or ""
    key = incident_key(link) or incident_key(raw.get("id", ""))
    title = _title(raw) or "(untitled)"
    if not key:
        problems.append(f"entry {title[:60]!r} has no /incidents/<code> link; skipped")
        return None
    try:
        return _read_entry(raw, key, link, title, feed_dates, problems)
    except OverflowError:
        # A date of year 1 or 9999, or a stamp read next to one (see EARLIEST): one such entry
        # must not cost the feed its other entries.
        problems.append(f"entry {key}: a date or time is outside the years 1970-9998; skipped")
        return None


def _read_entry(
    raw, key: str, link: str, title: str, feed_dates: EntryDates, problems: list[str]
) -> Entry | None:
    """The rest of _parse_entry; OverflowError for a date or time outside EARLIEST..LATEST."""
    published = _struct_to_dt(raw.get("published_parsed"))
    updated = _struct_to_dt(_own(raw, "updated_parsed"))
    dates = _entry_dates(raw, published, updated, feed_dates)
    reference = max(dates.references)
    content = _entry_content(raw)
    found: list[str] = []
    doubts: list[str] = []
    try:
        updates, window = parse_updates(content, reference, found, dates=dates, doubts=doubts)
    except ValueError as exc:
        problems.append(f"entry {key}: {exc}; skipped")
        return None
    problems.extend(f"entry {key}: {problem}" for problem in found)
    unknown = sorted({u.status for u in updates} - KNOWN_STATUSES)
    if unknown:
        # Statuspage has a fixed set of status words; anything else means a template or page
        # we do not understand, so those paragraphs are ignored rather than guessed at.
        problems.append(f"entry {key}: unknown status {', '.join(unknown)}; those updates ignored")
        updates = tuple(u for u in updates if u.status in KNOWN_STATUSES)
    end_date = raw.get("maintenanceenddate") or ""  # RSS <maintenanceEndDate>
    window_from = "banner" if window else None
    if window is None and end_date:
        end = _rfc822(end_date)
        if end and published:
            window, window_from = (published, end), "end_date"
    _within_range(published, updated, *(u.at for u in updates), *(window or ()))
    statuses = {u.status for u in updates}
    kind = "maintenance" if (window or statuses & MAINTENANCE_STATUSES) else "incident"
    # The end date lives outside the content in RSS; a moved window must count as a change.
    digest = hashlib.blake2b(
        f"{title}\x00{content}\x00{end_date}".encode(), digest_size=16
    ).hexdigest()
    return Entry(
        key=key,
        kind=kind,
        title=title,
        link=link,
        updates=updates,
        content_hash=digest,
        published=published,
        updated=updated,
        scheduled_start=window[0] if window else None,
        scheduled_end=window[1] if window else None,
        window_from=window_from,
        time_doubts=tuple(doubts),
    )


def _within_range(*values: datetime | None) -> None:
    """OverflowError unless every value given lies in [EARLIEST, LATEST)."""
    if any(v is not None and not EARLIEST <= v < LATEST for v in values):
        raise OverflowError("outside the years 1970-9998")


def _refusal(parsed, body: bytes) -> str | None:
    """Why feedparser's result cannot be trusted, or None when the body is a clean feed."""
    version = parsed.get("version") or ""
    exc = parsed.get("bozo_exception")
    if not version.startswith(("atom", "rss")):
        if not body.strip():
            return "the body is empty"
        head = body[:512].lstrip().lower()
        if head.startswith(b"<!doctype html") or b"<html" in head:  # an error or login page
            return "not an Atom or RSS feed: the body is an HTML page"
        return f"not an Atom or RSS feed: {exc or 'no <feed> or <rss> root element'}"
    if not parsed.get("bozo"):
        return None
    name = type(exc).__name__
    if name == "CharacterEncodingOverride":
        return f"the body is not in its declared encoding ({exc}); refused"
    if name == "SAXParseException":
        return f"not well-formed XML, truncated or corrupt ({exc}); refused"
    return f"malformed feed ({name}: {exc}); refused"


def parse_feed(body: bytes, now: datetime | None = None) -> ParsedFeed:
    """Parse a Statuspage Atom or RSS body; raise FeedError when it is not a clean feed.

    Bytes that are not UTF-8 in a UTF-8 body cost only the entries holding them (module
    docstring): those are left out of `entries` and listed in `damaged` and `problems`.
    """
    # Our own tag stripping makes every text inert, so feedparser's sanitizer (two thirds of
    # its run time on a 100 KB feed) buys nothing here.
    parsed = feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False)
    mark = None
    if _encoding_override(parsed) and _declared_utf8(body):
        mark, parsed = _parse_leniently(body, parsed)
    refusal = _refusal(parsed, body)
    if refusal:
        raise FeedError(refusal)
    fmt = "atom" if parsed["version"].startswith("atom") else "rss"
    feed_meta = parsed.get("feed", {})
    problems: list[str] = []
    damaged: list[str] = []
    if mark is not None:
        feed_meta = _clean_feed_meta(feed_meta, mark, problems)
    # The feed's own date: what entries without dates are read near, and after which nothing
    # on the page can have been posted. `now` only stands in for a missing one.
    text = _own(feed_meta, "updated") or feed_meta.get("published")
    try:
        stated = _stated_date(text)
        feed_date = _struct_to_dt(
            _own(feed_meta, "updated_parsed") or feed_meta.get("published_parsed")
        )
        _within_range(feed_date, stated.at if stated else None)
    except OverflowError:
        problems.append(f"the feed's own date {text!r} is outside the years 1970-9998; ignored")
        stated = feed_date = None
    feed_dates = EntryDates(
        references=(feed_date or now or datetime.now(UTC),),
        stated=(stated,) if stated else (),
        latest=feed_date,
    )
    entries: dict[str, Entry] = {}
    baseline_only: dict[str, Entry] = {}
    for raw in parsed.entries:
        spoilt = _damaged_fields(raw, mark) if mark is not None else []
        if spoilt:
            label, key = _damaged_label(raw, mark)
            line = f"entry {label}: bytes that are not UTF-8 in its {', '.join(spoilt)}; skipped"
            problems.append(line)
            damaged.append(line)
            read = _parse_entry(_unmarked(raw, mark), feed_dates, [])
            if read is not None and read.key == key:  # a key from a damaged link is not its own
                baseline_only.setdefault(key, read)
            continue
        entry = _parse_entry(raw, feed_dates, problems)
        if entry is None:
            continue
        if entry.key in entries:
            problems.append(f"entry {entry.key} appears twice; the first one is used")
            continue
        entries[entry.key] = entry
    return ParsedFeed(
        format=fmt,
        title=_title(feed_meta),
        link=feed_meta.get("link", ""),
        entries=tuple(entries.values()),
        problems=tuple(problems),
        found=len(parsed.entries),
        damaged=tuple(damaged),
        damaged_entries=tuple(e for k, e in baseline_only.items() if k not in entries),
    )


# --- bytes that are not UTF-8 ---------------------------------------------------------------
# Noncharacters: legal in XML 1.0 (its Char production), never in a Statuspage feed. The first
# one the body does not hold marks where invalid bytes were.
_MARKS = tuple(chr(c) for c in range(0xFDD0, 0xFDF0))
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
# The raw fields an Entry is read from, by the word a report uses for them.
_READ_FIELDS = (
    ("id", ("id",)),
    ("link", ("link", "links")),
    ("title", ("title",)),
    ("content", ("content", "summary", "description")),
    ("date", ("published", "updated", "maintenanceenddate")),
)


def _encoding_override(parsed) -> bool:
    return type(parsed.get("bozo_exception")).__name__ == "CharacterEncodingOverride"


def _declared_utf8(body: bytes) -> bool:
    """Whether the body is UTF-8 by its XML declaration (or by default: none, or no encoding)."""
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    declared = _XML_ENCODING.match(body.removeprefix(codecs.BOM_UTF8).lstrip()[:200])
    return declared is None or declared.group(1).lower().replace(b"_", b"-") in (b"utf-8", b"utf8")


def _parse_leniently(body: bytes, strict):
    """(marker, feedparser result) for `body` with each invalid UTF-8 sequence as the marker;
    (None, `strict`) in the absurd case that the body holds every marker."""
    mark = next((m for m in _MARKS if m.encode() not in body), None)
    if mark is None:
        return None, strict
    lenient = _marks_for_invalid(body, mark).encode()
    return mark, feedparser.parse(lenient, sanitize_html=False, resolve_relative_uris=False)


def _marks_for_invalid(body: bytes, mark: str) -> str:
    """The body as text, each maximal invalid UTF-8 sequence replaced by `mark` (a U+FFFD the
    page wrote itself stays what it is, unlike with errors="replace")."""
    out, start = [], 0
    while True:
        try:
            out.append(body[start:].decode("utf-8"))
            return "".join(out)
        except UnicodeDecodeError as exc:
            out.append(body[start : start + exc.start].decode("utf-8"))
            out.append(mark)
            start += exc.end


def _holds(value, mark: str) -> bool:
    if isinstance(value, str):
        return mark in value
    if isinstance(value, dict):
        return any(_holds(v, mark) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds(v, mark) for v in value)
    return False


def _damaged_fields(raw, mark: str) -> list[str]:
    """The words for the fields of a raw entry that hold the marker ("title", "date", …)."""
    return [word for word, keys in _READ_FIELDS if any(_holds(_own(raw, k), mark) for k in keys)]


def _damaged_label(raw, mark: str) -> tuple[str, str | None]:
    """(how a report names a damaged entry: its code, else its id, and its title; the code
    when an undamaged link or id gives one)."""
    clean = [v for v in (raw.get("link", ""), _own(raw, "id")) if v and mark not in v]
    key = next((k for k in map(incident_key, clean) if k), None)
    ident = key or next((v for v in clean if v == _own(raw, "id")), None) or "(no clean id)"
    title = _title(raw).replace(mark, "\ufffd") or "(untitled)"
    return f"{ident} {title[:60]!r}", key


def _unmarked(value, mark: str):
    """A copy of a raw feedparser value with U+FFFD for the marker (dicts and lists copied)."""
    if isinstance(value, str):
        return value.replace(mark, "\ufffd")
    if isinstance(value, dict):
        return {k: _unmarked(v, mark) for k, v in value.items()}
    if isinstance(value, list):
        return [_unmarked(v, mark) for v in value]
    return value


def _clean_feed_meta(meta, mark: str, problems: list[str]):
    """The feed's own fields with damaged ones dropped (one problem line each)."""
    spoilt = [k for k in ("title", "link", "updated", "published") if _holds(_own(meta, k), mark)]
    if not spoilt:
        return meta
    problems.append(f"the feed's own {', '.join(spoilt)}: bytes that are not UTF-8; ignored")
    drop = set(spoilt) | {f"{k}_parsed" for k in spoilt} | {f"{k}_detail" for k in spoilt}
    return {k: v for k, v in meta.items() if k not in drop}
