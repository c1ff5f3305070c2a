"""Statuspage feeds (Atom and RSS) parsed into frozen values. Pure: bytes in, values out.

Facts this module relies on (see DESIGN.md, "Feed ingestion"): one entry per incident or
maintenance; its updates are HTML paragraphs in the content, newest first, each
`<small>Mon DD, HH:MM TZ</small><br><strong>Status</strong> - text`, with no year, minute
precision and the page's time-zone abbreviation. Whitespace and `<var>` tags differ between
template versions, so everything here matches tolerantly.

The XML itself is read strictly: a body feedparser calls "bozo" (not well-formed, cut off,
bytes that are not in the declared encoding) is refused with FeedError. Statuspage generates
well-formed UTF-8, so such a body is a fault on the way (a cut-off transfer, a proxy page); read
leniently it would lose or mangle updates, and those mangled texts would be stored as edits.
Refusing it keeps the previous state, and the next good body is read as usual.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import feedparser

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

# Abbreviations Statuspage prints (Rails strftime %Z of the page's zone). Each one names a fixed
# offset, DST included, so no zone database is needed. Ambiguous ones (CST, IST, BST) follow the
# zones Statuspage pages commonly use: US Central, India, British Summer Time.
TZ_OFFSETS_HOURS: dict[str, float] = {
    "UTC": 0,
    "GMT": 0,
    "Z": 0,
    "WET": 0,
    "WEST": 1,
    "BST": 1,
    "IST": 5.5,
    "CET": 1,
    "CEST": 2,
    "MET": 1,
    "MEST": 2,
    "EET": 2,
    "EEST": 3,
    "MSK": 3,
    "TRT": 3,
    "SAST": 2,
    "GST": 4,
    "PKT": 5,
    "NPT": 5.75,
    "ICT": 7,
    "WIB": 7,
    "SGT": 8,
    "HKT": 8,
    "AWST": 8,
    "PHT": 8,
    "JST": 9,
    "KST": 9,
    "ACST": 9.5,
    "ACDT": 10.5,
    "AEST": 10,
    "AEDT": 11,
    "NZST": 12,
    "NZDT": 13,
    "HST": -10,
    "AKST": -9,
    "AKDT": -8,
    "PST": -8,
    "PDT": -7,
    "MST": -7,
    "MDT": -6,
    "CST": -6,
    "CDT": -5,
    "EST": -5,
    "EDT": -4,
    "AST": -4,
    "ADT": -3,
    "NST": -3.5,
    "NDT": -2.5,
    "BRT": -3,
    "ART": -3,
    "CLT": -4,
    "CLST": -3,
    "COT": -5,
    "PET": -5,
}
MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}

_VAR_TAG = re.compile(r"</?var\b[^>]*>", re.I)
_STAMP = re.compile(
    r"<small>\s*(?P<mon>[A-Za-z]{3})[a-z]*\.?\s+(?P<day>\d{1,2})\s*,?\s*"
    r"(?P<hh>\d{1,2}):(?P<mm>\d{2})\s*(?P<tz>[A-Za-z]{1,5}|[+-]\d{2}(?::?\d{2})?)?\s*</small>"
    r"\s*(?:<br\s*/?>)?\s*<strong>\s*(?P<status>[^<]{1,40}?)\s*</strong>\s*(?:[-–—:]\s*)?",
    re.I,
)
_BANNER = re.compile(
    r"THIS IS A SCHEDULED EVENT\s+(?P<mon>[A-Za-z]{3})[a-z]*\.?\s+(?P<day>\d{1,2})\s*,?\s*"
    r"(?P<hh>\d{1,2}):(?P<mm>\d{2})\s*(?P<tz1>[A-Za-z]{1,5}(?=\s*-))?\s*-\s*"
    r"(?:(?P<mon2>[A-Za-z]{3})[a-z]*\.?\s+(?P<day2>\d{1,2})\s*,?\s*)?"
    r"(?P<hh2>\d{1,2}):(?P<mm2>\d{2})\s*(?P<tz>[A-Za-z]{1,5}|[+-]\d{2}(?::?\d{2})?)?",
    re.I,
)
_INCIDENT_CODE = re.compile(r"/incidents/([A-Za-z0-9_-]+)")
_LINK = re.compile(r"<a\b[^>]*?href\s*=\s*([\"'])(.*?)\1[^>]*>(.*?)</a\s*>", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")
_SAFE_URL = re.compile(r"(?:https?://|mailto:)[^\s<>]+$", re.I)
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


@dataclass(frozen=True)
class ParsedFeed:
    format: str
    title: str
    link: str
    entries: tuple[Entry, ...]
    problems: tuple[str, ...] = field(default=())


@functools.lru_cache(maxsize=256)
def normalize_status(word: str) -> str:
    """'In progress' -> 'in_progress'; unknown words come back normalized, not rejected."""
    status = _SPACE.sub("_", html.unescape(word).strip().lower())
    return _STATUS_ALIASES.get(status, status)


@functools.lru_cache(maxsize=256)
def tz_offset(abbreviation: str | None) -> timedelta | None:
    """The UTC offset a Statuspage zone abbreviation or numeric offset stands for."""
    if not abbreviation:
        return None
    abbr = abbreviation.strip().upper()
    if abbr[:1] in "+-" and abbr[1:3].isdigit():
        digits = abbr[1:].replace(":", "")
        minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) >= 4 else 0)
        return timedelta(minutes=minutes if abbr[0] == "+" else -minutes)
    hours = TZ_OFFSETS_HOURS.get(abbr)
    return None if hours is None else timedelta(hours=hours)


def plain_text(fragment: str) -> str:
    """HTML fragment -> inert plain text: tags dropped, links kept as 'label (url)'."""

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


def _own(item, key: str):
    """item[key] without feedparser's deprecated fallback from updated_* to published_*."""
    # RSS has no <updated>; feedparser's get()/[] then answer with pubDate and a
    # DeprecationWarning. Only its `in` checks what the entry really has.
    return item[key] if key in item else None  # noqa: SIM401 - .get() takes the fallback


