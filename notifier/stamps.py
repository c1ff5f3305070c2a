"""Statuspage time stamps ("Jul 14, 10:00 CST") read into UTC instants. Pure: values in and out.

A stamp has no year and names its zone by abbreviation, and several abbreviations are ambiguous
(notifier.zones). Both gaps are filled from what the entry itself states in machine-readable form
(`EntryDates`): its dates (Atom published/updated, RSS pubDate) with the UTC offset they were
written in, which is the page's own zone, and the feed's own date. The rules (issue 10):

- Year: the one that puts the stamp nearest to the entry's dates, and not after the feed's own
  date (nothing on a page is posted after the page was generated). Postmortems posted days or
  weeks after the item date, and December posts in an entry dated January, both fall out of it.
- Zone: every zone that prints the abbreviation at that local time is a candidate. A date the
  entry states with a non-zero offset is the page's own offset then: candidates whose offset at
  that instant differs are out, and when the ones it confirms give one instant, that is the
  time. A date stated in UTC ("Z", "+0000") is no such evidence: Statuspage's Atom writes every
  date in UTC whatever the page's zone (../shared/fixtures/statuspage/*.atom), so it counts only
  for a candidate whose own offset is 0, and only in the last step below.
- The entry's newest update that is not a postmortem (its anchor) was posted at the entry's
  `published` to the minute: the candidates that coincide with it (or with `updated`) give the
  page's zone. Only the anchor is read this way at first; an older update that another meaning
  happens to put on the item date would mislead. An upcoming maintenance is published at its
  window's start instead: the zones in which the banner's start is an entry date
  (`window_zones`) come first there.
- A page has one zone: the zones the entry's sure stamps were read in decide the others
  (`read_stamps`). Only when nothing is sure does any stamp that coincides decide.
- Otherwise the time is unsure and carries a `doubt` (one line naming the stamp): it takes the
  candidate whose offset is the entry's stated offset nearest in time, else the candidate
  nearest to the entry's dates; never an offset that is none of the abbreviation's meanings.
  Only a stamp without a zone, or with an abbreviation no table knows, is read with the stated
  offset itself (UTC without one), and the latter is reported as a problem too.
- A maintenance banner ("Mar 28, 01:00 - 04:00 CEST") names one zone for both ends; the end is
  read in the page's zones, the start in the zones the end was read in, so a DST switch inside
  the window moves the offset.
- A date or time outside the years 1-9999 in UTC raises OverflowError (the caller skips the
  entry); datetime cannot hold it.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import cached_property

from . import zones
from .zones import Meaning, fixed, offset_name

MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
# Nothing is posted after the feed's own date; the slack covers reading a local time as UTC
# while choosing the year (offsets reach ±14 h) and clocks that are a little off.
_LATEST_SLACK = timedelta(days=2)
_MINUTE = timedelta(minutes=1)
# A DST step: what a banner's start may differ from its end by without being another zone.
_DST_STEP = timedelta(hours=1)


@dataclass(frozen=True)
class Stated:
    """A date the feed states with an offset: the instant (UTC) and the offset it was written in."""

    at: datetime
    offset: timedelta


@dataclass(frozen=True)
class EntryDates:
    """What an entry says about time besides its stamps.

    `references`: UTC instants its updates lie near (published, updated; the feed's date when
    the entry has none). `stated`: the dates written with an offset (the page's zone at that
    instant). `latest`: the feed's own date, after which nothing can have been posted, or None.
    """

    references: tuple[datetime, ...]
    stated: tuple[Stated, ...] = ()
    latest: datetime | None = None

    def with_stated(self, extra: Iterable[Stated]) -> EntryDates:
        return replace(self, stated=(*self.stated, *extra))

    @cached_property
    def _naive_references(self) -> tuple[datetime, ...]:
        # Year choice compares naive local times with these; computed once per entry.
        return tuple(r.astimezone(UTC).replace(tzinfo=None) for r in self.references)

    @cached_property
    def _ceiling(self) -> datetime | None:
        if self.latest is None:
            return None
        try:
            return (self.latest + _LATEST_SLACK).astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # a feed dated Dec 30, 9999 or later: nothing lies after it
            return None


@dataclass(frozen=True)
class Stamp:
    """A stamp as printed: month name, day, hour, minute and the zone text (or None)."""

    mon: str
    day: str
    hh: str
    mm: str
    zone: str | None

    @property
    def label(self) -> str:
        """'Jul 14, 10:00 CST', for doubts and problems."""
        text = f"{self.mon[:3].title()} {int(self.day)}, {int(self.hh):02d}:{self.mm}"
        return f"{text} {self.zone}" if self.zone else text

    @cached_property
    def _fields(self) -> tuple[int, int, int, int]:
        month = MONTHS.get(self.mon[:3].lower())
        if month is None:
            raise ValueError(f"unknown month {self.mon!r}")
        return month, int(self.day), int(self.hh), int(self.mm)

    def local(self, year: int) -> datetime | None:
        """The naive local time in `year`; None where it does not exist (Feb 29, Apr 31).

        ValueError for a month name that is not one.
        """
        month, day, hh, mm = self._fields
        try:
            return datetime(year, month, day, hh, mm)
        except ValueError:
            return None


@dataclass(frozen=True)
class Reading:
    """A stamp read: the instant, the offset used, the agreeing zones, and any doubt or problem."""

    at: datetime
    offset: timedelta
    zones: tuple[Meaning, ...] = ()  # the zones that print it so (and agree with the page)
    doubt: str | None = None
    problem: str | None = None


def stated_date(value: str | None) -> Stated | None:
    """An Atom (RFC 3339) or RSS (RFC 822) date string -> Stated; None without a usable offset.

    OverflowError when its instant in UTC lies outside the years 1-9999.
    """
    text = (value or "").strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    offset = parsed.utcoffset()
    if offset is None:  # RFC 822 "-0000": the offset is unknown
        return None
    return Stated(parsed.astimezone(UTC), offset)


def read_stamps(
    stamps: Sequence[Stamp],
    dates: EntryDates,
    anchor: int | None = 0,
    hint: frozenset[str] | None = None,
) -> list[Reading]:
    """An entry's stamps (newest first) -> one Reading each (see the module docstring).

    `anchor`: the index of the stamp the entry's `published` was taken at (its newest update
    that is not a postmortem), None when it was taken at something else (an upcoming window's
    start). Only the anchor may be settled by coinciding with the entry's dates at first; the
    page's zones then settle the others, and only where nothing is sure may any stamp's
    coincidence decide. `hint`: zones known from elsewhere in the entry (window_zones); without
    an anchor they come first, else only when the stamps tell none.
    """
    first = hint if anchor is None else None
    readings = [read_update(s, dates, first, timely=i == anchor) for i, s in enumerate(stamps)]
    for _ in range(2):  # a second round when the first made more stamps sure
        if not any(r.doubt for r in readings):
            break
        within = page_zones(readings, dates) or hint
        readings = [
            read_update(s, dates, within) if r.doubt else r
            for s, r in zip(stamps, readings, strict=True)
        ]
    return readings


def read_update(
    stamp: Stamp, dates: EntryDates, within: frozenset[str] | None = None, timely: bool = True
) -> Reading:
    """An update's stamp -> Reading (see the module docstring); ValueError when it has no date.

    `within`: the zones the page's other stamps were read in (page_zones); when some of the
    abbreviation's zones are among them, only those are considered. `timely`: whether a
    meaning that coincides with the entry's dates settles it.
    """
    return read_local(stamp, _year_nearest(stamp, dates), dates, within, timely)


def read_local(
    stamp: Stamp,
    local: datetime,
    dates: EntryDates,
    within: frozenset[str] | None = None,
    timely: bool = True,
) -> Reading:
    """A stamp whose naive local time is known -> Reading, the zone chosen as documented above."""
    if not stamp.zone:
        return _unsure(stamp, local, (), dates, "it names no time zone", unknown=True)
    found = zones.meanings(stamp.zone, local)
    if not found:
        return _unsure(stamp, local, (), dates, "no time zone is known by that name", unknown=True)
    if within:
        found = tuple(m for m in found if m.key in within) or found
    if found[0].at == found[-1].at:  # sorted by instant: one instant everywhere
        return _certain(found)  # the common case: CET, UTC, EAT are one instant everywhere
    candidates = tuple(m for m in found if not _contradicted(m, dates.stated)) or found
    agreeing = tuple(m for m in candidates if _confirmed(m, dates.stated))
    if agreeing and len({m.at for m in agreeing}) == 1:
        return _certain(agreeing)
    pool = agreeing or candidates
    if timely:
        on_time = tuple(m for m in pool if _coincides(m.at, dates.references))
        if on_time and len({m.at for m in on_time}) == 1:
            return _certain(on_time)
    options = ", ".join(sorted({offset_name(m.offset) for m in found}))
    if agreeing:
        why = f"{stamp.zone} means {options} and more than one agrees with the entry's dates"
    else:
        why = f"{stamp.zone} means {options} and none agrees with the entry's dates"
    return _unsure(stamp, local, pool, dates, why)


def page_zones(readings: Iterable[Reading], dates: EntryDates) -> frozenset[str] | None:
    """The zones every sure reading of an entry fits (a page has one zone), or None.

    A stamp the offsets could not settle alone ("01:59 CST" on the morning the US switches,
    when Chicago is still -06:00 and Havana -05:00) is settled by the entry's other stamps
    ("03:00 CDT" is Chicago's, not Havana's).
    """
    common: set[str] | None = None
    for reading in readings:
        if reading.doubt:
            continue
        keyed = [m for m in reading.zones if m.key is not None]
        keys = {m.key for m in keyed if not _contradicted(m, dates.stated)}
        if keys:
            common = keys if common is None else common & keys
    return frozenset(common) if common else None


def read_window(
    start: Stamp,
    end: Stamp,
    dates: EntryDates,
    floor: datetime,
    page: Reading | None,
    within: frozenset[str] | None = None,
) -> tuple[Reading, Reading]:
    """A banner's (start, end) Readings: both after `floor` (UTC), the end after the start.

    An end with a zone is read among the page's zones (`within`, page_zones of the entry's
    updates), one without in the zones of `page` (an update of the same entry); a start
    without one in the zones its end was read in, so each end gets its own offset.
    """
    start_local = _after(start, floor.replace(tzinfo=None))
    end_local = _after(end, start_local)
    if end.zone or page is None:
        end_reading = read_local(end, end_local, dates, within)
    else:
        end_reading = _follow(end, end_local, page, dates)
    if start.zone:
        return read_local(start, start_local, dates, within), end_reading
    return _follow(start, start_local, end_reading, dates), end_reading


def window_zones(
    start: Stamp, end: Stamp, dates: EntryDates, floor: datetime
) -> frozenset[str] | None:
    """The zones in which a banner's start falls on one of the entry's dates, or None.

    An upcoming window's `published` is its start (RSS pubDate too): of the zones that print the
    end's abbreviation, those in which the start (its own zone, else the end's) coincides with
    an entry date tell the page's zone, when they agree on one start instant.
    """
    if not end.zone:
        return None
    start_local = _after(start, floor.replace(tzinfo=None))
    end_local = _after(end, start_local)
    hits: dict[datetime, set[str]] = {}
    for meaning in zones.meanings(end.zone, end_local):
        if meaning.key is None:
            continue
        if start.zone:
            own = zones.meanings(start.zone, start_local)
            starts = {m.at for m in own if m.key == meaning.key}
        else:
            starts = {at for at, _ in _wall_readings(start_local, meaning.zone)}
        for at in starts:
            if _coincides(at, dates.references):
                hits.setdefault(at, set()).add(meaning.key)
    return frozenset(next(iter(hits.values()))) if len(hits) == 1 else None


def _follow(stamp: Stamp, local: datetime, other: Reading, dates: EntryDates) -> Reading:
    """`stamp` (printed without a zone) read in the zones `other` was read in (those of them
    that agree with the entry's stated offsets, when any do)."""
    keyed = [m for m in other.zones if m.key is not None]
    keyed = [m for m in keyed if not _contradicted(m, dates.stated)] or keyed
    if keyed:
        readings = {r for m in keyed for r in _wall_readings(local, m.zone)}
        if len({at for at, _ in readings}) > 1:
            # A repeated hour (DST ends), or zones that differ here. An upcoming window's start
            # is the entry's `published`; failing that, the stated offset nearest in time.
            chosen = {r for r in readings if _coincides(r[0], dates.references)} or {
                r for r in readings if _stated_offset_at(r[0], dates) == r[1]
            }
            if len({at for at, _ in chosen}) == 1:
                readings = chosen
        if len({at for at, _ in readings}) == 1:
            ((at, offset),) = readings
            return Reading(at, offset, tuple(keyed), other.doubt)
        if readings:
            # Still more than one: it is one of them, never some other offset.
            choices = sorted((Meaning(None, o, at) for at, o in readings), key=lambda m: m.at)
            why = "that time has more than one reading there"
            return _unsure(stamp, local, choices, dates, why)
        return _unsure(stamp, local, (), dates, "that time does not exist there")
    offset = other.offset
    near = _nearest_stated(local, dates)
    # Without a zone to follow, the page's stated offset decides when it is one DST step away.
    if near and near.offset != offset and abs(near.offset - offset) <= _DST_STEP:
        offset = near.offset
    at = local.replace(tzinfo=fixed(offset)).astimezone(UTC)
    return Reading(at, offset, (), other.doubt)


def _wall_readings(local: datetime, zone) -> set[tuple[datetime, timedelta]]:
    """(instant, offset) for the naive `local` in `zone`: two in a repeated hour, none in a gap."""
    readings = set()
    for fold in (0, 1):
        at = local.replace(tzinfo=zone, fold=fold)
        instant = at.astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == local:
            readings.add((instant, at.utcoffset()))
    return readings


def _certain(meanings: Sequence[Meaning]) -> Reading:
    return Reading(meanings[0].at, meanings[0].offset, tuple(meanings))


def _unsure(
    stamp: Stamp,
    local: datetime,
    found: Sequence[Meaning],
    dates: EntryDates,
    why: str,
    unknown: bool = False,
) -> Reading:
    """A flagged Reading. With candidate meanings (`found`): the one whose offset is the entry's
    stated offset nearest in time, else the one nearest to the entry's dates. Without (no zone,
    or one no table knows): the stated offset itself, else UTC."""
    near = _nearest_stated(local, dates)
    if found:
        same = [m for m in found if near is not None and m.offset == near.offset]
        if same:
            best, how = same[0], f"the entry's offset {offset_name(same[0].offset)}"
        else:
            best = min(found, key=lambda m: _distance(m.at, dates.references))
            how = f"{offset_name(best.offset)}, nearest to the entry's dates"
        doubt = f"{stamp.label}: {why}; read with {how}"
        return Reading(best.at, best.offset, tuple(m for m in found if m.at == best.at), doubt)
    if near is not None:
        offset, how = near.offset, f"the entry's offset {offset_name(near.offset)}"
    else:
        offset, how = timedelta(0), "UTC (the entry states no offset)"
    at = local.replace(tzinfo=fixed(offset)).astimezone(UTC)
    problem = None
    if unknown:
        name = "UTC" if not offset else f"UTC{offset_name(offset)}"
        source = " (the entry's offset)" if near is not None else ""
        problem = f"unknown time zone {stamp.zone!r}, read as {name}{source}"
    return Reading(at, offset, (), f"{stamp.label}: {why}; read with {how}", problem)


def _contradicted(meaning: Meaning, stated: Sequence[Stated]) -> bool:
    """Whether a date the entry states with a non-zero offset says the page is elsewhere then.

    A date stated in UTC says nothing against a zone: Atom states every date in UTC.
    """
    zone = meaning.zone
    return any(s.offset and s.at.astimezone(zone).utcoffset() != s.offset for s in stated)


def _confirmed(meaning: Meaning, stated: Sequence[Stated]) -> bool:
    """Whether a date stated with a non-zero offset has the zone's own offset then."""
    zone = meaning.zone
    return any(s.offset and s.at.astimezone(zone).utcoffset() == s.offset for s in stated)


def _coincides(at: datetime, references: Sequence[datetime]) -> bool:
    """Stamps have minutes, dates seconds: the newest update and `published` share a minute."""
    return any(timedelta(0) <= r - at < _MINUTE for r in references)


def _distance(at: datetime, references: Sequence[datetime]) -> timedelta:
    return min((abs(at - r) for r in references), default=timedelta(0))


def _stated_offset_at(at: datetime, dates: EntryDates) -> timedelta | None:
    near = min(dates.stated, key=lambda s: abs(s.at - at), default=None)
    return None if near is None else near.offset


def _nearest_stated(local: datetime, dates: EntryDates) -> Stated | None:
    about = local.replace(tzinfo=UTC)
    return min(dates.stated, key=lambda s: abs(s.at - about), default=None)


def _year_nearest(stamp: Stamp, dates: EntryDates) -> datetime:
    """The naive local time in the year nearest to the entry's dates (see the module docstring)."""
    references = dates._naive_references
    first, last = min(references).year, max(references).year
    candidates = _in_years(stamp, first - 1, last + 1)
    if not candidates:  # Feb 29: the nearest leap year may be up to four years back
        candidates = _in_years(stamp, first - 4, last + 1)
    if not candidates:
        raise ValueError(f"cannot place {stamp.label} near {max(references):%Y-%m-%d}")
    ceiling = dates._ceiling
    if ceiling is not None:
        candidates = [c for c in candidates if c <= ceiling] or candidates
    # A plain loop: this runs for every stamp of every changed feed (≈ 180 per poll).
    best, best_distance = candidates[0], None
    for candidate in candidates:
        distance = min([abs(candidate - r) for r in references])
        if best_distance is None or distance < best_distance:
            best, best_distance = candidate, distance
    return best


def _in_years(stamp: Stamp, first: int, last: int) -> list[datetime]:
    month, day, hh, mm = stamp._fields
    found = []
    for year in range(first, last + 1):
        try:
            found.append(datetime(year, month, day, hh, mm))
        except ValueError:  # Feb 29 off leap years, Apr 31
            continue
    return found


def _after(stamp: Stamp, floor: datetime) -> datetime:
    """The naive local time in the first year that is not before the naive `floor`."""
    for year in range(floor.year - 1, floor.year + 3):
        local = stamp.local(year)
        if local is not None and local >= floor:
            return local
    raise ValueError(f"cannot place {stamp.label} after {floor:%Y-%m-%d}")
