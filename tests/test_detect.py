"""Change detection: the pure core, then whole scenarios through `feed replay` / `feed inspect`.

Scenario feeds come from tests/feedgen.py, in Atom and RSS. Each one asserts the exact event list
of the CLI replay and the exact inspect payload of every snapshot; where the issue says "stored",
the same snapshots also go through the poller's ingest() into the test database.
"""

from __future__ import annotations

import html
import json
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from notifier.changes import (
    NumberedUpdate,
    SeenIncident,
    detect_changes,
    diff_entry,
    number_updates,
)
from notifier.feed import Entry, Update, parse_feed
from notifier.poller import ingest, parse_usable
from notifier.store.base import from_db_time, to_db_time

from .feedgen import FORMATS, Incident, Page, Post, expected_inspect, render, utc
from .helpers import atom, raw_rows

# --- the pure core ----------------------------------------------------------------------------


def entry(*updates: Update, key="abc", title="T", content_hash="h1") -> Entry:
    return Entry(
        key=key, kind="incident", title=title, link=f"https://s/incidents/{key}",
        updates=updates, content_hash=content_hash,
    )  # fmt: skip


T0 = utc(2026, 11, 3, 10, 0)
INV = Update("investigating", T0, "first")


def test_equal_pairs_are_numbered_from_the_oldest():
    updates = (
        Update("investigating", T0, "third"),
        Update("identified", T0, "x"),
        Update("investigating", T0, "second"),
        INV,
    )
    assert [u.seq for u in number_updates(updates)] == [2, 0, 1, 0]


def test_a_new_incident_reports_all_its_updates_with_the_newest_first():
    resolved = Update("resolved", T0 + timedelta(minutes=5), "ok")
    (diff,) = detect_changes([entry(resolved, INV)], {}).diffs
    assert (diff.event.type, diff.event.status, diff.event.at, diff.event.count) == (
        "new_incident",
        "resolved",
        resolved.at,
        2,
    )


def test_a_baseline_stores_everything_and_reports_nothing():
    detection = detect_changes([entry(INV), entry(INV, key="def")], {}, baseline=True)
    assert detection.events == []
    assert [d.changed for d in detection.diffs] == [True, True]


def test_an_unchanged_hash_is_not_looked_at_further():
    seen = SeenIncident(id=1, key="abc", title="T", content_hash="h1", updates=None)
    diff = diff_entry(entry(INV), seen)
    assert (diff.changed, diff.event, diff.new_updates) == (False, None, ())


def test_a_changed_hash_without_loaded_updates_is_a_bug_not_a_guess():
    seen = SeenIncident(id=1, key="abc", title="T", content_hash="old", updates=None)
    with pytest.raises(ValueError, match="updates of abc were not loaded"):
        diff_entry(entry(INV), seen)


def seen_with(*updates: Update, title="T") -> SeenIncident:
    numbered = tuple(NumberedUpdate(u.status, u.at, u.seq, u.text) for u in number_updates(updates))
    return SeenIncident(id=1, key="abc", title=title, content_hash="old", updates=numbered)


def test_text_edits_and_renames_are_stored_but_not_events():
    edited = Update("investigating", T0, "first, with a root cause appended")
    diff = diff_entry(entry(edited, title="New title"), seen_with(INV))
    assert (diff.changed, diff.event, diff.title_changed) == (True, None, True)
    assert diff.edited_updates == (NumberedUpdate("investigating", T0, 0, edited.text),)


def test_a_third_post_in_the_same_minute_is_one_new_update():
    second = Update("investigating", T0, "second")
    third = Update("investigating", T0, "third")
    diff = diff_entry(entry(third, second, INV), seen_with(second, INV))
    assert diff.new_updates == (NumberedUpdate("investigating", T0, 2, "third"),)
    assert (diff.event.type, diff.event.count) == ("new_update", 1)


def test_updates_gone_from_the_feed_are_not_events():
    resolved = Update("resolved", T0 + timedelta(minutes=5), "ok")
    diff = diff_entry(entry(resolved), seen_with(resolved, INV))
    assert (diff.event, diff.new_updates, diff.edited_updates) == (None, (), ())


