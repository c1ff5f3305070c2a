"""Times and time windows for readers, in their zone and language, via Babel.

German readers expect `27. Juni 2023, 18:30 MESZ`, English ones `June 27, 2023, 16:30 UTC`.
CLDR only has short zone names where a locale commonly uses them (German has MEZ/MESZ but
no PDT; English has PDT but no CEST), and Babel then falls back to a bare `+0200`. The tz
database abbreviation (CEST, PDT, IST, JST) reads better there, so it is the second choice;
zones whose tz abbreviation is itself numeric (Asia/Dubai: "+04") get `UTC+4`.

Clock: the reader's region decides between 12- and 24-hour times (issue 13). The zone's country
comes from CLDR's zone-to-territory table (Babel's `zone_territories`, aliases such as
Asia/Calcutta resolved); the locale `<lang>_<country>` (en_US for America/New_York, en_GB for
Europe/London, en_IN for Asia/Kolkata) then says which clock its short time format uses:
`h` is 12-hour (`2:05 PM`), `H` 24-hour (`14:05`). Zones without a country (UTC, Etc/*) and
countries CLDR has no English locale for get 24 hours, the convention of UTC and ISO 8601.
German is always 24-hour: every German CLDR locale (de, de_AT, de_CH, …) writes `HH:mm`.

Phrasing: a moment in a sentence is `on October 5, 2026, at 2:05 PM EDT` /
`am 5. Oktober 2026 um 14:05 MESZ` (format_on), a span `between … and …` (format_between),
never "at October 5".

Zones as placeholders (issue 14): a mail is rendered once for readers of every zone with a
`Symbolic` zone in place of an IANA name. Every zone-dependent expression (`format_*`, the zone's
name, anything wrapped with `per_zone`) then returns a placeholder and records how to compute it;
`Symbolic.values(zone)` gives each placeholder's text for one real zone (see notifier.render).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache, wraps
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.core import Locale, UnknownLocaleError, get_global
from babel.dates import format_datetime

_DATE = {"de": "d. MMMM y", "en": "MMMM d, y"}
_TIME = {"H": "HH:mm", "h": "h:mm a"}
DASH = " – "


class Symbolic(str):
    """A stand-in zone for rendering one mail for readers of every zone.

    Its own text is the placeholder for the zone's IANA name ("All times are shown in the …
    time zone"); `format_*` called with it return a placeholder per distinct expression, and
    `per_zone(tz, fn)` one per call. Placeholders are first written as `-z<k><n>x<nonce>-`
    (k: `t` a time or the zone name, `s` a deferred text such as a subject): the random nonce
    cannot occur in feed text, so `escape_placeholders` may break every live-looking key in the
    Message and `live_key` then turns only these into the keys sent (`-zt3-`).
    """

    def __new__(cls) -> Symbolic:
        nonce = secrets.token_hex(8)
        self = super().__new__(cls, f"-zt0x{nonce}-")
        self.nonce = nonce
        self.expressions = {"-zt0-": _zone_name}  # key -> fn(real zone) -> text
        self._seen: dict[tuple, str] = {}
        return self

    def token(self, kind: str, fn: Callable[[str], str], identity: tuple) -> str:
        """The (raw) placeholder for `fn`, one per distinct `identity`."""
        key = self._seen.get(identity)
        if key is None:
            key = f"-z{kind}{len(self.expressions)}-"
            self._seen[identity] = key
            self.expressions[key] = fn
        return f"{key[:-1]}x{self.nonce}-"

    def live_key(self, text: str) -> str:
        """`text` with this zone's raw placeholders turned into the keys sent."""
        return text.replace(f"x{self.nonce}-", "-") if self.nonce in text else text


def _zone_name(tz: str) -> str:
    return tz


def _zoned(fn):
    """`fn(*args, tz)` as written for a real zone; a placeholder for a Symbolic one."""

    @wraps(fn)
    def wrapper(*args):
        tz = args[-1]
        if isinstance(tz, Symbolic):
            rest = args[:-1]
            return tz.token("t", lambda real: fn(*rest, real), (fn.__name__, *rest))
        return fn(*args)

    return wrapper


def per_zone(tz: str, fn: Callable[[str], str]) -> str:
    """`fn(tz)`; for a Symbolic zone a placeholder whose value is `fn(real zone)`. For text
    whose *length* depends on the zone (a subject that takes the window only if it fits)."""
    if isinstance(tz, Symbolic):
        return tz.token("s", fn, (id(fn), fn))
    return fn(tz)


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name; ValueError for names the tz database does not know."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


