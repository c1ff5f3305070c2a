"""A date at the edge of the calendar (year 1, year 9999) is one bad entry, not a bad feed: the
entry is skipped with a problem, the feed's other entries are read as usual. The parser passes on
only dates from 1970 to 9998 (notifier.feed.EARLIEST/LATEST): mails write four-digit years and
move times into zones up to 14 h away, which fails next to year 1 and year 9999."""

from __future__ import annotations

import html

import pytest

from notifier.feed import parse_feed

from .feedgen import utc

GOOD = (
    "good00000001",
    "2026-07-14T09:00:00Z",
    "Tue, 14 Jul 2026 09:00:00 +0000",
    "Jul 14, 09:00 UTC",
)
BAD = [
    # The dates themselves, whatever the stamps' zone.
    ("year00000003", "0001-01-01T00:00:00Z", "Mon, 01 Jan 0001 00:00:00 +0000", "Jan 1, 00:00 UTC"),
    ("year99990004", "9999-06-01T10:00:00Z", "Tue, 01 Jun 9999 10:00:00 +0000", "Jun 1, 10:00 UTC"),
    (
        "year19690001",
        "1969-12-31T23:00:00Z",
        "Wed, 31 Dec 1969 23:00:00 +0000",
        "Dec 31, 23:00 UTC",
    ),
    # Read as Manila's PST (+08:00) the stamp lies before year 1.
    ("year00000001", "0001-01-01T00:00:00Z", "Mon, 01 Jan 0001 00:00:00 +0000", "Jan 1, 00:00 PST"),
    # In UTC the date itself is in year 0 or year 10000. (RSS cannot say this one: RFC 822
    # readers take "0001" for a two-digit year, 2001 for email.utils and 800 for feedparser.)
    ("year00000002", "0001-01-01T05:00:00+08:00", None, "Jan 1, 05:00 CST"),
    (
        "year99990001",
        "9999-12-31T20:00:00-06:00",
        "Fri, 31 Dec 9999 20:00:00 -0600",
        "Dec 31, 20:00 CST",
    ),
    (
        "year99990002",
        "9999-12-31T20:00:00-06:00",
        "Fri, 31 Dec 9999 20:00:00 -0600",
        "Dec 31, 20:00 XYZ",
    ),
    # In range, but read as US Pacific (-08:00) the stamp lies after year 9999.
    (
        "year99990003",
        "9999-12-31T23:30:00Z",
        "Fri, 31 Dec 9999 23:30:00 +0000",
        "Dec 31, 23:30 PST",
    ),
]
LAST = (
    "good00000002",
    "2026-07-13T08:00:00Z",
    "Mon, 13 Jul 2026 08:00:00 +0000",
    "Jul 13, 08:00 UTC",
)


def content(stamp: str) -> str:
    return html.escape(f"<p><small>{stamp}</small><br><strong>Resolved</strong> - ok</p>")


def atom(entries, feed_updated: str = "2026-07-14T10:00:00Z") -> bytes:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<id>x</id><title>T</title><updated>{feed_updated}</updated>"
    ]
    for n, (key, iso, _, stamp) in enumerate(entries):
        parts.append(
            f"<entry><id>tag:s.example.com,2005:Incident/{n}</id><published>{iso}</published>"
            f'<updated>{iso}</updated><link rel="alternate" type="text/html" '
            f'href="https://s.example.com/incidents/{key}"/><title>t</title>'
            f'<content type="html">{content(stamp)}</content></entry>'
        )
    return ("".join(parts) + "</feed>").encode()


def rss(entries, feed_date: str = "Tue, 14 Jul 2026 10:00:00 +0000") -> bytes:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>T</title>'
        f"<link>https://s.example.com</link><pubDate>{feed_date}</pubDate>"
    ]
    for key, _, date, stamp in entries:
        parts.append(
            f"<item><title>t</title><description>{content(stamp)}</description>"
            f"<pubDate>{date}</pubDate><link>https://s.example.com/incidents/{key}</link></item>"
        )
    return ("".join(parts) + "</channel></rss>").encode()


def summary(parsed) -> list[tuple]:
    return [(e.key, [(u.status, u.at) for u in e.updates], e.time_doubts) for e in parsed.entries]


GOOD_ENTRIES = [
    ("good00000001", [("resolved", utc(2026, 7, 14, 9, 0))], ()),
    ("good00000002", [("resolved", utc(2026, 7, 13, 8, 0))], ()),
]


@pytest.mark.parametrize(
    ("build", "bad"),
    [(build, bad) for bad in BAD for build in (atom, rss) if build is atom or bad[2]],
    ids=lambda value: getattr(value, "__name__", None) or value[0],
)
def test_an_entry_dated_at_the_edge_of_the_calendar_is_skipped_not_the_feed(build, bad):
    parsed = parse_feed(build([GOOD, bad, LAST]))
    assert (summary(parsed), parsed.problems) == (
        GOOD_ENTRIES,
        (f"entry {bad[0]}: a date or time is outside the years 1970-9998; skipped",),
    )


@pytest.mark.parametrize(
    ("build", "date"),
    [
        (atom, "0001-01-01T00:00:00Z"),
        (atom, "9999-06-01T10:00:00Z"),
        (atom, "9999-12-31T20:00:00-06:00"),
        (atom, "0001-01-01T05:00:00+08:00"),
        (rss, "Fri, 31 Dec 9999 20:00:00 -0600"),
    ],
)
def test_a_feed_date_at_the_edge_of_the_calendar_is_ignored(build, date):
    parsed = parse_feed(build([GOOD, LAST], date))
    assert (summary(parsed), parsed.problems) == (
        GOOD_ENTRIES,
        (f"the feed's own date {date!r} is outside the years 1970-9998; ignored",),
    )


def test_a_feed_dated_at_the_end_of_the_range_still_reads_its_entries():
    parsed = parse_feed(atom([GOOD, LAST], "9998-12-31T23:59:59Z"))
    assert (summary(parsed), parsed.problems) == (GOOD_ENTRIES, ())


@pytest.mark.parametrize("build", [atom, rss])
def test_a_maintenance_end_date_at_the_edge_of_the_calendar_skips_only_its_entry(build):
    body = build([GOOD, LAST]).replace(
        b"<pubDate>Mon, 13 Jul",
        b"<maintenanceEndDate>Fri, 31 Dec 9999 20:00:00 -0600"
        b"</maintenanceEndDate><pubDate>Mon, 13 Jul",
    )
    parsed = parse_feed(body)
    expected = GOOD_ENTRIES if build is atom else GOOD_ENTRIES[:1]
    problems = (
        ()
        if build is atom
        else ("entry good00000002: a date or time is outside the years 1970-9998; skipped",)
    )
    assert (summary(parsed), parsed.problems) == (expected, problems)