def _struct_to_dt(value) -> datetime | None:
    if not value:
        return None
    return datetime(*value[:6], tzinfo=UTC)


@functools.lru_cache(maxsize=64)
def _zone(offset: timedelta) -> timezone:
    return timezone(offset)


def _infer(mon: str, day: str, hh: str, mm: str, offset: timedelta, bound: datetime) -> datetime:
    """The latest date with that month/day/time that is not after `bound`."""
    month = MONTHS.get(mon[:3].lower())
    if month is None:
        raise ValueError(f"unknown month {mon!r}")
    zone = _zone(offset)
    for year in (bound.year + 1, bound.year, bound.year - 1, bound.year - 2):
        try:
            local = datetime(year, month, int(day), int(hh), int(mm), tzinfo=zone)
        except ValueError:  # Feb 29 in a non-leap year
            continue
        at = local.astimezone(UTC)
        if at <= bound:
            return at
    raise ValueError(f"cannot place {mon} {day} {hh}:{mm} before {bound:%Y-%m-%d}")


def parse_updates(
    content: str, reference: datetime, problems: list[str] | None = None
) -> tuple[tuple[Update, ...], tuple[datetime, datetime] | None]:
    """Updates (newest first) and the scheduled window of an entry's HTML content.

    `reference` is the newest date the entry carries; updates are never later than it (plus a
    day of slack for zone abbreviations), which is how the missing year is inferred, December
    updates seen in January included.
    """
    content = _VAR_TAG.sub("", content)
    matches = list(_STAMP.finditer(content))
    updates: list[Update] = []
    bound = reference + timedelta(days=1)
    page_offset = None
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(content)
        offset = tz_offset(match["tz"])
        if offset is None:
            if problems is not None:
                problems.append(f"unknown time zone {match['tz']!r}, read as UTC")
            offset = timedelta(0)
        page_offset = offset if page_offset is None else page_offset
        at = _infer(match["mon"], match["day"], match["hh"], match["mm"], offset, bound)
        # Newest first: an older paragraph cannot be later than the one above it (a day of
        # slack because pages may backdate an update by a little).
        bound = at + timedelta(days=1)
        text = plain_text(content[match.end() : end])
        updates.append(Update(status=normalize_status(match["status"]), at=at, text=text))
    window = _banner_window(content, reference, page_offset)
    return tuple(updates), window