@lru_cache(maxsize=256)
def clock_locale(lang: str, tz: str) -> str:
    """The Babel locale whose clock a reader of `lang` in zone `tz` uses: `en_US`, `en_GB`,
    `de_DE`, … or just `lang` when the zone has no country (UTC). See the module docstring."""
    name = get_global("zone_aliases").get(tz, tz)
    territory = get_global("zone_territories").get(name)
    if not territory or territory in ("ZZ", "001"):
        return lang
    try:
        return str(Locale(lang, territory))
    except (UnknownLocaleError, ValueError):
        return lang


@lru_cache(maxsize=256)
def hour_cycle(lang: str, tz: str) -> str:
    """`h` (12-hour) or `H` (24-hour) for readers of `lang` in `tz`; see the module docstring."""
    locale = clock_locale(lang, tz)
    if locale == lang:
        return "H"  # no region: UTC and Etc/* zones read 24-hour times
    pattern = Locale.parse(locale).time_formats["short"].pattern
    return "h" if "h" in pattern or "K" in pattern else "H"


def _date_time(lang: str, tz: str) -> str:
    return f"{_DATE[lang]}, {_TIME[hour_cycle(lang, tz)]}"


def _clock(local: datetime, lang: str, tz: str) -> str:
    return format_datetime(local, _TIME[hour_cycle(lang, tz)], locale=lang)


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


@_zoned
def format_time(at: datetime, lang: str, tz: str) -> str:
    """`27. Juni 2023, 18:30 MESZ` / `June 27, 2023, 16:30 UTC` / `June 27, 2023, 12:30 PM EDT`
    (the clock of the reader's region, see the module docstring)."""
    local = at.astimezone(zone(tz))
    when = format_datetime(local, _date_time(lang, tz), locale=lang)
    return f"{when} {zone_abbreviation(local, lang)}"


@_zoned
def format_on(at: datetime, lang: str, tz: str) -> str:
    """A moment inside a sentence: `on October 5, 2026, at 1:12 AM EDT` /
    `am 5. Oktober 2026 um 01:12 MESZ` (a date takes "on"/"am", a time "at"/"um")."""
    local = at.astimezone(zone(tz))
    day = format_datetime(local, _DATE[lang], locale=lang)
    clock = f"{_clock(local, lang, tz)} {zone_abbreviation(local, lang)}"
    return f"am {day} um {clock}" if lang == "de" else f"on {day}, at {clock}"


@_zoned
def format_between(start: datetime, end: datetime, lang: str, tz: str) -> str:
    """A span inside a sentence. Same day: `on October 5, 2026, between 9:40 AM and 2:05 PM EDT`
    / `am 5. Oktober 2026 zwischen 09:40 und 14:05 MESZ`; else `between June 27, 2023, 4:30 PM
    UTC and June 28, 2023, 1:30 PM UTC` / `zwischen dem 27. Juni 2023, 18:30 MESZ und dem …`."""
    first, last = start.astimezone(zone(tz)), end.astimezone(zone(tz))
    abbreviation = zone_abbreviation(last, lang)
    if first.date() == last.date() and zone_abbreviation(first, lang) == abbreviation:
        day = format_datetime(first, _DATE[lang], locale=lang)
        clocks = (_clock(first, lang, tz), _clock(last, lang, tz))
        if lang == "de":
            return f"am {day} zwischen {clocks[0]} und {clocks[1]} {abbreviation}"
        return f"on {day}, between {clocks[0]} and {clocks[1]} {abbreviation}"
    if lang == "de":
        return f"zwischen dem {format_time(start, lang, tz)} und dem {format_time(end, lang, tz)}"
    return f"between {format_time(start, lang, tz)} and {format_time(end, lang, tz)}"


@_zoned
def format_date(at: datetime, lang: str, tz: str) -> str:
    """`27. Juni 2023` / `June 27, 2023` (the reader's calendar day)."""
    return format_datetime(at.astimezone(zone(tz)), _DATE[lang], locale=lang)


@_zoned
def format_window(start: datetime, end: datetime | None, lang: str, tz: str) -> str:
    """A time range; same-day ranges compactly: `27. Juni 2023, 18:30 – 20:00 MESZ`."""
    if end is None or end == start:
        return format_time(start, lang, tz)
    first, last = start.astimezone(zone(tz)), end.astimezone(zone(tz))
    same_zone = zone_abbreviation(first, lang) == zone_abbreviation(last, lang)
    if first.date() == last.date() and same_zone:
        day_and_start = format_datetime(first, _date_time(lang, tz), locale=lang)
        until = _clock(last, lang, tz)
        return f"{day_and_start}{DASH}{until} {zone_abbreviation(last, lang)}"
    return f"{format_time(start, lang, tz)}{DASH}{format_time(end, lang, tz)}"
