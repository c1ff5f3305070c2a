"""parse_feed and its helpers on generated feeds: templates, zones, years, banners, strictness."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from notifier.cli import inspect_payload
from notifier.feed import (
    FeedError,
    Update,
    normalize_status,
    parse_feed,
    parse_updates,
    plain_text,
    tz_offset,
)

from .feedgen import FORMATS, VARIANTS, Incident, Page, Post, expected_inspect, render, utc


def stamp(mon: str, day: int, hhmm: str, tz: str, status: str, text: str) -> str:
    return (
        f"<p><small>{mon} <var data-var='date'>{day}</var>, <var data-var='time'>{hhmm}</var>"
        f" {tz}</small><br><strong>{status}</strong> - {text}</p>"
    )


SMS = Incident(
    key="k2x9v7t0qzr1",
    title="Delayed SMS delivery (EU)",
    posts=(
        Post("resolved", utc(2026, 11, 3, 10, 5), "This incident has been resolved."),
        Post("monitoring", utc(2026, 11, 3, 9, 40), "A fix has been applied; we are monitoring."),
        Post("investigating", utc(2026, 11, 3, 9, 2), "We are investigating  delays\n for SMS."),
    ),
)
WINDOW = Incident(
    key="m41nt3n4nc3x",
    title="Planned database maintenance",
    kind="maintenance",
    posts=(Post("scheduled", utc(2026, 11, 1, 8, 0), "We will upgrade the database."),),
    window=(utc(2026, 11, 10, 22, 0), utc(2026, 11, 11, 2, 0)),
    maintenance_end=utc(2026, 11, 11, 2, 0),
)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_both_formats_and_templates_give_the_contract_payload(fmt, variant):
    page = Page(zone="Europe/Berlin")
    parsed = parse_feed(render(fmt, page, [WINDOW, SMS], variant=variant))
    assert inspect_payload(parsed) == expected_inspect(fmt, page, [WINDOW, SMS])
    assert parsed.problems == ()
    assert (parsed.entries[0].scheduled_start, parsed.entries[0].scheduled_end) == WINDOW.window


@pytest.mark.parametrize("fmt", FORMATS)
def test_template_variants_parse_to_identical_entries_except_the_hash(fmt):
    old, new = (parse_feed(render(fmt, Page(), [WINDOW, SMS], variant=v)) for v in VARIANTS)
    for a, b in zip(old.entries, new.entries, strict=True):
        assert a.content_hash != b.content_hash
        assert (a.key, a.kind, a.title, a.updates) == (b.key, b.kind, b.title, b.updates)


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("Investigating", "investigating"),
        ("In progress", "in_progress"),
        ("In  Progress", "in_progress"),
        ("Post-mortem", "postmortem"),
        ("Postmortem", "postmortem"),
        ("Verifying", "verifying"),
        ("Mitigated", "mitigated"),
    ],
)
def test_status_words_are_normalized(word, status):
    assert normalize_status(word) == status


@pytest.mark.parametrize(
    ("abbr", "hours"),
    [
        ("UTC", 0),
        ("GMT", 0),
        ("CET", 1),
        ("CEST", 2),
        ("PST", -8),
        ("PDT", -7),
        ("IST", 5.5),
        ("+0530", 5.5),
        ("-03:00", -3),
        ("+01", 1),
        ("XYZ", None),
        (None, None),
    ],
)
def test_zone_abbreviations_and_numeric_offsets(abbr, hours):
    expected = None if hours is None else timedelta(hours=hours)
    assert tz_offset(abbr) == expected


def test_december_updates_in_a_january_entry_get_the_previous_year():
    content = stamp("Jan", 1, "00:25", "UTC", "Resolved", "ok") + stamp(
        "Dec", 31, "23:40", "UTC", "Investigating", "looking"
    )
    updates, window = parse_updates(content, utc(2027, 1, 1, 0, 25, 30))
    assert updates == (
        Update("resolved", utc(2027, 1, 1, 0, 25), "ok"),
        Update("investigating", utc(2026, 12, 31, 23, 40), "looking"),
    )
    assert window is None


def test_an_entry_entirely_in_december_edited_in_january_stays_in_december():
    content = stamp("Dec", 28, "11:00", "UTC", "Resolved", "ok")
    updates, _ = parse_updates(content, utc(2027, 1, 2, 9, 0))
    assert updates == (Update("resolved", utc(2026, 12, 28, 11, 0), "ok"),)


def test_pst_evening_on_new_years_eve_is_the_next_utc_year():
    content = stamp("Dec", 31, "16:30", "PST", "Investigating", "x")
    updates, _ = parse_updates(content, utc(2028, 1, 1, 0, 30, 30))
    assert updates == (Update("investigating", utc(2028, 1, 1, 0, 30), "x"),)


def test_february_29_is_placed_in_the_leap_year():
    content = stamp("Feb", 29, "12:00", "UTC", "Resolved", "x")
    updates, _ = parse_updates(content, utc(2029, 1, 10))
    assert updates == (Update("resolved", utc(2028, 2, 29, 12, 0), "x"),)


def test_fall_back_hour_is_told_apart_by_its_abbreviation():
    content = stamp("Nov", 7, "01:10", "PST", "Identified", "b") + stamp(
        "Nov", 7, "01:30", "PDT", "Investigating", "a"
    )
    updates, _ = parse_updates(content, utc(2027, 11, 7, 9, 10, 30))
    assert [u.at for u in updates] == [utc(2027, 11, 7, 9, 10), utc(2027, 11, 7, 8, 30)]


def test_unknown_zone_is_read_as_utc_and_reported():
    problems: list[str] = []
    updates, _ = parse_updates(
        stamp("Mar", 3, "10:00", "XYZ", "Update", "x"), utc(2027, 3, 3), problems
    )
    assert updates == (Update("update", utc(2027, 3, 3, 10, 0), "x"),)
    assert problems == ["unknown time zone 'XYZ', read as UTC"]


@pytest.mark.parametrize(
    ("banner", "window"),
    [
        (
            "Oct <var data-var='date'>5</var>, <var data-var='time'>04:00</var> - "
            "<var data-var='time'>05:00</var> UTC",
            (utc(2022, 10, 5, 4, 0), utc(2022, 10, 5, 5, 0)),
        ),
        (
            "Mar <var data-var='date'>27</var>, <var data-var='time'>22:00</var> CET - "
            "Mar <var data-var='date'>28</var>, <var data-var='time'>04:00</var> CEST",
            # A March window announced in September is next year's.
            (utc(2023, 3, 27, 21, 0), utc(2023, 3, 28, 2, 0)),
        ),
        (
            "Oct <var data-var='date'>6</var>, <var data-var='time'>12:00</var> - "
            "<var data-var='time'>16:00</var> GMT",
            (utc(2022, 10, 6, 12, 0), utc(2022, 10, 6, 16, 0)),
        ),
    ],
)
def test_scheduled_event_banner_gives_the_window_in_its_own_zone(banner, window):
    # The update is in BST: a GMT (zero offset) banner must not borrow the page's +1.
    content = f"<p><strong>THIS IS A SCHEDULED EVENT {banner}</strong></p>" + stamp(
        "Sep", 29, "14:04", "BST", "Scheduled", "We will do maintenance."
    )
    updates, found = parse_updates(content, utc(2022, 9, 29, 13, 4, 44))
    assert found == window
    assert updates == (Update("scheduled", utc(2022, 9, 29, 13, 4), "We will do maintenance."),)


def test_rss_maintenance_end_date_gives_the_window_without_a_banner():
    incident = Incident(
        key="rssend000001",
        title="Maintenance",
        kind="maintenance",
        posts=(Post("scheduled", utc(2026, 11, 1, 8, 0), "Planned."),),
        published=utc(2026, 11, 10, 22, 0),
        maintenance_end=utc(2026, 11, 11, 2, 0),
    )
    (entry,) = parse_feed(render("rss", Page(), [incident])).entries
    assert (entry.kind, entry.scheduled_start, entry.scheduled_end) == (
        "maintenance",
        utc(2026, 11, 10, 22, 0),
        utc(2026, 11, 11, 2, 0),
    )


def test_a_moved_rss_end_date_changes_the_content_hash():
    moved = replace(WINDOW, maintenance_end=utc(2026, 11, 11, 4, 0))
    a, b = (parse_feed(render("rss", Page(), [i])).entries[0] for i in (WINDOW, moved))
    assert a.content_hash != b.content_hash


def test_plain_text_drops_tags_keeps_link_targets_and_unescapes_once():
    fragment = (
        'See <a href="https://status.sinch.com/x">the notice</a> &amp; '
        '<a href="https://sinch.com">https://sinch.com</a>.<br />Escaped: &lt;b&gt;'
        "<script>alert(1)</script> &#39;done&#39;"
    )
    assert plain_text(fragment) == (
        "See the notice (https://status.sinch.com/x) & https://sinch.com. "
        "Escaped: <b> alert(1) 'done'"
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_html_in_titles_and_texts_becomes_inert_text(fmt):
    incident = Incident(
        key="html00000001",
        title='SMS <script>alert("t")</script> & MMS',
        posts=(
            Post(
                "investigating",
                utc(2026, 11, 3, 9, 2),
                '<img src=x onerror="alert(1)">Delays <b>now</b> &lt;i&gt; &amp; more',
                html=True,
            ),
        ),
    )
    (entry,) = parse_feed(render(fmt, Page(), [incident])).entries
    # The title is text (escaped in the XML): kept as written, escaped wherever it becomes HTML
    # (issue 10, "Titles are text"); the update is HTML and becomes inert text.
    assert (entry.title, entry.updates[0].text) == (
        'SMS <script>alert("t")</script> & MMS',
        "Delays now <i> & more",
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_entry_without_incident_link_is_skipped_and_reported(fmt):
    orphan = Incident(key="nolink", title="Orphan", posts=SMS.posts, link="")
    parsed = parse_feed(render(fmt, Page(), [orphan, SMS]))
    assert [e.key for e in parsed.entries] == [SMS.key]
    assert parsed.problems == ("entry 'Orphan' has no /incidents/<code> link; skipped",)


@pytest.mark.parametrize("fmt", FORMATS)
def test_duplicate_entry_keeps_the_first_and_is_reported(fmt):
    newer = SMS.with_posts(Post("postmortem", utc(2026, 11, 4, 8, 0), "Root cause: config."))
    parsed = parse_feed(render(fmt, Page(), [newer, SMS]))
    assert [(e.key, len(e.updates)) for e in parsed.entries] == [(SMS.key, 4)]
    assert parsed.problems == (f"entry {SMS.key} appears twice; the first one is used",)


@pytest.mark.parametrize("fmt", FORMATS)
def test_updates_with_unknown_status_words_are_dropped_and_reported(fmt):
    odd = SMS.with_posts(Post("Mitigated", utc(2026, 11, 3, 10, 30), "Odd word."))
    parsed = parse_feed(render(fmt, Page(), [odd]))
    assert [u.status for u in parsed.entries[0].updates] == [
        "resolved",
        "monitoring",
        "investigating",
    ]
    assert parsed.problems == (f"entry {SMS.key}: unknown status mitigated; those updates ignored",)


def test_var_tags_with_padded_days_and_odd_spacing_are_read():
    content = (
        "<p> <small>Jan <var data-var='date'> 8</var>,  <var data-var='time'>16:20</var>\n GMT"
        "</small> <br/> <strong> In progress </strong> -  Started.</p>"
    )
    updates, _ = parse_updates(content, utc(2024, 1, 16, 12))
    assert updates == (Update("in_progress", utc(2024, 1, 8, 16, 20), "Started."),)


def feed_body(fmt: str = "atom") -> bytes:
    return render(fmt, Page(), [SMS])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "the body is empty"),
        (b"  \n", "the body is empty"),
        (
            b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>",
            "not an Atom or RSS feed: the body is an HTML page",
        ),
        (b'{"status": "ok"}', "not an Atom or RSS feed: <unknown>:2:0: not well-formed"),
    ],
)
def test_bodies_that_are_not_feeds_are_refused(body, reason):
    with pytest.raises(FeedError) as info:
        parse_feed(body)
    assert str(info.value).startswith(reason)


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_xml_is_refused_not_read_leniently(fmt):
    body = feed_body(fmt)
    with pytest.raises(
        FeedError, match=r"^not well-formed XML, truncated or corrupt \(.*\); refused$"
    ):
        parse_feed(body[: len(body) * 2 // 3])


@pytest.mark.parametrize("fmt", FORMATS)
def test_latin1_bytes_declared_as_utf8_skip_only_their_entry(fmt):
    # Issue 16 changed this from refusing the whole body (see tests/test_feed_damage.py).
    clean = render(fmt, Page(), [SMS, WINDOW])
    body = clean.replace(b"Delayed SMS", "Verzögerte SMS".encode("latin-1"))
    parsed = parse_feed(body)
    line = (
        "entry k2x9v7t0qzr1 'Verz\ufffdgerte SMS delivery (EU)': bytes that are not UTF-8 in its "
        "title; skipped"
    )
    assert (parsed.entries, parsed.problems, parsed.damaged, parsed.found) == (
        parse_feed(render(fmt, Page(), [WINDOW])).entries,
        (line,),
        (line,),
        2,
    )


def test_utf8_text_outside_ascii_is_kept():
    body = feed_body().replace(b"Delayed SMS", "Verzögerte SMS –".encode())
    assert parse_feed(body).entries[0].title == "Verzögerte SMS – delivery (EU)"


def test_a_feed_without_entries_parses_to_no_entries():
    parsed = parse_feed(render("atom", Page(), []))
    assert (parsed.format, parsed.title, parsed.entries, parsed.problems) == (
        "atom",
        "Sinch Status - Incident History",
        (),
        (),
    )


def test_entry_without_dates_falls_back_to_the_feed_date():
    body = render("atom", Page(), [SMS], updated=utc(2026, 11, 5)).decode()
    body = re.sub(r"    <published>.*?</published>\n    <updated>.*?</updated>\n", "", body)
    (entry,) = parse_feed(body.encode()).entries
    assert (entry.published, entry.updated, [u.at for u in entry.updates]) == (
        None,
        None,
        [p.at for p in SMS.posts],
    )


def test_now_is_only_a_last_resort_for_the_year():
    body = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>
    <item><title>X</title><link>https://s.example/incidents/abc</link><description>
    &lt;p&gt;&lt;small&gt;Dec 30, 10:00 UTC&lt;/small&gt;&lt;br&gt;&lt;strong&gt;Resolved
    &lt;/strong&gt; - ok&lt;/p&gt;</description></item></channel></rss>"""
    parsed = parse_feed(body, now=datetime(2027, 1, 3, tzinfo=UTC))
    assert parsed.entries[0].updates == (Update("resolved", utc(2026, 12, 30, 10, 0), "ok"),)
