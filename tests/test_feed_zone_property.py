"""Property: on a page in any IANA zone, at any date, parsing finds the exact UTC instants again.

A page's zone decides everything the parser sees about time: its stamps carry the zone's own
abbreviation at that moment (CST, IST, "+03", ChST, …, as Rails' %Z prints them) and its entry
dates carry the zone's real offset, or are written in UTC ("Z"), as Statuspage's Atom writes them
whatever the page's zone; then only the dates' instants can tell the zone (the newest update is
the item date, a page has one zone). Dates are drawn uniformly from 2001-2036, or right around one
of the zone's own offset changes (DST switches, found by bisection), or around New Year; some
incidents get a postmortem days or weeks after their item date, some are maintenance windows.
Stamps the page itself prints ambiguously (a time in a repeated hour whose two readings share
one abbreviation, or a window start printed without its zone in a repeated hour) are skipped: no
reader can tell those apart for sure. So is a page that another zone would have printed the same
way and that fits everything the feed states just as well (`another_zone_fits`: Seoul and
Pyongyang both print KST and were both +09:00 on the day Pyongyang moved from +08:30); there the
parser must either be exact or flag the entry's times as unsure, never be silently wrong.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from notifier.feed import parse_feed
from notifier.zones import meanings

from .feedgen import (
    FORMATS,
    VARIANTS,
    Incident,
    Page,
    Post,
    published_of,
    render,
    updated_of,
    zone_of,
)

ZONES = sorted(
    line.strip()
    for line in resources.files("tzdata").joinpath("zones").read_text().splitlines()
    if line.strip()
)
FIRST, LAST = datetime(2001, 1, 1, tzinfo=UTC), datetime(2036, 12, 31, tzinfo=UTC)
STATUSES = ("investigating", "identified", "monitoring", "update", "resolved")


def minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def offset_change_near(zone, start: datetime) -> datetime:
    """The zone's first offset change within a year after `start` (to the minute), or `start`."""
    before = start.astimezone(zone).utcoffset()
    low = start
    for step in range(1, 25):
        high = start + timedelta(days=15 * step)
        if high.astimezone(zone).utcoffset() != before:
            while high - low > timedelta(minutes=1):
                middle = minute(low + (high - low) / 2)
                if middle.astimezone(zone).utcoffset() == before:
                    low = middle
                else:
                    high = middle
            return high
        low = high
    return start


@st.composite
def anchors(draw, zone):
    """An instant: anywhere, at one of the zone's offset changes, or at New Year (local)."""
    start = draw(st.datetimes(FIRST.replace(tzinfo=None), LAST.replace(tzinfo=None)))
    start = minute(start.replace(tzinfo=UTC))
    kind = draw(st.sampled_from(("anywhere", "offset change", "new year")))
    if kind == "offset change":
        return offset_change_near(zone, start)
    if kind == "new year":
        local = datetime(start.year, 12, 31, 23, 30, tzinfo=zone)
        return local.astimezone(UTC)
    return start


def printed_ambiguously(zone, at: datetime, with_zone: bool = True) -> bool:
    """Whether the zone prints another instant the same way: same local time and (when
    printed) abbreviation."""
    local = at.astimezone(zone)
    naive, name = local.replace(tzinfo=None), local.tzname()
    readings = set()
    for fold in (0, 1):
        candidate = naive.replace(tzinfo=zone, fold=fold)
        if candidate.tzname() == name or not with_zone:
            readings.add(candidate.astimezone(UTC))
    return len(readings) > 1


