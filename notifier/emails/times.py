"""Times and time windows for readers, in their zone and language, via Babel.

German readers expect `27. Juni 2023, 18:30 MESZ`, English ones `June 27, 2023, 16:30 UTC`.
CLDR only has short zone names where a locale commonly uses them (German has MEZ/MESZ but
no PDT; English has PDT but no CEST), and Babel then falls back to a bare `+0200`. The tz
database abbreviation (CEST, PDT, IST, JST) reads better there, so it is the second choice;
zones whose tz abbreviation is itself numeric (Asia/Dubai: "+04") get `UTC+4`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime

_DATE = {"de": "d. MMMM y", "en": "MMMM d, y"}
_DATE_TIME = {"de": "d. MMMM y, HH:mm", "en": "MMMM d, y, HH:mm"}
_TIME = "HH:mm"
DASH = " – "


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name; ValueError for names the tz database does not know."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def parse_time(value: str | datetime | None) -> datetime | None:
    """An ISO 8601 time from a content dict (`2023-06-27T16:30:00Z`) as an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def zone_abbreviation(local: datetime, lang: str) -> str:
    """MESZ/MEZ, UTC, PDT, … for an aware local datetime; see the module docstring."""
    babel_name = format_datetime(local, "zzz", tzinfo=local.tzinfo, locale=lang)
    if not babel_name.startswith(("+", "-")):
        return babel_name
    tz_name = local.tzname() or ""
    if tz_name[:1].isalpha():
        return tz_name
    offset = local.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def format_time(at: datetime, lang: str, tz: str) -> str:
    """`27. Juni 2023, 18:30 MESZ` / `June 27, 2023, 16:30 UTC`."""
    local = at.astimezone(zone(tz))
    when = format_datetime(local, _DATE_TIME[lang], locale=lang)
    return f"{when} {zone_abbreviation(local, lang)}"


def format_date(at: datetime, lang: str, tz: str) -> str:
    """`27. Juni 2023` / `June 27, 2023` (the reader's calendar day)."""
    return format_datetime(at.astimezone(zone(tz)), _DATE[lang], locale=lang)


def format_window(start: datetime, end: datetime | None, lang: str, tz: str) -> str:
    """A time range; same-day ranges compactly: `27. Juni 2023, 18:30 – 20:00 MESZ`."""
    if end is None or end == start:
        return format_time(start, lang, tz)
    first, last = start.astimezone(zone(tz)), end.astimezone(zone(tz))
    same_zone = zone_abbreviation(first, lang) == zone_abbreviation(last, lang)
    if first.date() == last.date() and same_zone:
        day_and_start = format_datetime(first, _DATE_TIME[lang], locale=lang)
        until = format_datetime(last, _TIME, locale=lang)
        return f"{day_and_start}{DASH}{until} {zone_abbreviation(last, lang)}"
    return f"{format_time(start, lang, tz)}{DASH}{format_time(end, lang, tz)}"