def test_an_entry_read_with_another_offset_is_retimed_not_new():
    """The same posts, every time shifted (a parser that now reads CST as China, not US
    Central): stored with the new times, no event."""
    shift = timedelta(hours=-14)
    resolved = Update("resolved", T0 + timedelta(hours=1), "ok")
    stored = seen_with(resolved, INV)
    diff = diff_entry(entry(*(replace(u, at=u.at + shift) for u in (resolved, INV))), stored)
    assert (diff.event, diff.new_updates, diff.changed) == (None, (), True)
    assert diff.retimed_updates == (
        (NumberedUpdate("resolved", resolved.at, 0, "ok"),
         NumberedUpdate("resolved", resolved.at + shift, 0, "ok")),
        (NumberedUpdate("investigating", T0, 0, "first"),
         NumberedUpdate("investigating", T0 + shift, 0, "first")),
    )  # fmt: skip


def test_a_retimed_post_next_to_a_really_new_one_reports_only_the_new_one():
    late = Update("postmortem", T0 + timedelta(days=2), "report")
    moved = replace(INV, at=INV.at - timedelta(days=365))  # last year's reading corrected
    resolved = Update("resolved", T0 + timedelta(hours=1), "ok")
    diff = diff_entry(entry(late, resolved, moved), seen_with(resolved, INV))
    assert diff.new_updates == (NumberedUpdate("postmortem", late.at, 0, "report"),)
    assert diff.retimed_updates == (
        (NumberedUpdate("investigating", T0, 0, "first"),
         NumberedUpdate("investigating", moved.at, 0, "first")),
    )  # fmt: skip
    assert (diff.event.type, diff.event.status, diff.event.count) == ("new_update", "postmortem", 1)


def test_moved_posts_whose_texts_changed_too_pair_only_when_they_move_together():
    """Two posts, texts edited, both moved by the same 8 hours: one entry re-read. A single
    post with another text at another time is a new post (when in doubt, mail)."""
    shift = timedelta(hours=8)
    resolved = Update("resolved", T0 + timedelta(hours=1), "ok")
    moved = (replace(resolved, at=resolved.at + shift, text="ok, fixed"),
             replace(INV, at=INV.at + shift, text="first, with details"))  # fmt: skip
    diff = diff_entry(entry(*moved), seen_with(resolved, INV))
    assert (diff.event, diff.new_updates) == (None, ())
    assert [new.text for _old, new in diff.retimed_updates] == ["ok, fixed", "first, with details"]
    alone = replace(INV, at=INV.at + shift, text="first, with details")
    diff = diff_entry(entry(alone), seen_with(INV))
    assert diff.new_updates == (NumberedUpdate("investigating", alone.at, 0, alone.text),)
    assert diff.retimed_updates == ()


def test_only_shifts_a_misread_zone_or_year_explains_pair():
    for delta, plausible in (
        (timedelta(hours=-14), True), (timedelta(minutes=45), True),
        (timedelta(days=365, hours=-8), True), (timedelta(days=-366), True),
        (timedelta(minutes=7), False), (timedelta(hours=27), False),
        (timedelta(days=40), False), (timedelta(days=-2, minutes=-30), False),
    ):  # fmt: skip
        diff = diff_entry(entry(replace(INV, at=INV.at + delta)), seen_with(INV))
        assert bool(diff.retimed_updates) is plausible, delta
        assert bool(diff.new_updates) is not plausible, delta


def test_a_post_deleted_at_one_poll_is_not_the_same_as_one_written_later():
    """A premature 'resolved' removed by the page at one poll; the real one, hours later with
    the same boilerplate, is new: only a post vanishing in the same parse may pair."""
    early = Update("resolved", T0 + timedelta(hours=1), "This incident has been resolved.")
    real = Update("resolved", T0 + timedelta(hours=4), "This incident has been resolved.")
    stored = seen_with(early, INV)
    gone = replace(
        stored,
        updates=tuple(replace(u, gone=u.status == "resolved") for u in stored.updates),
    )
    diff = diff_entry(entry(real, INV), gone)
    assert diff.new_updates == (NumberedUpdate("resolved", real.at, 0, real.text),)
    assert (diff.event.type, diff.retimed_updates) == ("new_update", ())


