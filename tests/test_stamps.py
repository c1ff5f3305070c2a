"""notifier.stamps and notifier.zones on their own: what an abbreviation means where, and what
happens when the entry's own offsets cannot settle it (the time is flagged, not guessed)."""

from __future__ import annotations

from datetime import datetime, timedelta
from importlib import resources

import pytest

from notifier.feed import Update, parse_updates
from notifier.stamps import EntryDates, Stated, stated_date
from notifier.zones import meanings, offset_name, tz, tzif_designations

from .feedgen import utc
from .test_feed_parse import stamp

H = timedelta(hours=1)


def offsets(abbreviation: str, local: datetime) -> list[str]:
    return sorted({offset_name(m.offset) for m in meanings(abbreviation, local)})


@pytest.mark.parametrize(
    ("abbreviation", "local", "expected"),
    [
        ("CST", datetime(2026, 1, 14, 10), ["+08:00", "-05:00", "-06:00"]),  # China, Cuba, US
        ("CST", datetime(2026, 7, 14, 10), ["+08:00", "-06:00"]),  # Chicago is CDT in July
        ("IST", datetime(2026, 1, 14, 10), ["+02:00", "+05:30"]),  # Israel, India
        ("IST", datetime(2026, 7, 14, 10), ["+01:00", "+05:30"]),  # Ireland, India
        ("PST", datetime(2026, 1, 14, 10), ["+08:00", "-08:00"]),  # Philippines, US Pacific
        ("EAT", datetime(2026, 7, 14, 10), ["+03:00"]),
        ("ChST", datetime(2026, 7, 14, 10), ["+10:00"]),  # Guam, mixed case as tzdata spells it
        ("SGT", datetime(2026, 7, 14, 10), ["+08:00"]),  # retired by tzdata, kept as LEGACY
        ("+0545", datetime(2026, 7, 14, 10), ["+05:45"]),
        ("CEST", datetime(2026, 1, 14, 10), []),  # nobody is on summer time in January
        ("CEST", datetime(2026, 3, 29, 2, 30), []),  # the hour Europe skips does not exist
        ("UZT", datetime(2026, 7, 14, 10), []),
    ],
)
def test_meanings_come_from_the_tz_database_at_that_local_time(abbreviation, local, expected):
    assert offsets(abbreviation, local) == expected


def test_tzif_designations_are_read_from_the_pinned_tzdata_files():
    data = resources.files("tzdata").joinpath("zoneinfo", "America", "Chicago").read_bytes()
    # Local mean time, standard, daylight, war and peace time: every name it ever printed.
    assert tzif_designations(data) == {"LMT", "CST", "CDT", "EST", "CWT", "CPT"}
    assert tzif_designations(b"not a tzif file") == set()
    assert tz("America/Chicago").key == "America/Chicago"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-07-14T10:00:00+08:00", Stated(utc(2026, 7, 14, 2, 0), 8 * H)),
        ("2022-07-28T04:21:45Z", Stated(utc(2022, 7, 28, 4, 21, 45), timedelta(0))),
        ("Tue, 14 Jul 2026 10:00:00 +0800", Stated(utc(2026, 7, 14, 2, 0), 8 * H)),
        ("Wed, 24 Dec 2025 11:21:00 -0800", Stated(utc(2025, 12, 24, 19, 21), -8 * H)),
        ("Tue, 14 Jul 2026 10:00:00 -0000", None),  # RFC 2822: offset unknown
        ("2026-07-14T10:00:00", None),
        ("", None),
        ("yesterday", None),
    ],
)
def test_stated_dates_keep_the_offset_they_were_written_in(text, expected):
    assert stated_date(text) == expected


def dates(*stated: tuple[datetime, timedelta]) -> EntryDates:
    return EntryDates(
        references=tuple(at for at, _ in stated), stated=tuple(Stated(*s) for s in stated)
    )


