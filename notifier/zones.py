"""What a time-zone abbreviation means at a given local time, from the IANA tz database.

Statuspage prints update times with the abbreviation of the page's zone (Rails' `%Z`, which
comes from the IANA database through TZInfo). Several abbreviations name more than one offset:
CST is US Central (-06:00), China (+08:00) and Cuba (-05:00); IST is India (+05:30), Ireland in
summer (+01:00) and Israel in winter (+02:00); PST is US Pacific (-08:00) and the Philippines
(+08:00). So this module does not answer "what offset is CST" but "which zones print CST at this
local time, and what instant is that in each": `meanings(abbreviation, local)`. The caller
(notifier.stamps) picks among them with the offsets the feed states itself.

The data is the pinned `tzdata` package (requirements.txt), read directly so that the answer is
the same on every machine whatever the system's /usr/share/zoneinfo holds. Which zones ever use
an abbreviation is read once from the compiled TZif files (RFC 8536: the designations of their
local time types and of the POSIX TZ footer); whether a zone uses it at a given local time is
then asked of zoneinfo itself, so DST rules and history are the database's, not ours.
"""

from __future__ import annotations

import functools
import logging
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from importlib import resources
from zoneinfo import ZoneInfo, available_timezones

log = logging.getLogger(__name__)

# Abbreviations that pages on an older tz database still print, which the IANA database stopped
# using in releases 2017a-2017c (it replaced abbreviations it had invented with numeric ones such
# as "+08"; see the tzdata NEWS file of those releases). Source: the abbreviations of the parser's
# earlier hand-kept table that tzdata 2026f no longer knows, each with the zone that printed it
# and the offset it stood for then. MET/MEST were the zone "MET" until tzdata 2024b made it an
# alias of Europe/Brussels. "Z" is RFC 3339's designator for UTC.
LEGACY: dict[str, tuple[tuple[str, float], ...]] = {
    "Z": (("Etc/UTC", 0),),
    "MET": (("Europe/Brussels", 1),),
    "MEST": (("Europe/Brussels", 2),),
    "GST": (("Asia/Dubai", 4),),
    "NPT": (("Asia/Kathmandu", 5.75),),
    "ICT": (("Asia/Bangkok", 7), ("Asia/Ho_Chi_Minh", 7)),
    "SGT": (("Asia/Singapore", 8),),
    "PHT": (("Asia/Manila", 8),),
    "TRT": (("Europe/Istanbul", 3),),
    "BRT": (("America/Sao_Paulo", -3),),
    "ART": (("America/Argentina/Buenos_Aires", -3),),
    "CLT": (("America/Santiago", -4),),
    "CLST": (("America/Santiago", -3),),
    "COT": (("America/Bogota", -5),),
    "PET": (("America/Lima", -5),),
}

_NUMERIC = re.compile(r"^([+-])(\d{2}):?(\d{2})?\Z")
_FOOTER_NAME = re.compile(r"<([^>]+)>|([A-Za-z]{3,})")


@dataclass(frozen=True)
class Meaning:
    """One reading of a stamp: in zone `key` (None: a bare numeric offset) it is instant `at`."""

    key: str | None
    offset: timedelta
    at: datetime  # UTC

    @property
    def zone(self) -> tzinfo:
        return fixed(self.offset) if self.key is None else tz(self.key)


@functools.lru_cache(maxsize=64)
def fixed(offset: timedelta) -> timezone:
    return UTC if not offset else timezone(offset)


@functools.lru_cache(maxsize=1024)
def tz(key: str) -> tzinfo:
    """The zone `key` from the pinned tzdata package (zoneinfo's own search as a fallback)."""
    try:
        with _tzdata_file(key).open("rb") as f:
            return ZoneInfo.from_file(f, key=key)
    except (ModuleNotFoundError, FileNotFoundError, IsADirectoryError, ValueError):
        return ZoneInfo(key)


def numeric_offset(text: str | None) -> timedelta | None:
    """'+0530', '-03:00', '+01' -> the offset they spell; None for anything else."""
    match = _NUMERIC.match((text or "").strip())
    if not match:
        return None
    minutes = int(match[2]) * 60 + int(match[3] or 0)
    return timedelta(minutes=minutes if match[1] == "+" else -minutes)


def offset_name(offset: timedelta) -> str:
    """timedelta(hours=5, minutes=30) -> '+05:30'; zero -> '+00:00'."""
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{rest:02d}"


def known(abbreviation: str) -> bool:
    """Whether any zone of the database (or LEGACY) ever printed `abbreviation`."""
    name = abbreviation.strip().upper()
    return name in _index() or name in LEGACY