def _banner_window(
    content: str, reference: datetime, page_offset: timedelta | None
) -> tuple[datetime, datetime] | None:
    banner = _BANNER.search(content)
    if not banner:
        return None
    # "Oct 5, 04:00 - 05:00 UTC" names one zone for both ends; a window across a DST switch
    # reads "Mar 27, 22:00 CET - Mar 28, 04:00 CEST". A zero offset (UTC, GMT) is a real answer,
    # so test for None, not for truth.
    end_offset = _first_offset(tz_offset(banner["tz"]), page_offset)
    start_offset = _first_offset(tz_offset(banner["tz1"]), end_offset)
    # The window lies ahead of the entry's dates: place it after (reference - 1 day).
    floor = reference - timedelta(days=1)
    start = _infer_after(
        banner["mon"], banner["day"], banner["hh"], banner["mm"], start_offset, floor
    )
    end = _infer_after(
        banner["mon2"] or banner["mon"],
        banner["day2"] or banner["day"],
        banner["hh2"],
        banner["mm2"],
        end_offset,
        start,
    )
    return start, end


def _first_offset(*offsets: timedelta | None) -> timedelta:
    return next((o for o in offsets if o is not None), timedelta(0))


def _infer_after(mon, day, hh, mm, offset: timedelta, floor: datetime) -> datetime:
    month = MONTHS[mon[:3].lower()]
    for year in (floor.year - 1, floor.year, floor.year + 1, floor.year + 2):
        try:
            at = datetime(year, month, int(day), int(hh), int(mm), tzinfo=timezone(offset))
        except ValueError:
            continue
        if at.astimezone(UTC) >= floor:
            return at.astimezone(UTC)
    raise ValueError(f"cannot place {mon} {day} after {floor:%Y-%m-%d}")


def _rfc822(value: str) -> datetime | None:
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


def _parse_entry(raw, fallback_time: datetime, problems: list[str]) -> Entry | None:
    link = raw.get("link", "") or ""
    key = incident_key(link) or incident_key(raw.get("id", ""))
    title = plain_text(raw.get("title", "")) or "(untitled)"
    if not key:
        problems.append(f"entry {title[:60]!r} has no /incidents/<code> link; skipped")
        return None
    published = _struct_to_dt(raw.get("published_parsed"))
    updated = _struct_to_dt(_own(raw, "updated_parsed"))
    reference = max((d for d in (published, updated) if d), default=fallback_time)
    content = _entry_content(raw)
    try:
        updates, window = parse_updates(content, reference, problems)
    except ValueError as exc:
        problems.append(f"entry {key}: {exc}; skipped")
        return None
    unknown = sorted({u.status for u in updates} - KNOWN_STATUSES)
    if unknown:
        # Statuspage has a fixed set of status words; anything else means a template or page
        # we do not understand, so those paragraphs are ignored rather than guessed at.
        problems.append(f"entry {key}: unknown status {', '.join(unknown)}; those updates ignored")
        updates = tuple(u for u in updates if u.status in KNOWN_STATUSES)
    end_date = raw.get("maintenanceenddate") or ""  # RSS <maintenanceEndDate>
    if window is None and end_date:
        end = _rfc822(end_date)
        if end and published:
            window = (published, end)
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
    )


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
    """Parse a Statuspage Atom or RSS body; raise FeedError when it is not a clean feed."""
    # Our own tag stripping makes every text inert, so feedparser's sanitizer (two thirds of
    # its run time on a 100 KB feed) buys nothing here.
    parsed = feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False)
    refusal = _refusal(parsed, body)
    if refusal:
        raise FeedError(refusal)
    fmt = "atom" if parsed["version"].startswith("atom") else "rss"
    feed_meta = parsed.get("feed", {})
    fallback = (
        _struct_to_dt(_own(feed_meta, "updated_parsed") or feed_meta.get("published_parsed"))
        or now
        or datetime.now(UTC)
    )
    problems: list[str] = []
    entries: dict[str, Entry] = {}
    for raw in parsed.entries:
        entry = _parse_entry(raw, fallback, problems)
        if entry is None:
            continue
        if entry.key in entries:
            problems.append(f"entry {entry.key} appears twice; the first one is used")
            continue
        entries[entry.key] = entry
    return ParsedFeed(
        format=fmt,
        title=plain_text(feed_meta.get("title", "")),
        link=feed_meta.get("link", ""),
        entries=tuple(entries.values()),
        problems=tuple(problems),
    )