def test_dates_stated_in_utc_never_make_an_ambiguous_stamp_read_as_utc():
    # Atom states its dates in UTC ("Z") whatever the page's zone: +00:00 is none of CST's
    # meanings (+08:00 China, -06:00 Central America in July), so it is no evidence for either.
    # The stamp takes the meaning nearest to the entry's dates, flagged (nothing settles it).
    problems: list[str] = []
    doubts: list[str] = []
    updates, _ = parse_updates(
        stamp("Jul", 14, "10:00", "CST", "Update", "x"),
        utc(2026, 7, 14, 12, 0, 30),
        problems,
        dates=dates((utc(2026, 7, 14, 12, 0, 30), timedelta(0))),
        doubts=doubts,
    )
    assert (updates, problems, doubts) == (
        (Update("update", utc(2026, 7, 14, 16, 0), "x"),),
        [],
        [
            "Jul 14, 10:00 CST: CST means +08:00, -06:00 and none agrees with the entry's dates;"
            " read with -06:00, nearest to the entry's dates"
        ],
    )


def test_an_update_on_the_item_date_settles_the_zone_of_the_others_in_utc_dates():
    # /tmp/rv/pst.py: published 18:30Z is "10:30 PST" in Los Angeles, so the page is US Pacific
    # and "09:00 PST" is 17:00Z, not 09:00Z (UTC) and not 01:00Z (Manila).
    content = "".join(
        stamp("Jan", 14, hhmm, "PST", status, status)
        for hhmm, status in (("10:30", "Resolved"), ("09:00", "Identified"), ("08:00", "Found"))
    )
    doubts: list[str] = []
    published = utc(2026, 1, 14, 18, 30)
    updates, _ = parse_updates(
        content, published, dates=dates((published, timedelta(0))), doubts=doubts
    )
    assert (updates, doubts) == (
        (
            Update("resolved", utc(2026, 1, 14, 18, 30), "Resolved"),
            Update("identified", utc(2026, 1, 14, 17, 0), "Identified"),
            Update("found", utc(2026, 1, 14, 16, 0), "Found"),
        ),
        [],
    )


def test_without_stated_offsets_the_reading_nearest_to_the_entry_is_used_and_flagged():
    doubts: list[str] = []
    updates, _ = parse_updates(
        stamp("Jul", 14, "10:00", "IST", "Update", "x"), utc(2026, 7, 14, 9, 30), doubts=doubts
    )
    assert (updates, doubts) == (
        (Update("update", utc(2026, 7, 14, 9, 0), "x"),),
        [
            "Jul 14, 10:00 IST: IST means +01:00, +05:30 and none agrees with the entry's dates;"
            " read with +01:00, nearest to the entry's dates"
        ],
    )


def test_numeric_stamps_are_offsets_the_page_states_for_the_others():
    content = stamp("Jul", 14, "10:00", "+08", "Resolved", "b") + stamp(
        "Jul", 14, "09:00", "CST", "Investigating", "a"
    )
    doubts: list[str] = []
    updates, _ = parse_updates(content, utc(2026, 7, 14, 5, 0), doubts=doubts)
    assert (updates, doubts) == (
        (
            Update("resolved", utc(2026, 7, 14, 2, 0), "b"),
            Update("investigating", utc(2026, 7, 14, 1, 0), "a"),
        ),
        [],
    )


def test_a_window_end_in_an_unknown_zone_takes_each_end_its_nearest_stated_offset():
    # Published at the start (01:00 +01:00), updated after the switch (05:00 +02:00).
    banner = (
        "<p><strong>THIS IS A SCHEDULED EVENT Mar <var data-var='date'>28</var>, "
        "<var data-var='time'>01:00</var> - <var data-var='time'>04:00</var> XYZ</strong></p>"
    )
    doubts: list[str] = []
    problems: list[str] = []
    entry = dates((utc(2027, 3, 28, 0, 0), H), (utc(2027, 3, 28, 3, 0), 2 * H))
    _, window = parse_updates(banner, utc(2027, 3, 28, 3, 0), problems, dates=entry, doubts=doubts)
    assert (window, problems, doubts) == (
        (utc(2027, 3, 28, 0, 0), utc(2027, 3, 28, 2, 0)),
        ["unknown time zone 'XYZ', read as UTC+02:00 (the entry's offset)"],
        [
            "Mar 28, 04:00 XYZ: no time zone is known by that name;"
            " read with the entry's offset +02:00"
        ],
    )