@functools.lru_cache(maxsize=4096)
def meanings(abbreviation: str, local: datetime) -> tuple[Meaning, ...]:
    """Every (zone, instant) in which the naive `local` time is printed as `abbreviation`.

    Numeric abbreviations ('+03', '-0330') name their offset; they come back with the zones
    that print them (so a caller can follow DST), or as one zone-less Meaning when none does.
    Empty for abbreviations no zone uses at that time. Times in a DST gap have no meaning; in
    a repeated hour the abbreviation picks the side (01:30 CDT vs 01:30 CST).
    """
    name = abbreviation.strip().upper()
    found: dict[tuple[str | None, datetime], Meaning] = {}
    numeric = numeric_offset(name)
    if numeric is not None:
        name = _tzdata_numeric(numeric)
    for key in _index().get(name, ()):
        upper = lambda at, n=name: (at.tzname() or "").upper() == n  # noqa: E731 - "ChST"
        for meaning in _local_readings(key, local, upper):
            found.setdefault((meaning.key, meaning.at), meaning)
    for key, hours in LEGACY.get(name, ()):
        offset = timedelta(hours=hours)
        for meaning in _local_readings(key, local, lambda at, o=offset: at.utcoffset() == o):
            found.setdefault((meaning.key, meaning.at), meaning)
    if numeric is not None and not found:
        at = local.replace(tzinfo=fixed(numeric)).astimezone(UTC)
        found[(None, at)] = Meaning(None, numeric, at)
    return tuple(sorted(found.values(), key=lambda m: (m.at, m.key or "")))


def _local_readings(key: str, local: datetime, accept) -> list[Meaning]:
    zone = tz(key)
    readings = []
    for fold in (0, 1):
        at = local.replace(tzinfo=zone, fold=fold)
        instant = at.astimezone(UTC)
        # A time in a spring-forward gap does not exist; zoneinfo would still give it a reading.
        if instant.astimezone(zone).replace(tzinfo=None) != local or not accept(at):
            continue
        readings.append(Meaning(key, at.utcoffset(), instant))
    return readings


def _tzdata_numeric(offset: timedelta) -> str:
    """The tz database's spelling of a numeric abbreviation: '+03', '+0530', '-0330'."""
    text = offset_name(offset).replace(":", "")
    return text[:3] if text.endswith("00") else text


@functools.lru_cache(maxsize=1)
def _tzdata_root():
    return resources.files("tzdata")


def _tzdata_file(key: str):
    if not re.fullmatch(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*", key):
        raise ValueError(f"not a zone key: {key!r}")
    return _tzdata_root().joinpath("zoneinfo", *key.split("/"))


def _zone_keys() -> list[str]:
    try:
        listing = _tzdata_root().joinpath("zones").read_text(encoding="utf-8")
        return [line.strip() for line in listing.splitlines() if line.strip()]
    except (ModuleNotFoundError, FileNotFoundError):
        return sorted(available_timezones())


@functools.lru_cache(maxsize=1)
def _index() -> dict[str, tuple[str, ...]]:
    """Abbreviation (upper case) -> the zone keys that ever print it. Built once (≈ 600 files)."""
    users: dict[str, list[str]] = {}
    for key in _zone_keys():
        try:
            data = _tzdata_file(key).read_bytes()
        except (ModuleNotFoundError, FileNotFoundError, IsADirectoryError, ValueError):
            continue
        for name in tzif_designations(data):
            users.setdefault(name.upper(), []).append(key)
    return {name: tuple(keys) for name, keys in users.items()}


def tzif_designations(data: bytes) -> set[str]:
    """The time-zone designations (abbreviations) a TZif file uses, footer included (RFC 8536)."""
    if data[:4] != b"TZif":
        return set()
    names, start = _tzif_block(data, 0, 4)
    if data[4:5] not in (b"\x00", b""):  # version 2+: a second block with 64-bit times follows
        names, footer_start = _tzif_block(data, start, 8)
        footer = data[footer_start:].strip(b"\n").decode("ascii", "replace")
        names |= {m[1] or m[2] for m in _FOOTER_NAME.finditer(footer.split(",")[0])}
    return names


def _tzif_block(data: bytes, at: int, time_size: int) -> tuple[set[str], int]:
    """Designations of one TZif data block starting at header offset `at`; and the block's end."""
    isut, isstd, leap, times, types, chars = struct.unpack(">6l", data[at + 20 : at + 44])
    types_at = at + 44 + times * (time_size + 1)
    chars_at = types_at + types * 6
    table = data[chars_at : chars_at + chars]
    names = set()
    for i in range(types):
        index = data[types_at + i * 6 + 5]
        names.add(table[index : table.index(b"\0", index)].decode("ascii", "replace"))
    end = chars_at + chars + leap * (time_size + 4) + isstd + isut
    return names, end
