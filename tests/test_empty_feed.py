"""Issue 16, item 4: a well-formed feed with no entries is a valid baseline (a brand-new page),
and its first incident is mailed; broken bodies stay errors and count towards the health alert.

Replays go through poller.replay and the CLI; the poller path serves real feed bytes over local
HTTP and runs on SQLite and PostgreSQL, through notifications to the fake SendGrid.
"""

from __future__ import annotations

import json

import pytest

from notifier import jobs
from notifier.admin.dashboard import feed_health
from notifier.feed import FeedError
from notifier.poller import body_digest, parse_usable, replay

from .feedgen import FORMATS, Incident, Page, Post, render, utc
from .helpers import add_subscriber, poll_and_mail_through_fakes, raw_rows

PAGE = Page()
FIRST = Incident(
    key="first00000a1",
    title="Delayed SMS delivery (EU)",
    posts=(Post("investigating", utc(2026, 11, 26, 11, 58), "We are investigating delays."),),
)
FIRST_IDENTIFIED = FIRST.with_posts(
    Post("identified", utc(2026, 11, 26, 12, 10), "A carrier link is congested.")
)
ORPHAN = Incident(
    key="orphan",
    title="Orphaned entry",
    posts=(Post("investigating", utc(2026, 11, 26, 12, 0), "No link."),),
    link="",
)


def empty(fmt: str) -> bytes:
    return render(fmt, PAGE, [])


def first_incident_event(snapshot: int) -> dict:
    return {
        "snapshot": snapshot,
        "key": "first00000a1",
        "type": "new_incident",
        "status": "investigating",
        "at": "2026-11-26T11:58:00Z",
        "count": 1,
    }


def contract(events: list[dict]) -> list[dict]:
    return [
        {
            "snapshot": e["snapshot"],
            "key": e["key"],
            "type": e["type"],
            "status": e["status"],
            "at": e["posted_at"].strftime("%Y-%m-%dT%H:%M:00Z"),
            "count": e["count"],
        }
        for e in events
    ]


