"""Ambiguous abbreviations on pages whose feed states its dates in UTC, as Statuspage's Atom does
("…Z", see ../shared/fixtures/statuspage/*.atom): the dates say nothing about the page's zone,
so an abbreviation takes the meaning that fits the entry (the newest update is the item date; a
page has one zone), never the offset of the "Z". Whole `feed inspect --json` outputs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from notifier.feed import parse_feed

from .feedcases import ASIA_ATOM, US_ATOM, ZONES, Case
from .feedgen import VARIANTS, Incident, Page, Post, utc
from .test_feed_zones import ZONE_ENTRIES, entry, inspect

# Each case as served (Atom, UTC dates), and the same page in RSS and Atom with its own offsets.
SHAPES = [("atom", "utc"), ("rss", "local"), ("atom", "local"), ("rss", "utc")]


def shaped(case: Case, dates: str) -> Case:
    return replace(case, page=replace(case.page, dates=dates))


US_PAYLOADS = {
    "pacific": [
        entry(
            "pacmaint0001",
            "Database maintenance",
            [("scheduled", "2026-01-20T17:00:00Z", "We will upgrade it.")],
            kind="maintenance",
        ),
        entry(
            "pacspring001",
            "Voice outage on the US West Coast",
            [
                ("resolved", "2026-03-08T17:20:00Z", "Calls connect again."),
                ("identified", "2026-03-08T09:50:00Z", "A carrier route failed."),
                ("investigating", "2026-03-07T22:15:00Z", "Calls fail."),
            ],
        ),
        entry(
            "pacwinter001",
            "SMS delays in North America",
            [
                ("postmortem", "2026-01-15T18:10:00Z", "Root cause: a full queue."),
                ("resolved", "2026-01-15T02:10:00Z", "Delivery is back to normal."),
                ("monitoring", "2026-01-14T23:45:00Z", "A fix is in place."),
                ("identified", "2026-01-14T19:05:00Z", "A queue is full."),
                ("investigating", "2026-01-14T09:40:00Z", "SMS are delayed."),
            ],
        ),
    ],
    "central": [
        entry(
            "ctrautumn001",
            "Voice delays",
            [
                ("resolved", "2026-11-02T15:00:00Z", "Fixed."),
                ("update", "2026-11-01T07:30:00Z", "Still slow."),
                ("identified", "2026-11-01T06:45:00Z", "Found it."),
                ("investigating", "2026-10-31T20:00:00Z", "Looking."),
            ],
        ),
        entry(
            "ctrsummer001",
            "SMS delays to Cuba",
            [
                ("postmortem", "2026-07-21T04:10:00Z", "Root cause: a route flap."),
                ("resolved", "2026-07-21T03:10:00Z", "Delivery is back to normal."),
                ("monitoring", "2026-07-20T23:55:00Z", "A fix is in place."),
                ("investigating", "2026-07-20T21:30:00Z", "SMS are delayed."),
            ],
        ),
        entry(
            "ctrwinter001",
            "Email delivery delays",
            [
                ("postmortem", "2026-01-15T12:30:00Z", "Root cause: a slow disk."),
                ("resolved", "2026-01-14T22:30:00Z", "Mail flows again."),
                ("update", "2026-01-14T20:05:00Z", "Queues are draining."),
                ("identified", "2026-01-14T17:15:00Z", "A disk is slow."),
                ("investigating", "2026-01-14T15:40:00Z", "Mail is delayed."),
            ],
        ),
    ],
    "eastern": [
        entry(
            "eastspring01",
            "API errors",
            [
                ("resolved", "2026-03-09T14:00:00Z", "Errors stopped."),
                ("monitoring", "2026-03-08T07:30:00Z", "Errors are rare."),
                ("investigating", "2026-03-08T06:50:00Z", "Errors rise."),
            ],
        ),
        entry(
            "eastwinter01",
            "Slow dashboard",
            [
                ("resolved", "2026-01-14T21:00:00Z", "Fast again."),
                ("identified", "2026-01-14T15:20:00Z", "A cache is cold."),
                ("investigating", "2026-01-14T13:05:00Z", "Pages load slowly."),
            ],
        ),
    ],
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("fmt", "dates"), SHAPES)
@pytest.mark.parametrize("name", US_ATOM)
def test_us_pages_read_their_own_zone_whatever_offset_the_dates_are_written_in(
    runner, tmp_path, name, fmt, dates, variant
):
    payload = inspect(runner, tmp_path, shaped(US_ATOM[name], dates), fmt, variant)
    assert payload == {"format": fmt, "entries": US_PAYLOADS[name]}


@pytest.mark.parametrize(("fmt", "dates"), SHAPES)
def test_a_pacific_window_in_utc_dates_is_read_in_the_pages_zone(fmt, dates):
    # "Jan 24, 06:00 - 09:00 PST": the end is US Pacific (the page's zone, told by the scheduled
    # post, which is the entry's `updated`), not Manila and not UTC; the start follows it.
    maintenance = parse_feed(shaped(US_ATOM["pacific"], dates).body(fmt)).entries[0]
    assert (
        maintenance.scheduled_start,
        maintenance.scheduled_end,
        maintenance.time_doubts,
    ) == (utc(2026, 1, 24, 14, 0), utc(2026, 1, 24, 17, 0), ())


ASIA_PAYLOADS = {
    "cst-china": entry(
        "cstchinautc1",
        "SMS delays",
        [
            ("resolved", "2026-01-14T10:00:00Z", "Delivery is back to normal."),
            ("identified", "2026-01-13T20:00:00Z", "A route failed."),
            ("investigating", "2026-01-13T14:00:00Z", "We are investigating."),
        ],
    ),
    "pst-philippines": entry(
        "pstphilutc01",
        "SMS delays",
        [
            ("resolved", "2026-01-14T18:00:00Z", "Delivery is back to normal."),
            ("identified", "2026-01-14T02:00:00Z", "A route failed."),
            ("investigating", "2026-01-13T23:15:00Z", "We are investigating."),
        ],
    ),
    "ist-india": entry(
        "istindiautc1",
        "SMS delays",
        [
            ("resolved", "2026-07-14T09:30:00Z", "Delivery is back to normal."),
            ("update", "2026-07-14T05:00:00Z", "Still delayed."),
            ("investigating", "2026-07-14T03:15:00Z", "We are investigating."),
        ],
    ),
    "ist-ireland": entry(
        "istirelautc1",
        "SMS delays",
        [
            ("resolved", "2026-07-14T20:00:00Z", "Delivery is back to normal."),
            ("investigating", "2026-07-14T12:40:00Z", "We are investigating."),
        ],
    ),
    "ist-israel": entry(
        "istisrautc01",
        "SMS delays",
        [
            ("resolved", "2026-01-14T08:00:00Z", "Delivery is back to normal."),
            ("investigating", "2026-01-13T23:45:00Z", "We are investigating."),
        ],
    ),
}


@pytest.mark.parametrize(("fmt", "dates"), SHAPES)
@pytest.mark.parametrize("name", ASIA_ATOM)
def test_an_update_that_another_meaning_puts_on_the_item_date_keeps_the_pages_zone(
    runner, tmp_path, name, fmt, dates
):
    payload = inspect(runner, tmp_path, shaped(ASIA_ATOM[name], dates), fmt)
    assert payload == {"format": fmt, "entries": [ASIA_PAYLOADS[name]]}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", [name for name in ZONES if name != "unknown-uzt"])
def test_each_abbreviation_case_in_atom_with_utc_dates(runner, tmp_path, name, variant):
    payload = inspect(runner, tmp_path, shaped(ZONES[name], "utc"), "atom", variant)
    assert payload == {"format": "atom", "entries": [ZONE_ENTRIES[name]]}


def test_an_unknown_abbreviation_in_utc_dates_takes_the_stated_offset_and_is_flagged(
    runner, tmp_path
):
    # No table knows "UZT", so the entry's stated offset is all there is; in Atom that is the
    # "Z" of its dates. The time is flagged and the zone reported, as the issue asks.
    doubt = "no time zone is known by that name; read with the entry's offset +00:00"
    payload = inspect(runner, tmp_path, shaped(ZONES["unknown-uzt"], "utc"), "atom")
    assert payload == {
        "format": "atom",
        "entries": [
            entry(
                "uztunkno0001",
                "SMS delays",
                [
                    ("resolved", "2026-07-14T10:00:00Z", "Delivery is back to normal."),
                    ("investigating", "2026-07-14T09:15:00Z", "We are investigating delays."),
                ],
                time_doubt=[f"Jul 14, 10:00 UZT: {doubt}", f"Jul 14, 09:15 UZT: {doubt}"],
            )
        ],
    }


# Found by the property: Havana (CST, -05:00) posts a maintenance one hour before its window.
# Read as US Central (-06:00) the post falls on the item date, which for an upcoming window is its
# start; read as Havana the window's start does. The window decides while it lies ahead; once it
# is over, the item date is the newest update again (here a window of one hour, completed on
# time, whose start read as US Central falls on the item date).
HAVANA = Page(zone="America/Havana", dates="utc")
HAVANA_WINDOW = (utc(2026, 1, 15, 1, 0), utc(2026, 1, 15, 2, 0))  # Jan 14, 20:00 - 21:00 CST
HAVANA_CASES = {
    "scheduled": Incident(
        key="havana000001",
        title="Database maintenance",
        kind="maintenance",
        posts=(Post("scheduled", utc(2026, 1, 15, 0, 0), "We will upgrade it."),),
        window=HAVANA_WINDOW,
    ),
    "completed": Incident(
        key="havana000002",
        title="Database maintenance",
        kind="maintenance",
        posts=(
            Post("completed", utc(2026, 1, 15, 2, 0), "Done."),
            Post("in_progress", utc(2026, 1, 15, 1, 0), "Started."),
            Post("scheduled", utc(2026, 1, 15, 0, 0), "We will upgrade it."),
        ),
        published=utc(2026, 1, 15, 2, 0),
        window=HAVANA_WINDOW,
    ),
}
HAVANA_UPDATES = {
    "scheduled": [("scheduled", "2026-01-15T00:00:00Z", "We will upgrade it.")],
    "completed": [
        ("completed", "2026-01-15T02:00:00Z", "Done."),
        ("in_progress", "2026-01-15T01:00:00Z", "Started."),
        ("scheduled", "2026-01-15T00:00:00Z", "We will upgrade it."),
    ],
}


@pytest.mark.parametrize(("fmt", "dates"), SHAPES)
@pytest.mark.parametrize("name", HAVANA_CASES)
def test_a_window_an_hour_after_its_post_is_read_in_the_pages_zone(
    runner, tmp_path, name, fmt, dates
):
    case = Case(replace(HAVANA, dates=dates), (HAVANA_CASES[name],))
    key = HAVANA_CASES[name].key
    assert inspect(runner, tmp_path, case, fmt) == {
        "format": fmt,
        "entries": [entry(key, "Database maintenance", HAVANA_UPDATES[name], kind="maintenance")],
    }
    (parsed,) = parse_feed(case.body(fmt)).entries
    assert (parsed.scheduled_start, parsed.scheduled_end, parsed.time_doubts) == (
        *HAVANA_WINDOW,
        (),
    )
