"""Issue 10 on generated pages: ambiguous and unknown zone abbreviations, late postmortems, DST
inside a maintenance window, literal brackets in titles. Whole `feed inspect --json` outputs."""

from __future__ import annotations

import json

import pytest

from notifier.feed import parse_feed
from notifier.render import content_from_entry, render_email

from .feedcases import BRACKET_TITLES, BRACKETS, HTML_TITLES, TITLES, WINDOWS, YEARS, ZONES, Case
from .feedgen import FORMATS, VARIANTS, Incident, Page, Post, utc

LINK = "https://status.sinch.com/incidents/"


def entry(key: str, title: str, updates: list[tuple[str, str, str]], **extra) -> dict:
    return {
        "key": key,
        "kind": extra.pop("kind", "incident"),
        "title": title,
        "link": LINK + key,
        "updates": [{"status": s, "at": at, "text": text} for s, at, text in updates],
        **extra,
    }


def inspect(runner, tmp_path, case: Case, fmt: str, variant: str = "old") -> dict:
    path = tmp_path / f"feed.{fmt}"
    path.write_bytes(case.body(fmt, variant))
    result = runner.invoke(args=["feed", "inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def sms(key: str, resolved: str, investigating: str, **extra) -> dict:
    return entry(
        key,
        "SMS delays",
        [
            ("resolved", resolved, "Delivery is back to normal."),
            ("investigating", investigating, "We are investigating delays."),
        ],
        **extra,
    )


UZT_DOUBT = "no time zone is known by that name; read with the entry's offset +05:00"
ZONE_ENTRIES = {
    "cst-china": sms("cstchina0001", "2026-07-14T02:00:00Z", "2026-07-14T01:15:00Z"),
    "cst-us-central": sms("cstusctr0001", "2026-01-14T16:00:00Z", "2026-01-14T15:15:00Z"),
    "ist-india": sms("istindia0001", "2026-07-14T04:30:00Z", "2026-07-14T03:45:00Z"),
    "ist-ireland": sms("istirela0001", "2026-07-14T09:00:00Z", "2026-07-14T08:15:00Z"),
    "ist-israel": sms("istisrae0001", "2026-01-14T08:00:00Z", "2026-01-14T07:15:00Z"),
    "pst-pacific": sms("pstpacif0001", "2026-01-14T18:00:00Z", "2026-01-14T17:15:00Z"),
    "pst-philippines": sms("pstphili0001", "2026-01-14T02:00:00Z", "2026-01-14T01:15:00Z"),
    "eat-nairobi": sms("eatnairo0001", "2026-07-14T07:00:00Z", "2026-07-14T06:15:00Z"),
    "unknown-uzt": sms(
        "uztunkno0001",
        "2026-07-14T05:00:00Z",
        "2026-07-14T04:15:00Z",
        time_doubt=[f"Jul 14, 10:00 UZT: {UZT_DOUBT}", f"Jul 14, 09:15 UZT: {UZT_DOUBT}"],
    ),
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ZONES)
def test_each_abbreviation_takes_the_meaning_the_page_states(runner, tmp_path, name, fmt, variant):
    payload = inspect(runner, tmp_path, ZONES[name], fmt, variant)
    assert payload == {"format": fmt, "entries": [ZONE_ENTRIES[name]]}


def test_an_unknown_abbreviation_is_reported_once_with_the_offset_used(runner, tmp_path):
    path = tmp_path / "feed.rss"
    path.write_bytes(ZONES["unknown-uzt"].body("rss"))
    result = runner.invoke(args=["feed", "inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "rss feed, 1 entries",
        "",
        "uztunkno0001  incident     SMS delays",
        "  2026-07-14T05:00:00Z  resolved       Delivery is back to normal.",
        "  2026-07-14T04:15:00Z  investigating  We are investigating delays.",
        f"  time doubt: Jul 14, 10:00 UZT: {UZT_DOUBT}",
        f"  time doubt: Jul 14, 09:15 UZT: {UZT_DOUBT}",
    ]
    assert result.stderr.splitlines()[-1:] == [
        "warning: entry uztunkno0001: unknown time zone 'UZT', read as UTC+05:00 "
        "(the entry's offset)"
    ]


PACIFIC_TRAIL = [
    ("resolved", "2025-12-24T19:21:00Z", "This incident has been resolved."),
    ("identified", "2025-12-24T18:05:00Z", "A gateway certificate expired."),
    ("investigating", "2025-12-24T17:40:00Z", "We are investigating delays."),
]
POSTMORTEM = "Root cause: a certificate expired on one gateway."
YEAR_PAYLOADS = {
    "postmortem-two-days-later": [
        entry(
            "latepm000002",
            "Delayed SMS delivery in North America",
            [("postmortem", "2025-12-26T18:22:00Z", POSTMORTEM), *PACIFIC_TRAIL],
        )
    ],
    "postmortem-three-weeks-later": [
        entry(
            "latepm000021",
            "Delayed SMS delivery in North America",
            [("postmortem", "2026-01-14T18:22:00Z", POSTMORTEM), *PACIFIC_TRAIL],
        )
    ],
    "december-postmortem-seen-in-february": [
        entry(
            "february0001",
            "Email delays",
            [
                ("resolved", "2026-02-10T09:30:00Z", "Delivery is back to normal."),
                ("investigating", "2026-02-10T08:55:00Z", "We are investigating delays."),
            ],
        ),
        entry(
            "decpostm0001",
            "SMS outage in the EU",
            [
                ("postmortem", "2025-12-30T13:00:00Z", "Root cause: a full disk."),
                ("resolved", "2025-12-19T15:40:00Z", "This incident is resolved."),
                ("investigating", "2025-12-19T14:02:00Z", "SMS are not delivered."),
            ],
        ),
    ],
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", YEARS)
def test_postmortems_after_the_item_date_keep_the_incident_in_its_year(runner, tmp_path, name, fmt):
    payload = inspect(runner, tmp_path, YEARS[name], fmt)
    assert payload == {"format": fmt, "entries": YEAR_PAYLOADS[name]}


WINDOW_PAYLOADS = {
    "cet-to-cest": entry(
        "dstspring001",
        "Database maintenance",
        [("scheduled", "2027-03-20T09:00:00Z", "We will upgrade the database.")],
        kind="maintenance",
    ),
    "cest-to-cet": entry(
        "dstautumn001",
        "Database maintenance",
        [("scheduled", "2027-10-20T08:00:00Z", "We will upgrade the database.")],
        kind="maintenance",
    ),
}
WINDOW_SUBJECTS = {
    # Start in winter time, end in summer time: 01:00 MEZ, not 00:00 MEZ.
    "cet-to-cest": "[Geplant] Sinch: Database maintenance "
    "(28. März 2027, 01:00 MEZ – 28. März 2027, 04:00 MESZ)",
    "cest-to-cet": "[Geplant] Sinch: Database maintenance "
    "(31. Oktober 2027, 01:00 MESZ – 31. Oktober 2027, 04:00 MEZ)",
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", WINDOWS)
def test_each_end_of_a_window_across_a_dst_switch_has_its_own_offset(runner, tmp_path, name, fmt):
    case = WINDOWS[name]
    assert inspect(runner, tmp_path, case, fmt) == {
        "format": fmt,
        "entries": [WINDOW_PAYLOADS[name]],
    }
    (parsed,) = parse_feed(case.body(fmt)).entries
    assert (parsed.scheduled_start, parsed.scheduled_end) == case.incidents[0].window
    content = content_from_entry(parsed, "Sinch", "https://status.sinch.com")
    assert render_email(content, "de", "Europe/Berlin").subject == WINDOW_SUBJECTS[name]


@pytest.mark.parametrize("fmt", FORMATS)
def test_brackets_and_ampersands_in_titles_and_texts_are_kept(runner, tmp_path, fmt):
    assert inspect(runner, tmp_path, TITLES, fmt) == {
        "format": fmt,
        "entries": [
            entry(
                "titlepost001",
                "Errors on <POST /xms/v1/batches> in EU",
                [
                    (
                        "investigating",
                        "2026-11-03T09:02:00Z",
                        "Calls to <POST /xms/v1/batches> fail with 500 & are retried.",
                    )
                ],
            ),
            entry(
                "titlearrow01",
                "Sinch <-> Meta: delayed WhatsApp messages",
                [("monitoring", "2026-11-02T14:30:00Z", "Traffic a <-> b back.")],
            ),
            entry(
                "titleamp0001",
                "SMS & MMS: delays for AT&T customers",
                [("resolved", "2026-11-01T08:00:00Z", "Fixed for AT&T & T-Mobile.")],
            ),
        ],
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_text_titles_keep_what_looks_like_tags_of_html_elements(runner, tmp_path, fmt):
    assert inspect(runner, tmp_path, BRACKETS, fmt) == {
        "format": fmt,
        "entries": [
            entry(
                f"bracket{n:05d}",
                title,
                [("investigating", f"2026-11-03T09:{n:02d}:00Z", f"Calls to {title} fail.")],
            )
            for n, title in enumerate(BRACKET_TITLES)
        ],
    }


HTML_TITLE_TEXTS = {
    # Atom type="html": inline formatting tags go, entities are decoded, "<Video>" (an element,
    # but no formatting), "<HEAD …>", "<Data API>" and the malformed "<b =x>" stay as written.
    "atom": [
        "Delays on <Voice> and <Video> APIs for AT&T",
        "Errors on <HEAD /xms/v1/batches> in EU & US",
        "Outage of <Data API> & <b =x>the portal",
    ],
    # RSS titles have no type; feedparser calls the first HTML (a close tag, only tags it knows)
    # and the others text, and a text title is never stripped.
    "rss": [
        "Delays on <Voice> and <Video> APIs for AT&T",
        "Errors on <HEAD /xms/v1/batches> in <em>EU</em> &amp; US<br/>",
        "<i>Outage</i> of <Data API> &amp; <b =x>the <a href=x>portal</a>",
    ],
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_html_titles_lose_only_inline_formatting_tags(runner, tmp_path, fmt):
    times = ["2026-11-03T09:00:00Z", "2026-11-03T08:00:00Z", "2026-11-03T07:00:00Z"]
    keys = ["htmltitle001", "htmltitle002", "htmltitle003"]
    assert inspect(runner, tmp_path, HTML_TITLES, fmt) == {
        "format": fmt,
        "entries": [
            entry(key, title, [("investigating", at, "Calls fail.")])
            for key, title, at in zip(keys, HTML_TITLE_TEXTS[fmt], times, strict=True)
        ],
    }


def test_the_window_start_is_read_in_the_zone_of_its_end_not_with_its_offset():
    # Pacific page, a window across the US spring switch (Mar 14, 2027, 02:00 PST -> 03:00 PDT).
    maintenance = Incident(
        key="uswindow0001",
        title="Database maintenance",
        kind="maintenance",
        posts=(Post("scheduled", utc(2027, 3, 1, 17, 0), "We will upgrade the database."),),
        window=(utc(2027, 3, 14, 9, 0), utc(2027, 3, 14, 12, 0)),  # 01:00 PST - 05:00 PDT
    )
    case = Case(Page(zone="America/Los_Angeles"), (maintenance,))
    (parsed,) = parse_feed(case.body("atom")).entries
    assert (parsed.scheduled_start, parsed.scheduled_end, parsed.time_doubts) == (
        utc(2027, 3, 14, 9, 0),
        utc(2027, 3, 14, 12, 0),
        (),
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_stamp_the_offsets_cannot_settle_is_settled_by_the_pages_other_stamps(
    runner, tmp_path, fmt
):
    # Found by the property: the morning the US switches (Mar 13, 2011), "01:59 CST" is Chicago
    # (-06:00) or Havana (-05:00), and both match the entry's date (08:00 -05:00). The entry's
    # other stamp, "03:00 CDT", is Chicago's only.
    incident = Incident(
        key="tellcity0001",
        title="Delays",
        posts=(
            Post("identified", utc(2011, 3, 13, 8, 0), "Found it."),
            Post("investigating", utc(2011, 3, 13, 7, 59), "Looking."),
        ),
    )
    case = Case(Page(zone="America/Indiana/Tell_City"), (incident,))
    assert inspect(runner, tmp_path, case, fmt) == {
        "format": fmt,
        "entries": [
            entry(
                "tellcity0001",
                "Delays",
                [
                    ("identified", "2011-03-13T08:00:00Z", "Found it."),
                    ("investigating", "2011-03-13T07:59:00Z", "Looking."),
                ],
            )
        ],
    }


def test_a_window_start_in_a_repeated_hour_is_told_by_published_or_flagged():
    # Found by the property: Chile falls back at 00:00 on Mar 11, 2001, so "Mar 10, 23:29 -
    # 23:59 -04" may start at 02:29Z (-03) or 03:29Z (-04). RSS: only pubDate (= the start)
    # coincides with a reading. Atom: `updated` (the 02:29 post) coincides with the other one
    # too, so the start is flagged and read with the offset stated nearest to it.
    maintenance = Incident(
        key="chilefold001",
        title="Maintenance",
        kind="maintenance",
        posts=(Post("scheduled", utc(2001, 3, 11, 2, 29), "Planned."),),
        window=(utc(2001, 3, 11, 3, 29), utc(2001, 3, 11, 3, 59)),
    )
    case = Case(Page(zone="America/Santiago"), (maintenance,))
    rss, atom = (parse_feed(case.body(fmt)).entries[0] for fmt in ("rss", "atom"))
    assert (rss.scheduled_start, rss.scheduled_end, rss.time_doubts) == (
        utc(2001, 3, 11, 3, 29),
        utc(2001, 3, 11, 3, 59),
        (),
    )
    assert (atom.scheduled_start, atom.scheduled_end, atom.time_doubts) == (
        utc(2001, 3, 11, 2, 29),
        utc(2001, 3, 11, 3, 59),
        (
            "Mar 10, 23:29: that time has more than one reading there;"
            " read with the entry's offset -03:00",
        ),
    )