# --- parse_usable and replay ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_empty_feed_is_usable(fmt):
    parsed = parse_usable(empty(fmt), utc(2026, 11, 26, 12, 0))
    assert (parsed.format, parsed.title, parsed.entries, parsed.found, parsed.problems) == (
        fmt,
        "Sinch Status - Incident History",
        (),
        0,
        (),
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_replay_empty_baseline_then_the_first_incident_is_one_event(fmt):
    events = replay([empty(fmt), empty(fmt), render(fmt, PAGE, [FIRST])])
    assert contract(events) == [first_incident_event(2)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_replay_first_incident_then_its_update(fmt):
    events = replay([empty(fmt), render(fmt, PAGE, [FIRST]), render(fmt, PAGE, [FIRST_IDENTIFIED])])
    assert contract(events) == [
        first_incident_event(1),
        {
            "snapshot": 2,
            "key": "first00000a1",
            "type": "new_update",
            "status": "identified",
            "at": "2026-11-26T12:10:00Z",
            "count": 1,
        },
    ]


def test_cli_replay_of_an_empty_baseline_prints_one_event(runner, tmp_path):
    paths = []
    for name, body in (("0.atom", empty("atom")), ("1.atom", render("atom", PAGE, [FIRST]))):
        (tmp_path / name).write_bytes(body)
        paths.append(str(tmp_path / name))
    result = runner.invoke(args=["feed", "replay", *paths, "--json"])
    assert (result.exit_code, result.stderr) == (0, ""), result.output
    assert json.loads(result.stdout) == {"events": [first_incident_event(1)]}


def test_cli_inspect_of_an_empty_feed(runner, tmp_path):
    path = tmp_path / "empty.rss"
    path.write_bytes(empty("rss"))
    result = runner.invoke(args=["feed", "inspect", str(path), "--json"])
    assert (result.exit_code, result.stderr) == (0, "")
    assert json.loads(result.stdout) == {"format": "rss", "entries": []}


def truncated(fmt: str) -> bytes:
    body = render(fmt, PAGE, [FIRST])
    return body[: len(body) * 2 // 3]


# (body, how the refusal starts) — still errors, whatever the entries
ERRORS = {
    "html_error_page": (
        b"<!DOCTYPE html><html><body><h1>503 Service Unavailable</h1></body></html>",
        "not an Atom or RSS feed: the body is an HTML page",
    ),
    "non_feed_xml": (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code></Error>\n',
        "not an Atom or RSS feed: no <feed> or <rss> root element",
    ),
    "empty_body": (b"", "the body is empty"),
    "truncated_atom": (truncated("atom"), "not well-formed XML, truncated or corrupt ("),
    "truncated_rss": (truncated("rss"), "not well-formed XML, truncated or corrupt ("),
    "truncated_empty_atom": (empty("atom")[:-12], "not well-formed XML, truncated or corrupt ("),
    "garbled_tag": (
        empty("rss").replace(b"<channel>", b"<chan\x92nel>"),
        "not well-formed XML, truncated or corrupt (",
    ),
    "every_entry_unusable": (
        render("atom", PAGE, [ORPHAN]),
        "none of the feed's 1 entries is usable (entry 'Orphaned entry' has no "
        "/incidents/<code> link; skipped); kept the previous state",
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_broken_bodies_are_still_errors(case):
    body, reason = ERRORS[case]
    with pytest.raises(FeedError) as info:
        parse_usable(body, utc(2026, 11, 26, 12, 0))
    assert str(info.value).startswith(reason), str(info.value)
    with pytest.raises(FeedError) as info:
        replay([empty("atom"), body])
    assert str(info.value).startswith(f"snapshot 1: {reason}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_feed_that_had_entries_and_now_has_none_is_an_error(fmt):
    emptied = (
        "snapshot 2: the feed lists no entries, but earlier polls stored incidents from it; "
        "kept the previous state"
    )
    with pytest.raises(FeedError) as info:
        replay([empty(fmt), render(fmt, PAGE, [FIRST]), empty(fmt)])
    assert str(info.value) == emptied
    with pytest.raises(FeedError) as info:  # a baseline with entries counts the same
        replay([render(fmt, PAGE, [FIRST]), empty(fmt)])
    assert str(info.value) == emptied.replace("snapshot 2", "snapshot 1")


def test_cli_replay_refuses_an_emptied_feed_with_one_line(runner, tmp_path):
    paths = []
    for name, body in (("0.atom", render("atom", PAGE, [FIRST])), ("1.atom", empty("atom"))):
        (tmp_path / name).write_bytes(body)
        paths.append(str(tmp_path / name))
    result = runner.invoke(args=["feed", "replay", *paths, "--json"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        "Error: snapshot 1: the feed lists no entries, but earlier polls stored incidents from "
        "it; kept the previous state"
    ]


# --- the real poller path: HTTP, store on both databases, notifications, mails ----------------


@pytest.fixture
def world(app, settings, sendgrid, feed_server):
    url = feed_server.url("/history.rss")
    poll_and_mail_through_fakes(app, settings, sendgrid, url)
    return app, url


def feed_state(db, url: str) -> dict:
    (row,) = raw_rows(
        db,
        "SELECT baseline_at, body_hash, last_success_at, last_error, consecutive_failures "
        "FROM feeds WHERE url = ?",
        url,
    )
    return row


def ts(dt) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sent(sendgrid) -> list[tuple[str, str]]:
    return sorted(
        (p["to"][0]["email"], r.body["subject"])
        for r in sendgrid.requests
        if r.status == 202
        for p in r.body["personalizations"]
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_poller_empty_page_is_a_quiet_baseline_and_its_first_incident_is_mailed(
    world, db, sendgrid, feed_server, clock, fmt
):
    app, url = world
    add_subscriber(db, "ben@example.com", now=clock(), language="en")
    add_subscriber(db, "anna@example.de", now=clock(), language="de")
    t0 = clock()
    feed_server.set("/history.rss", empty(fmt))
    for _ in range(6):  # more than STALE_AFTER_POLLS quiet polls
        jobs.poll(app)
        jobs.dispatch(app)
        clock.advance(minutes=1)
    last_quiet = clock.advance(minutes=-1)
    assert feed_state(db, url) == {
        "baseline_at": ts(t0),
        "body_hash": body_digest(empty(fmt)),
        "last_success_at": ts(last_quiet),
        "last_error": None,
        "consecutive_failures": 0,
    }
    health = feed_health(url, db.get_feed(url), app.extensions["settings"], clock())
    assert (health.problem, health.consecutive_failures) == (None, 0)
    answer = app.test_client().get("/healthz")
    assert (answer.status_code, answer.get_json()) == (
        200,
        {
            "status": "ok",
            "database": "ok",
            "feeds": [{"feed": "feed-1", "last_success_age_seconds": 0, "consecutive_failures": 0}],
        },
    )
    assert (db.list_changes(), sendgrid.requests) == ([], [])

    feed_server.set("/history.rss", render(fmt, PAGE, [FIRST]))
    clock.advance(minutes=1)
    jobs.poll(app)
    jobs.dispatch(app)
    changes = db.list_changes()
    assert [(c["key"], c["type"], c["status"], c["count"]) for c in changes] == [
        ("first00000a1", "new_incident", "investigating", 1)
    ]
    notifications = raw_rows(db, "SELECT kind, change_id FROM notifications ORDER BY id")
    assert notifications == [{"kind": "incident", "change_id": changes[0]["id"]}]
    assert sent(sendgrid) == [
        ("anna@example.de", "[Untersuchung läuft] Sinch: Delayed SMS delivery (EU)"),
        ("ben@example.com", "[Investigating] Sinch: Delayed SMS delivery (EU)"),
    ]

    # The same body again: nothing more, whatever the number of polls.
    for _ in range(2):
        clock.advance(minutes=1)
        jobs.poll(app)
        jobs.dispatch(app)
    assert len(db.list_changes()) == 1 and len(sent(sendgrid)) == 2


def test_poller_a_feed_emptied_after_entries_fails_and_keeps_its_state(
    world, db, sendgrid, feed_server, clock
):
    app, url = world
    body = render("rss", PAGE, [FIRST])
    feed_server.set("/history.rss", body)
    t0 = clock()
    jobs.poll(app)
    feed_server.set("/history.rss", empty("rss"))
    error = (
        f"unusable feed from {url}: the feed lists no entries, but earlier polls stored "
        "incidents from it; kept the previous state"
    )
    for polls in range(1, 6):
        clock.advance(minutes=1)
        jobs.poll(app)
        assert feed_state(db, url) == {
            "baseline_at": ts(t0),
            "body_hash": body_digest(body),
            "last_success_at": ts(t0),
            "last_error": error,
            "consecutive_failures": polls,
        }
    health = feed_health(url, db.get_feed(url), app.extensions["settings"], clock())
    assert health.problem == "failing"

    # The entries come back, with one new update: only that update is news.
    feed_server.set("/history.rss", render("rss", PAGE, [FIRST_IDENTIFIED]))
    clock.advance(minutes=1)
    jobs.poll(app)
    assert [(c["key"], c["type"], c["status"]) for c in db.list_changes()] == [
        ("first00000a1", "new_update", "identified")
    ]
    assert feed_state(db, url)["consecutive_failures"] == 0