def test_a_new_post_while_another_left_the_feed_is_still_new():
    """Different statuses: not one post moved, but one gone and one new."""
    resolved = Update("resolved", T0 + timedelta(hours=1), "ok")
    diff = diff_entry(entry(resolved), seen_with(INV))
    assert diff.new_updates == (NumberedUpdate("resolved", resolved.at, 0, "ok"),)
    assert diff.retimed_updates == ()


# --- scenario helpers ---------------------------------------------------------------------------


def write(tmp_path, fmt: str, page: Page, snapshots, variants=None) -> list:
    paths = []
    for i, incidents in enumerate(snapshots):
        variant = variants[i] if variants else "old"
        path = tmp_path / f"snapshot{i}.{fmt}"
        path.write_bytes(render(fmt, page, incidents, variant=variant))
        paths.append(path)
    return paths


def cli_json(runner, *args) -> dict:
    result = runner.invoke(args=[*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def replay_and_inspect(runner, tmp_path, fmt, page, snapshots, variants=None) -> list[dict]:
    """Replay events; also checks every snapshot's exact inspect payload against the model."""
    paths = write(tmp_path, fmt, page, snapshots, variants)
    for path, incidents in zip(paths, snapshots, strict=True):
        assert cli_json(runner, "feed", "inspect", str(path)) == expected_inspect(
            fmt, page, incidents
        )
    return cli_json(runner, "feed", "replay", *map(str, paths))["events"]


def event(snapshot, key, type_, status, at: datetime, count=1) -> dict:
    return {
        "snapshot": snapshot,
        "key": key,
        "type": type_,
        "status": status,
        "at": at.strftime("%Y-%m-%dT%H:%M:00Z"),
        "count": count,
    }


START = utc(2026, 11, 26, 12, 0)


def ingest_all(db, fmt, page, snapshots) -> list[dict]:
    """The same snapshots through the poller's ingest() into the test database."""
    now = START
    feed_id = db.ensure_feed(f"scenario:{fmt}", now)["id"]
    changes = []
    for incidents in snapshots:
        parsed = parse_usable(render(fmt, page, incidents), now)
        changes += ingest(db, feed_id, parsed, now).changes
        now += timedelta(minutes=1)
    return changes


def table(db, sql: str, *params) -> list[dict]:
    return raw_rows(db, sql, *params)


def unescaped(fmt: str, page: Page, incidents) -> str:
    # One level of XML escaping around the entry HTML, in Atom and RSS alike.
    return html.unescape(render(fmt, page, incidents).decode())


UTC_PAGE = Page()
OTHER = Incident(
    key="0th3r0000001",
    title="Dashboard slowness",
    posts=(
        Post("resolved", utc(2026, 9, 1, 12, 0), "This incident has been resolved."),
        Post("investigating", utc(2026, 9, 1, 11, 0), "We are looking into it."),
    ),
)

# --- scenarios ----------------------------------------------------------------------------------

NEW_YEAR = Incident(
    key="ny2027a1b2c3",
    title="SMS delivery delays (EU)",
    posts=(Post("investigating", utc(2026, 12, 31, 23, 40), "We are investigating delays."),),
)
DECEMBER = Incident(
    key="dec28x9y8z7w",
    title="Voice API errors",
    posts=(
        Post("resolved", utc(2026, 12, 28, 11, 0), "Resolved."),
        Post("investigating", utc(2026, 12, 28, 10, 0), "Investigating."),
    ),
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_year_rollover_december_updates_in_a_january_feed(runner, tmp_path, fmt):
    after = NEW_YEAR.with_posts(
        Post("resolved", utc(2027, 1, 1, 0, 25), "This incident has been resolved."),
        Post("identified", utc(2026, 12, 31, 23, 58), "The cause was found."),
    )
    edited = replace(
        DECEMBER,
        posts=(
            replace(DECEMBER.posts[0], text="Resolved. Root cause: a certificate."),
            *DECEMBER.posts[1:],
        ),
        updated=utc(2027, 1, 1, 0, 10),  # edited in January, all posts in December
    )
    snapshots = [[NEW_YEAR, DECEMBER], [after, edited]]
    events = replay_and_inspect(runner, tmp_path, fmt, UTC_PAGE, snapshots)
    assert events == [event(1, "ny2027a1b2c3", "new_update", "resolved", utc(2027, 1, 1, 0, 25), 2)]
    payload = cli_json(runner, "feed", "inspect", str(tmp_path / f"snapshot1.{fmt}"))
    assert [[u["at"] for u in e["updates"]] for e in payload["entries"]] == [
        ["2027-01-01T00:25:00Z", "2026-12-31T23:58:00Z", "2026-12-31T23:40:00Z"],
        ["2026-12-28T11:00:00Z", "2026-12-28T10:00:00Z"],
    ]


BERLIN = Page(zone="Europe/Berlin")
WINTER = Incident(
    key="wint3r0cet01",
    title="Portal login failures",
    posts=(
        Post("resolved", utc(2027, 1, 14, 9, 50), "Logins work again."),
        Post("investigating", utc(2027, 1, 14, 9, 5), "Some users cannot log in."),
    ),
)
DST = Incident(
    key="dst0switch01",
    title="Conversation API latency",
    posts=(
        Post("identified", utc(2027, 3, 28, 1, 30), "A database failover is slow."),
        Post("investigating", utc(2027, 3, 28, 0, 30), "Latency is elevated."),
    ),
)
SUMMER = Incident(
    key="summ3rcest01",
    title="MMS delays (US)",
    posts=(Post("investigating", utc(2027, 7, 7, 13, 0), "MMS are delayed."),),
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_cet_and_cest_page_winter_summer_and_the_switch(runner, tmp_path, fmt):
    resolved = DST.with_posts(Post("resolved", utc(2027, 3, 28, 2, 10), "Latency is normal."))
    snapshots = [[DST, WINTER], [resolved, WINTER], [SUMMER, resolved, WINTER]]
    text = unescaped(fmt, BERLIN, snapshots[2])
    for local in ("10:05</var> CET", "01:30</var> CET", "03:30</var> CEST", "15:00</var> CEST"):
        assert local in text  # the page really prints local times with both abbreviations
    events = replay_and_inspect(runner, tmp_path, fmt, BERLIN, snapshots)
    assert events == [
        event(1, "dst0switch01", "new_update", "resolved", utc(2027, 3, 28, 2, 10)),
        event(2, "summ3rcest01", "new_incident", "investigating", utc(2027, 7, 7, 13, 0)),
    ]


LOS_ANGELES = Page(zone="America/Los_Angeles")
JULY = Incident(
    key="summ3rpdt001",
    title="Number lookup errors",
    posts=(
        Post("resolved", utc(2027, 7, 4, 17, 45), "Lookups succeed again."),
        Post("investigating", utc(2027, 7, 4, 17, 0), "Lookups fail for some numbers."),
    ),
)
FALL_BACK = Incident(
    key="fallback0pst",
    title="Verification API timeouts",
    posts=(Post("investigating", utc(2027, 11, 7, 8, 30), "Timeouts in the US."),),
)
EVE = Incident(
    key="ny0pst000001",
    title="Email delivery delays",
    posts=(Post("investigating", utc(2028, 1, 1, 0, 30), "Emails are delayed."),),
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_pst_and_pdt_page_with_the_repeated_hour_and_new_years_eve(runner, tmp_path, fmt):
    # 01:30 PDT, then 01:10 PST: the local clock goes back, the abbreviation tells them apart.
    identified = FALL_BACK.with_posts(
        Post("identified", utc(2027, 11, 7, 9, 10), "A load balancer was misconfigured.")
    )
    snapshots = [[FALL_BACK, JULY], [identified, JULY], [EVE, identified, JULY]]
    text = unescaped(fmt, LOS_ANGELES, snapshots[2])
    for local in ("10:00</var> PDT", "01:30</var> PDT", "01:10</var> PST", "Dec <var"):
        assert local in text
    events = replay_and_inspect(runner, tmp_path, fmt, LOS_ANGELES, snapshots)
    assert events == [
        event(1, "fallback0pst", "new_update", "identified", utc(2027, 11, 7, 9, 10)),
        event(2, "ny0pst000001", "new_incident", "investigating", utc(2028, 1, 1, 0, 30)),
    ]


SAME_MINUTE = Incident(
    key="sam3minute01",
    title="Webhook retries",
    posts=(
        Post("investigating", utc(2026, 11, 3, 10, 0), "Second post."),
        Post("investigating", utc(2026, 11, 3, 10, 0), "First post."),
    ),
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_two_posts_in_one_minute_are_two_updates_and_a_third_is_one_more(runner, tmp_path, db, fmt):
    third = SAME_MINUTE.with_posts(Post("investigating", utc(2026, 11, 3, 10, 0), "Third post."))
    snapshots = [[OTHER], [SAME_MINUTE, OTHER], [third, OTHER]]
    events = replay_and_inspect(runner, tmp_path, fmt, UTC_PAGE, snapshots)
    at = utc(2026, 11, 3, 10, 0)
    assert events == [
        event(1, "sam3minute01", "new_incident", "investigating", at, 2),
        event(2, "sam3minute01", "new_update", "investigating", at, 1),
    ]
    ingest_all(db, fmt, UTC_PAGE, snapshots)
    rows = table(
        db,
        "SELECT u.seq, u.text FROM updates u JOIN incidents i ON i.id = u.incident_id "
        "WHERE i.key = ? ORDER BY u.seq",
        "sam3minute01",
    )
    assert rows == [
        {"seq": 0, "text": "First post."},
        {"seq": 1, "text": "Second post."},
        {"seq": 2, "text": "Third post."},
    ]


RESOLVED = Incident(
    key="p0stm0rt3m01",
    title="Elevated SMS failures",
    posts=(
        Post("resolved", utc(2026, 11, 3, 12, 0), "This incident has been resolved."),
        Post("investigating", utc(2026, 11, 3, 11, 0), "We are investigating failures."),
    ),
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_root_cause_under_an_old_stamp_is_stored_but_a_postmortem_post_is_an_event(
    runner, tmp_path, db, fmt
):
    appended = "This incident has been resolved. Root cause: a faulty deployment, rolled back."
    edited = replace(
        RESOLVED,
        posts=(replace(RESOLVED.posts[0], text=appended), RESOLVED.posts[1]),
        updated=utc(2026, 11, 4, 9, 0),
    )
    postmortem = edited.with_posts(
        Post("postmortem", utc(2026, 11, 5, 9, 0), "Post-incident report: what happened."),
        updated=utc(2026, 11, 5, 9, 0),
    )
    snapshots = [[RESOLVED], [edited], [postmortem]]
    events = replay_and_inspect(runner, tmp_path, fmt, UTC_PAGE, snapshots)
    assert events == [event(2, "p0stm0rt3m01", "new_update", "postmortem", utc(2026, 11, 5, 9, 0))]
    ingest_all(db, fmt, UTC_PAGE, snapshots[:2])
    rows = table(
        db, "SELECT posted_at, status, seq, text, first_seen_at, edited_at FROM updates ORDER BY id"
    )
    assert rows == [
        {
            "posted_at": "2026-11-03T12:00:00.000000Z",
            "status": "resolved",
            "seq": 0,
            "text": appended,
            "first_seen_at": "2026-11-26T12:00:00.000000Z",
            "edited_at": "2026-11-26T12:01:00.000000Z",
        },
        {
            "posted_at": "2026-11-03T11:00:00.000000Z",
            "status": "investigating",
            "seq": 0,
            "text": "We are investigating failures.",
            "first_seen_at": "2026-11-26T12:00:00.000000Z",
            "edited_at": None,
        },
    ]
    assert table(db, "SELECT count(*) AS n FROM changes") == [{"n": 0}]


@pytest.mark.parametrize("fmt", FORMATS)
def test_whitespace_only_template_change_and_reordering_are_not_events(runner, tmp_path, fmt):
    snapshots = [[RESOLVED, OTHER], [RESOLVED, OTHER], [OTHER, RESOLVED], [OTHER, RESOLVED]]
    variants = ["old", "new", "new", "old"]
    assert render(fmt, UTC_PAGE, snapshots[0]) != render(fmt, UTC_PAGE, snapshots[1], variant="new")
    assert replay_and_inspect(runner, tmp_path, fmt, UTC_PAGE, snapshots, variants) == []


MAINTENANCE = Incident(
    key="maint0000001",
    title="Planned maintenance: SMS platform",
    kind="maintenance",
    posts=(Post("scheduled", utc(2026, 10, 1, 14, 4), "We will upgrade the SMS platform."),),
    window=(utc(2026, 10, 5, 4, 0), utc(2026, 10, 5, 5, 0)),
    maintenance_end=utc(2026, 10, 5, 5, 0),
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_upcoming_maintenance_then_in_progress_then_completed(runner, tmp_path, db, fmt):
    # The banner and the end date go away once the maintenance starts, as on real pages.
    started = MAINTENANCE.with_posts(
        Post("in_progress", utc(2026, 10, 5, 4, 0), "Maintenance is in progress."),
        window=None,
        maintenance_end=None,
    )
    done = started.with_posts(Post("completed", utc(2026, 10, 5, 5, 0), "Completed."))
    snapshots = [[OTHER], [MAINTENANCE, OTHER], [started, OTHER], [done, OTHER]]
    events = replay_and_inspect(runner, tmp_path, fmt, UTC_PAGE, snapshots)
    assert events == [
        event(1, "maint0000001", "new_incident", "scheduled", utc(2026, 10, 1, 14, 4)),
        event(2, "maint0000001", "new_update", "in_progress", utc(2026, 10, 5, 4, 0)),
        event(3, "maint0000001", "new_update", "completed", utc(2026, 10, 5, 5, 0)),
    ]
    ingest_all(db, fmt, UTC_PAGE, snapshots)
    rows = table(
        db,
        "SELECT kind, scheduled_start_at, scheduled_end_at FROM incidents WHERE key = ?",
        "maint0000001",
    )
    assert rows == [
        {
            "kind": "maintenance",
            "scheduled_start_at": "2026-10-05T04:00:00.000000Z",
            "scheduled_end_at": "2026-10-05T05:00:00.000000Z",
        }
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_renamed_title_is_stored_without_an_event(runner, tmp_path, db, fmt):
    renamed = replace(RESOLVED, title="Elevated SMS failures (EU and UK)")
    snapshots = [[RESOLVED, OTHER], [renamed, OTHER]]
    assert replay_and_inspect(runner, tmp_path, fmt, UTC_PAGE, snapshots) == []
    ingest_all(db, fmt, UTC_PAGE, snapshots)
    rows = table(db, "SELECT key, title, last_changed_at, edited_at FROM incidents ORDER BY id")
    assert rows == [
        {
            "key": "p0stm0rt3m01",
            "title": "Elevated SMS failures (EU and UK)",
            "last_changed_at": "2026-11-26T12:00:00.000000Z",
            "edited_at": "2026-11-26T12:01:00.000000Z",
        },
        {
            "key": "0th3r0000001",
            "title": "Dashboard slowness",
            "last_changed_at": "2026-11-26T12:00:00.000000Z",
            "edited_at": None,
        },
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_entry_leaving_and_coming_back_unchanged_is_not_an_event(runner, tmp_path, fmt):
    later = RESOLVED.with_posts(Post("postmortem", utc(2026, 11, 6, 8, 0), "Report."))
    snapshots = [[RESOLVED, OTHER], [OTHER], [RESOLVED, OTHER], [OTHER], [later, OTHER]]
    events = replay_and_inspect(runner, tmp_path, fmt, UTC_PAGE, snapshots)
    # Only the post that appeared while the entry was away is new when it returns.
    assert events == [event(4, "p0stm0rt3m01", "new_update", "postmortem", utc(2026, 11, 6, 8, 0))]


def test_a_whole_incident_read_with_corrected_times_keeps_its_rows_and_mails_nothing(db, clock):
    """What the first poll after a parser fix sees on a page whose times were misread: the
    same posts at other times. The rows move (the change record still points at its update),
    nothing is reported; a post that is really new next to them still is."""
    feed_id = db.ensure_feed("https://status.example.com/history.atom", clock())["id"]
    t0 = clock() - timedelta(hours=3)
    posts = [(t0, "Investigating", "Looking into it."), (t0 + timedelta(hours=1), "Resolved", "ok")]
    old_post = (t0 - timedelta(days=3), "Resolved", "x")
    other = {"key": "other0000001", "title": "Other", "updates": [old_post]}
    ingest(db, feed_id, parse_feed(atom([other])), clock())  # baseline
    incident = {"key": "abc000000001", "title": "SMS delays", "updates": posts}
    clock.advance(minutes=1)
    first = ingest(db, feed_id, parse_feed(atom([incident, other])), clock())
    assert [c["type"] for c in first.changes] == ["new_incident"]
    before = table(db, "SELECT id, posted_at, status, seq, text FROM updates ORDER BY id")
    changes = table(db, "SELECT * FROM changes ORDER BY id")

    shift = timedelta(hours=-8)
    moved = {**incident, "updates": [(at + shift, status, text) for at, status, text in posts]}
    clock.advance(minutes=1)
    again = ingest(db, feed_id, parse_feed(atom([moved, other])), clock())
    assert again.changes == ()
    after = table(db, "SELECT id, posted_at, status, seq, text FROM updates ORDER BY id")
    assert [r["id"] for r in after] == [r["id"] for r in before]
    assert [(r["status"], r["text"]) for r in after] == [(r["status"], r["text"]) for r in before]
    assert [r["posted_at"] for r in after] == [
        to_db_time(from_db_time(r["posted_at"]) + shift) if r["text"] != "x" else r["posted_at"]
        for r in before
    ]
    assert table(db, "SELECT * FROM changes ORDER BY id") == [
        {**c, "posted_at": to_db_time(from_db_time(c["posted_at"]) + shift)} for c in changes
    ]

    report = (t0 + timedelta(days=1), "Postmortem", "What happened.")
    latest = {**moved, "updates": [*moved["updates"], report]}
    clock.advance(minutes=1)
    third = ingest(db, feed_id, parse_feed(atom([latest, other])), clock())
    assert [(c["type"], c["status"], c["count"]) for c in third.changes] == [
        ("new_update", "postmortem", 1)
    ]


def test_a_premature_resolution_removed_then_posted_again_is_mailed(db, clock):
    """The page posts 'resolved' too early (mailed), deletes it, and hours later resolves for
    real with the same boilerplate: the second one is a new update, on both databases."""
    feed_id = db.ensure_feed("https://status.example.com/history.atom", clock())["id"]
    t0 = clock() - timedelta(hours=6)
    inv = (t0, "Investigating", "Looking into it.")
    done = "This incident has been resolved."
    key = {"key": "prem00000001", "title": "SMS delays"}
    ingest(db, feed_id, parse_feed(atom([{**key, "updates": [inv]}])), clock())  # baseline
    polls = [
        [inv, (t0 + timedelta(hours=1), "Resolved", done)],  # too early: mailed
        [inv],  # deleted by the page
        [inv, (t0 + timedelta(hours=5), "Resolved", done)],  # the real one
    ]
    reported = []
    for updates in polls:
        clock.advance(minutes=5)
        result = ingest(db, feed_id, parse_feed(atom([{**key, "updates": updates}])), clock())
        reported.append([(c["type"], c["status"]) for c in result.changes])
    assert reported == [[("new_update", "resolved")], [], [("new_update", "resolved")]]
