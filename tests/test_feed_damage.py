"""Issue 16, item 5: bytes that are not UTF-8 spoil only the entry they sit in.

A cp1252 apostrophe (0x92) or a Latin-1 umlaut in an old, resolved entry of a UTF-8 feed: that
entry is skipped and reported (which entry, which field), every other entry is read, and a new
incident in the same feed is still detected and mailed, without mojibake. Repairing the damage
later is no news for an entry that was known. Atom and RSS; damage in title, content, date, id
and link; a truncated body stays an error.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace

import pytest

from notifier import jobs
from notifier.feed import FeedError, parse_feed
from notifier.poller import replay

from .feedgen import FORMATS, Incident, Page, Post, expected_inspect, render, utc
from .helpers import add_subscriber, poll_and_mail_through_fakes, raw_rows

PAGE = Page()
OLD = Incident(
    key="old0000000a1",
    title="Delayed SMS delivery (EU)",
    posts=(
        Post("resolved", utc(2026, 11, 20, 12, 0), "The carrier link is stable again."),
        Post("investigating", utc(2026, 11, 20, 11, 0), "We are investigating delays."),
    ),
)
NEW = Incident(
    key="new0000000b1",
    title="Voice calls failing (US)",
    posts=(Post("investigating", utc(2026, 11, 26, 11, 30), "Some calls fail."),),
)
NEW_IDENTIFIED = NEW.with_posts(Post("identified", utc(2026, 11, 26, 11, 50), "A bad route."))
OLD_POSTMORTEM = OLD.with_posts(Post("postmortem", utc(2026, 11, 26, 11, 40), "What happened."))
BAD = b"\x92"  # a cp1252 right single quotation mark, as pasted from a word processor


def entry_span(body: bytes, key: str) -> tuple[int, int]:
    """Where the <entry>/<item> holding /incidents/<key> starts and ends in the body."""
    for match in re.finditer(rb"<(entry|item)>.*?</\1>", body, re.S):
        if f"/incidents/{key}".encode() in match.group(0):
            return match.span()
    raise AssertionError(f"no entry for {key}")


def damage(body: bytes, key: str, pattern: bytes, fmt: str) -> bytes:
    """Insert BAD into the entry of `key`, right after the first match of `pattern` there."""
    start, end = entry_span(body, key)
    chunk = body[start:end]
    found = re.search(pattern, chunk)
    assert found, (pattern, fmt)
    chunk = chunk[: found.end()] + BAD + chunk[found.end() :]
    return body[:start] + chunk + body[end:]


# (field word in the report, where the bad byte goes, per format)
FIELDS = {
    "title": {"atom": rb"<title>Delayed", "rss": rb"<title>Delayed"},
    "content": {"atom": rb"The carrier", "rss": rb"The carrier"},
    "date": {"atom": rb"<published>\d{4}-", "rss": rb"<pubDate>\w{3},"},
    "id": {"atom": rb"<id>tag:status\.sinch\.com,2005:Incident/", "rss": rb"<guid>https://"},
}


def damaged_line(fmt: str, field: str, key: str = OLD.key) -> str:
    title = "Delayed\ufffd SMS delivery (EU)" if field == "title" else OLD.title
    return f"entry {key} {title!r}: bytes that are not UTF-8 in its {field}; skipped"


# --- parse_feed -------------------------------------------------------------------------------


@pytest.mark.parametrize("field", list(FIELDS))
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_bad_byte_skips_only_its_entry_and_names_it(fmt, field):
    body = damage(render(fmt, PAGE, [NEW, OLD]), OLD.key, FIELDS[field][fmt], fmt)
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    parsed = parse_feed(body)
    line = damaged_line(fmt, field)
    assert (parsed.format, parsed.title, parsed.found, parsed.problems, parsed.damaged) == (
        fmt,
        "Sinch Status - Incident History",
        2,
        (line,),
        (line,),
    )
    clean = parse_feed(render(fmt, PAGE, [NEW]))
    assert parsed.entries == clean.entries  # the other entry exactly as from a clean body


# Latin-1 and cp1252 bytes (0x81 is unassigned even in cp1252), a cut-off sequence, a byte
# never in UTF-8, an encoded surrogate, a code point past U+10FFFF.
@pytest.mark.parametrize(
    "bad", [b"\x92", b"\xe4", b"\x81", b"\xc3", b"\xff", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_kind_of_invalid_sequence_is_damage(fmt, bad):
    body = render(fmt, PAGE, [NEW, OLD]).replace(b"The carrier", b"The" + bad + b" carrier")
    parsed = parse_feed(body)
    assert ([e.key for e in parsed.entries], parsed.problems) == (
        [NEW.key],
        (damaged_line(fmt, "content"),),
    )


def test_a_nul_byte_is_not_xml_and_refuses_the_body():
    body = render("atom", PAGE, [NEW, OLD]).replace(b"The carrier", b"The\x00 carrier")
    with pytest.raises(FeedError, match=r"^not well-formed XML, truncated or corrupt \("):
        parse_feed(body)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_bad_link_names_the_entry_by_what_is_left_clean(fmt):
    clean = render(fmt, PAGE, [NEW, OLD])
    body = damage(clean, OLD.key, rb"sinch\.com/incidents/", fmt)
    parsed = parse_feed(body)
    if fmt == "atom":  # Atom ids carry no code: the entry is named by its id
        start, end = entry_span(clean, OLD.key)
        ident = re.search(rb"<id>([^<]+)</id>", clean[start:end]).group(1).decode()
    else:  # the RSS guid repeats the link, undamaged
        ident = OLD.key
    line = f"entry {ident} {OLD.title!r}: bytes that are not UTF-8 in its link; skipped"
    assert ([e.key for e in parsed.entries], parsed.problems) == ([NEW.key], (line,))


@pytest.mark.parametrize("fmt", FORMATS)
def test_many_bad_bytes_in_several_fields_give_one_line(fmt):
    body = render(fmt, PAGE, [NEW, OLD])
    for field in ("content", "title", "date"):
        body = damage(body, OLD.key, FIELDS[field][fmt], fmt)
    body = body.replace(b"stable again", "stäble ägain".encode("latin-1"))
    parsed = parse_feed(body)
    title = "Delayed\ufffd SMS delivery (EU)"
    assert parsed.problems == (
        f"entry {OLD.key} {title!r}: bytes that are not UTF-8 in its title, content, date; skipped",
    )
    assert [e.key for e in parsed.entries] == [NEW.key]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_bad_byte_in_the_feed_title_drops_only_that_title(fmt):
    body = render(fmt, PAGE, [NEW, OLD]).replace(b"Sinch Status", b"Sinch" + BAD + b" Status", 1)
    parsed = parse_feed(body)
    assert (parsed.title, parsed.problems, parsed.damaged) == (
        "",
        ("the feed's own title: bytes that are not UTF-8; ignored",),
        (),
    )
    assert parsed.entries == parse_feed(render(fmt, PAGE, [NEW, OLD])).entries


def test_a_replacement_character_the_page_wrote_itself_is_text():
    odd = replace(NEW, title="Voice \ufffd calls")
    body = damage(render("atom", PAGE, [odd, OLD]), OLD.key, rb"The carrier", "atom")
    parsed = parse_feed(body)
    assert [(e.key, e.title) for e in parsed.entries] == [(NEW.key, "Voice \ufffd calls")]
    assert parsed.problems == (damaged_line("atom", "content"),)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_truncated_damaged_body_is_still_refused(fmt):
    body = damage(render(fmt, PAGE, [NEW, OLD]), OLD.key, FIELDS["content"][fmt], fmt)
    with pytest.raises(FeedError, match=r"^not well-formed XML, truncated or corrupt \(.*\)"):
        parse_feed(body[: len(body) - 40])


def test_bytes_in_another_declared_encoding_are_not_guessed_at():
    body = render("atom", PAGE, [NEW]).replace(b'encoding="UTF-8"', b'encoding="UTF-16"')
    with pytest.raises(FeedError):
        parse_feed(body)


# --- replay (the poller's own parse_usable + ingest) --------------------------------------------


def contract(events):
    return [
        (e["snapshot"], e["key"], e["type"], e["status"], e["posted_at"], e["count"])
        for e in events
    ]


@pytest.mark.parametrize("field", list(FIELDS))
@pytest.mark.parametrize("fmt", FORMATS)
def test_replay_damage_in_an_old_entry_and_a_new_incident(fmt, field):
    spot = FIELDS[field][fmt]
    snapshots = [
        render(fmt, PAGE, [OLD]),
        damage(render(fmt, PAGE, [NEW, OLD]), OLD.key, spot, fmt),
        # the damage stays; the new incident moves on
        damage(render(fmt, PAGE, [NEW_IDENTIFIED, OLD]), OLD.key, spot, fmt),
        # repaired: the old entry is known, nothing about it is news
        render(fmt, PAGE, [NEW_IDENTIFIED, OLD]),
        # damaged again while it got a postmortem, then repaired: only the postmortem is news
        damage(render(fmt, PAGE, [NEW_IDENTIFIED, OLD_POSTMORTEM]), OLD.key, spot, fmt),
        render(fmt, PAGE, [NEW_IDENTIFIED, OLD_POSTMORTEM]),
    ]
    warnings: list[str] = []
    events = replay(snapshots, warnings=warnings)
    assert contract(events) == [
        (1, NEW.key, "new_incident", "investigating", utc(2026, 11, 26, 11, 30), 1),
        (2, NEW.key, "new_update", "identified", utc(2026, 11, 26, 11, 50), 1),
        (5, OLD.key, "new_update", "postmortem", utc(2026, 11, 26, 11, 40), 1),
    ]
    line = damaged_line(fmt, field)
    assert warnings == [f"snapshot {n}: {line}" for n in (1, 2, 4)]


@pytest.mark.parametrize("field", list(FIELDS))
@pytest.mark.parametrize("fmt", FORMATS)
def test_replay_an_entry_damaged_in_the_baseline_is_known_once_repaired(fmt, field):
    spot = FIELDS[field][fmt]
    snapshots = [
        damage(render(fmt, PAGE, [NEW, OLD]), OLD.key, spot, fmt),
        render(fmt, PAGE, [NEW, OLD]),  # repaired: old news, no event
        render(fmt, PAGE, [NEW, OLD_POSTMORTEM]),  # a real update on it afterwards
    ]
    warnings: list[str] = []
    events = replay(snapshots, warnings=warnings)
    assert contract(events) == [
        (2, OLD.key, "new_update", "postmortem", utc(2026, 11, 26, 11, 40), 1)
    ]
    assert warnings == [f"snapshot 0: {damaged_line(fmt, field)}"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_replay_an_entry_with_a_damaged_link_in_the_baseline_is_not_guessed_at(fmt):
    # Its code cannot be read, so nothing can be stored for it: a baseline of only that fails.
    damaged = damage(render(fmt, PAGE, [OLD]), OLD.key, rb"sinch\.com/incidents/", fmt)
    damaged = damaged.replace(b"<guid>https://", b"<guid>https://" + BAD)
    snapshots = [damaged, render(fmt, PAGE, [NEW, OLD])]
    with pytest.raises(FeedError, match=r"^snapshot 0: none of the feed's 1 entries is usable"):
        replay(snapshots)
    # Appearing damaged after the baseline, it is unknown too: repaired, it is news.
    appears = damage(render(fmt, PAGE, [NEW, OLD]), OLD.key, rb"sinch\.com/incidents/", fmt)
    events = replay([render(fmt, PAGE, [NEW]), appears, render(fmt, PAGE, [NEW, OLD])])
    assert contract(events) == [
        (2, OLD.key, "new_incident", "resolved", utc(2026, 11, 20, 12, 0), 2)
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_replay_a_feed_whose_every_entry_is_damaged_is_an_error(fmt):
    only_old = damage(render(fmt, PAGE, [OLD]), OLD.key, FIELDS["title"][fmt], fmt)
    with pytest.raises(FeedError) as info:
        replay([render(fmt, PAGE, [OLD]), only_old])
    assert str(info.value) == (
        f"snapshot 1: none of the feed's 1 entries is usable ({damaged_line(fmt, 'title')}); "
        "kept the previous state"
    )


def write(tmp_path, name: str, body: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(body)
    return str(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_replay_reports_each_damaged_entry_on_one_line(runner, tmp_path, fmt):
    paths = [
        write(tmp_path, f"0.{fmt}", render(fmt, PAGE, [OLD])),
        write(
            tmp_path,
            f"1.{fmt}",
            damage(render(fmt, PAGE, [NEW, OLD]), OLD.key, FIELDS["content"][fmt], fmt),
        ),
    ]
    result = runner.invoke(args=["feed", "replay", *paths, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "events": [
            {
                "snapshot": 1,
                "key": NEW.key,
                "type": "new_incident",
                "status": "investigating",
                "at": "2026-11-26T11:30:00Z",
                "count": 1,
            }
        ]
    }
    assert result.stderr.splitlines() == [f"warning: snapshot 1: {damaged_line(fmt, 'content')}"]
    result = runner.invoke(args=["feed", "replay", *paths])
    assert result.stdout.split() == (
        ["snapshot", "1", NEW.key, "new_incident", "investigating", "2026-11-26T11:30:00Z", "x1"]
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_inspect_lists_the_clean_entries_and_one_line_per_damaged_one(runner, tmp_path, fmt):
    body = damage(render(fmt, PAGE, [NEW, OLD]), OLD.key, FIELDS["title"][fmt], fmt)
    path = write(tmp_path, f"feed.{fmt}", body)
    result = runner.invoke(args=["feed", "inspect", path, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == expected_inspect(fmt, PAGE, [NEW])
    assert result.stderr.splitlines() == [f"warning: {damaged_line(fmt, 'title')}"]
    result = runner.invoke(args=["feed", "inspect", path])
    assert result.stdout.splitlines() == [
        f"{fmt} feed, 1 entries",
        "",
        f"{NEW.key}  incident     Voice calls failing (US)",
        "  2026-11-26T11:30:00Z  investigating  Some calls fail.",
    ]
    assert result.stderr.splitlines() == [f"warning: {damaged_line(fmt, 'title')}"]


# --- the real poller: HTTP, both databases, notifications, mails --------------------------------


@pytest.fixture
def world(app, settings, sendgrid, feed_server):
    url = feed_server.url("/history.atom")
    poll_and_mail_through_fakes(app, settings, sendgrid, url)
    return app, url


def ts(dt) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def mails(sendgrid) -> list[tuple[str, str]]:
    return sorted(
        (p["to"][0]["email"], r.body["subject"])
        for r in sendgrid.requests
        if r.status == 202
        for p in r.body["personalizations"]
    )


@pytest.mark.parametrize("field", list(FIELDS))
@pytest.mark.parametrize("fmt", FORMATS)
def test_poller_detects_and_mails_a_new_incident_next_to_a_damaged_entry(
    world, db, sendgrid, feed_server, clock, caplog, fmt, field
):
    app, url = world
    add_subscriber(db, "ben@example.com", now=clock(), language="en")
    add_subscriber(db, "anna@example.de", now=clock(), language="de")
    feed_server.set("/history.atom", render(fmt, PAGE, [OLD]))
    jobs.poll(app)

    damaged = damage(render(fmt, PAGE, [NEW, OLD]), OLD.key, FIELDS[field][fmt], fmt)
    feed_server.set("/history.atom", damaged)
    t1 = clock.advance(minutes=1)
    with caplog.at_level(logging.WARNING, logger="notifier.poller"):
        jobs.poll(app)
    jobs.dispatch(app)

    line = damaged_line(fmt, field)
    assert ("notifier.poller", logging.WARNING, f"feed {url}: {line}") in caplog.record_tuples
    (feed,) = raw_rows(
        db,
        "SELECT last_success_at, last_error, last_error_at, consecutive_failures FROM feeds",
    )
    assert feed == {
        "last_success_at": ts(t1),
        "last_error": line,
        "last_error_at": ts(t1),
        "consecutive_failures": 0,
    }
    changes = db.list_changes()
    assert [(c["key"], c["type"], c["status"], c["count"]) for c in changes] == [
        (NEW.key, "new_incident", "investigating", 1)
    ]
    assert raw_rows(db, "SELECT kind, change_id FROM notifications") == [
        {"kind": "incident", "change_id": changes[0]["id"]}
    ]
    assert mails(sendgrid) == [
        ("anna@example.de", "[Untersuchung läuft] Sinch: Voice calls failing (US)"),
        ("ben@example.com", "[Investigating] Sinch: Voice calls failing (US)"),
    ]
    for request in sendgrid.requests:
        text = json.dumps(request.body, ensure_ascii=False)
        assert "\ufffd" not in text and "â€" not in text and "Delayed SMS" not in text
    # The old entry's stored rows are as the clean baseline left them.
    assert raw_rows(
        db,
        "SELECT u.status, u.text, u.gone_at FROM updates u JOIN incidents i "
        "ON i.id = u.incident_id WHERE i.key = ? ORDER BY u.id",
        OLD.key,
    ) == [
        {"status": "resolved", "text": "The carrier link is stable again.", "gone_at": None},
        {"status": "investigating", "text": "We are investigating delays.", "gone_at": None},
    ]

    # Repaired: no news, no mail.
    feed_server.set("/history.atom", render(fmt, PAGE, [NEW, OLD]))
    clock.advance(minutes=1)
    jobs.poll(app)
    jobs.dispatch(app)
    assert len(db.list_changes()) == 1 and len(mails(sendgrid)) == 2


def test_poller_a_feed_with_only_damaged_entries_fails_and_keeps_its_state(
    world, db, feed_server, clock
):
    app, url = world
    body = render("atom", PAGE, [OLD])
    feed_server.set("/history.atom", body)
    t0 = clock()
    jobs.poll(app)
    feed_server.set(
        "/history.atom", body.replace(b"Delayed SMS", "Verzögerte SMS".encode("cp1252"))
    )
    t1 = clock.advance(minutes=1)
    jobs.poll(app)
    title = "Verz\ufffdgerte SMS delivery (EU)"
    error = (
        f"unusable feed from {url}: none of the feed's 1 entries is usable (entry {OLD.key} "
        f"{title!r}: bytes that are not UTF-8 in its title; skipped); kept the previous state"
    )
    (feed,) = raw_rows(
        db, "SELECT last_success_at, last_error, last_error_at, consecutive_failures FROM feeds"
    )
    assert feed == {
        "last_success_at": ts(t0),
        "last_error": error,
        "last_error_at": ts(t1),
        "consecutive_failures": 1,
    }
    assert db.list_changes() == []


def test_poller_an_entry_damaged_in_the_baseline_is_stored_silently_and_repaired_as_edits(
    world, db, sendgrid, feed_server, clock
):
    app, _ = world
    add_subscriber(db, "ben@example.com", now=clock(), language="en")
    body = damage(render("atom", PAGE, [NEW, OLD]), OLD.key, FIELDS["title"]["atom"], "atom")
    feed_server.set("/history.atom", body)
    jobs.poll(app)
    titles = "SELECT key, title FROM incidents ORDER BY key"
    assert raw_rows(db, titles) == [
        {"key": NEW.key, "title": NEW.title},
        {"key": OLD.key, "title": "Delayed\ufffd SMS delivery (EU)"},
    ]

    feed_server.set("/history.atom", render("atom", PAGE, [NEW, OLD]))
    clock.advance(minutes=1)
    jobs.poll(app)
    jobs.dispatch(app)
    assert raw_rows(db, titles) == [
        {"key": NEW.key, "title": NEW.title},
        {"key": OLD.key, "title": OLD.title},
    ]
    assert (db.list_changes(), sendgrid.requests) == ([], [])