@st.composite
def pages(draw):
    """(page, incident) with posts around an anchor, maybe a late postmortem or a window."""
    key = draw(st.sampled_from(ZONES))
    zone = zone_of(key)
    anchor = draw(anchors(zone))
    spread = st.integers(min_value=-36 * 60, max_value=36 * 60)
    times = sorted(
        {anchor + timedelta(minutes=draw(spread)) for _ in range(draw(st.integers(1, 5)))},
        reverse=True,
    )
    assume(all(FIRST <= t <= LAST for t in times))
    posts = [Post(draw(st.sampled_from(STATUSES)), t, f"Post {i}.") for i, t in enumerate(times)]
    shape = draw(st.sampled_from(("incident", "late postmortem", "maintenance")))
    published = window = None
    if shape == "late postmortem":
        # The item date stays the resolution; the postmortem comes days or weeks later.
        published = times[0] + timedelta(seconds=21)
        later = times[0] + timedelta(minutes=draw(st.integers(60, 30 * 24 * 60)))
        posts.insert(0, Post("postmortem", later, "Root cause."))
    elif shape == "maintenance":
        start = times[0] + timedelta(minutes=draw(st.integers(60, 40 * 24 * 60)))
        window = (start, start + timedelta(minutes=draw(st.integers(30, 12 * 60))))
        assume(not any(printed_ambiguously(zone, t) for t in window))
        # The banner prints the start without its zone when both ends fall on one day; in a
        # repeated hour such a start is either hour (the parser flags it unless `published`,
        # the start of an upcoming window, alone coincides with one reading).
        one_day = window[0].astimezone(zone).date() == window[1].astimezone(zone).date()
        assume(not (one_day and printed_ambiguously(zone, window[0], with_zone=False)))
        posts = [Post("scheduled", t, p.text) for t, p in zip(times, posts, strict=True)]
    assume(not any(printed_ambiguously(zone, p.at) for p in posts))
    incident = Incident(
        key="prop00000001",
        title="Property incident",
        kind="maintenance" if window else "incident",
        posts=tuple(posts),
        published=published,
        window=window,
    )
    return Page(zone=key, dates=draw(st.sampled_from(("local", "utc")))), incident


def _coincides(at: datetime, reference: datetime) -> bool:
    return timedelta(0) <= reference - at < timedelta(minutes=1)


def another_zone_fits(page: Page, incident: Incident, fmt: str) -> bool:
    """Whether another zone prints every stamp of the entry the same way, has the offset of each
    date the feed states with a non-zero one (a "Z" says nothing, as for the parser), and puts
    each stamp that falls on one of the entry's dates there too, yet puts some update or window
    end at another instant: then no reader can tell the page's zone from that one."""
    zone = zone_of(page.zone)
    references = [published_of(incident)]
    if fmt == "atom":
        references.append(updated_of(incident))
    stated = [(r, r.astimezone(zone).utcoffset()) for r in references if page.dates == "local"]
    events = [(p.at, True) for p in incident.posts]
    if incident.window:
        start, end = incident.window
        one_day = start.astimezone(zone).date() == end.astimezone(zone).date()
        events += [(start, not one_day), (end, True)]

    def readings(key: str, at: datetime, zoned: bool) -> set[datetime]:
        local = at.astimezone(zone)
        naive = local.replace(tzinfo=None)
        if zoned:
            return {m.at for m in meanings(local.tzname(), naive) if m.key == key}
        other = zone_of(key)
        found = set()
        for fold in (0, 1):
            instant = naive.replace(tzinfo=other, fold=fold).astimezone(UTC)
            if instant.astimezone(other).replace(tzinfo=None) == naive:
                found.add(instant)
        return found

    first = incident.posts[0].at.astimezone(zone)
    keys = {m.key for m in meanings(first.tzname(), first.replace(tzinfo=None))} - {None}
    for key in keys:
        other = zone_of(key)
        if any(offset and r.astimezone(other).utcoffset() != offset for r, offset in stated):
            continue
        found = [readings(key, at, zoned) for at, zoned in events]
        if not all(found):
            continue  # it does not print one of the stamps so
        if any(
            _coincides(at, r) and not any(_coincides(x, r) for x in there)
            for (at, _), there in zip(events, found, strict=True)
            for r in references
        ):
            continue  # a stamp falls on an entry date in the page's zone, not in that one
        if any(there != {at} for (at, _), there in zip(events, found, strict=True)):
            return True
    return False


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    case=pages(),
    fmt=st.sampled_from(FORMATS),
    variant=st.sampled_from(VARIANTS),
)
def test_any_zone_at_any_date_gives_the_exact_utc_instants(case, fmt, variant):
    page, incident = case
    (entry,) = parse_feed(render(fmt, page, [incident], variant=variant)).entries
    got = (
        [(u.status, u.at) for u in entry.updates],
        (entry.scheduled_start, entry.scheduled_end),
    )
    truth = ([(p.status, p.at) for p in incident.posts], incident.window or (None, None))
    if another_zone_fits(page, incident, fmt):
        # No reader can tell the two zones apart: either right, or flagged as unsure.
        assert got == truth or entry.time_doubts
    else:
        assert (got, entry.time_doubts) == (truth, ())
