"""Polling over real HTTP (tests/servers.py): baseline, changes, conditional GET, redirects,
stored values, and pollers running at the same moment (threads and processes)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from notifier.fetch import USER_AGENT, make_client
from notifier.poller import body_digest, poll_all

from .conftest import shared_fixture
from .feedgen import Incident, Page, Post, render, utc
from .helpers import raw_rows

CAP_BYTES = 5 * 1024 * 1024
PAGE = Page()
SMS = Incident(
    key="sms0000000a1",
    title="Delayed SMS delivery (EU)",
    posts=(
        Post("identified", utc(2026, 11, 26, 11, 20), "A carrier link is congested."),
        Post("investigating", utc(2026, 11, 26, 11, 2), "We are investigating delays."),
    ),
)
RESOLVED = SMS.with_posts(Post("resolved", utc(2026, 11, 26, 12, 1), "This is resolved."))
BODY0 = render("atom", PAGE, [SMS])
BODY1 = render("atom", PAGE, [RESOLVED])


@pytest.fixture
def http(settings):
    with make_client(settings.feed_timeout_seconds) as client:
        yield client


def ts(dt) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rows(db, sql: str, *params) -> list[dict]:
    return raw_rows(db, sql, *params)


def poll(db, http, clock, *urls):
    return poll_all(db, http, list(urls), clock(), CAP_BYTES)


def test_first_poll_records_baseline_without_changes(feed_server, db, http, clock):
    url = feed_server.set("/history.atom", BODY0)
    (result,) = poll(db, http, clock, url)
    assert (result.outcome, result.entries, result.changes) == ("baseline", 1, ())
    now = ts(clock())
    assert rows(db, "SELECT * FROM feeds") == [
        {
            "id": 1,
            "url": url,
            "title": "Sinch Status - Incident History",
            "page_url": feed_server.base_url,
            "etag": None,
            "last_modified": None,
            "body_hash": body_digest(BODY0),
            "baseline_at": now,
            "last_poll_at": now,
            "last_success_at": now,
            "last_error": None,
            "last_error_at": None,
            "consecutive_failures": 0,
            "components_synced_at": None,
            "created_at": now,
        }
    ]
    assert rows(db, "SELECT key, kind, title, link, first_seen_at FROM incidents") == [
        {
            "key": "sms0000000a1",
            "kind": "incident",
            "title": "Delayed SMS delivery (EU)",
            "link": "https://status.sinch.com/incidents/sms0000000a1",
            "first_seen_at": now,
        }
    ]
    assert rows(db, "SELECT status, posted_at, seq, text FROM updates ORDER BY id") == [
        {
            "status": "identified",
            "posted_at": "2026-11-26T11:20:00.000000Z",
            "seq": 0,
            "text": "A carrier link is congested.",
        },
        {
            "status": "investigating",
            "posted_at": "2026-11-26T11:02:00.000000Z",
            "seq": 0,
            "text": "We are investigating delays.",
        },
    ]
    assert rows(db, "SELECT * FROM changes") == []


def test_a_new_update_is_recorded_once_as_a_change(feed_server, db, http, clock):
    url = feed_server.set("/history.atom", BODY0)
    poll(db, http, clock, url)
    feed_server.set("/history.atom", BODY1)
    clock.advance(minutes=1)
    (result,) = poll(db, http, clock, url)
    (row,) = rows(db, "SELECT * FROM changes")
    assert row == {
        "id": 1,
        "feed_id": 1,
        "incident_id": 1,
        "update_id": 3,
        "type": "new_update",
        "status": "resolved",
        "posted_at": "2026-11-26T12:01:00.000000Z",
        "count": 1,
        "detected_at": ts(clock()),
        "processed_at": None,
        "window_start_at": None,  # window columns: issue 11, only for window changes
        "window_end_at": None,
        "previous_start_at": None,
        "previous_end_at": None,
        "window_sequence": None,
    }
    assert result.changes == (
        {
            "id": 1,
            "incident_id": 1,
            "key": "sms0000000a1",
            "type": "new_update",
            "status": "resolved",
            "posted_at": utc(2026, 11, 26, 12, 1),
            "count": 1,
        },
    )
    clock.advance(minutes=1)
    feed_server.set("/history.atom", render("atom", PAGE, [RESOLVED], variant="new"))
    assert [r.outcome for r in poll(db, http, clock, url)] == ["no_changes"]
    assert len(rows(db, "SELECT * FROM changes")) == 1


def test_an_identical_body_is_not_parsed_again(feed_server, db, http, clock, monkeypatch):
    url = feed_server.set("/history.atom", BODY0)
    poll(db, http, clock, url)

    def must_not_parse(*args, **kwargs):
        raise AssertionError("an identical body was parsed")

    monkeypatch.setattr("notifier.poller.parse_feed", must_not_parse)
    clock.advance(minutes=1)
    assert [(r.outcome, r.error) for r in poll(db, http, clock, url)] == [("same_body", None)]
    (feed,) = rows(db, "SELECT last_poll_at, last_success_at, body_hash FROM feeds")
    assert feed == {
        "last_poll_at": ts(clock()),
        "last_success_at": ts(clock()),
        "body_hash": body_digest(BODY0),
    }


def test_an_etag_is_sent_back_and_304_changes_nothing(feed_server, db, http, clock):
    url = feed_server.set("/history.atom", BODY0, headers={"ETag": '"v1"'})
    poll(db, http, clock, url)
    assert "If-None-Match" not in feed_server.requests[-1]["headers"]
    clock.advance(minutes=1)
    assert [r.outcome for r in poll(db, http, clock, url)] == ["not_modified"]
    assert feed_server.requests[-1]["headers"]["If-None-Match"] == '"v1"'
    (feed,) = rows(db, "SELECT etag, body_hash, last_success_at, last_error FROM feeds")
    assert feed == {
        "etag": '"v1"',
        "body_hash": body_digest(BODY0),
        "last_success_at": ts(clock()),
        "last_error": None,
    }
    feed_server.set("/history.atom", BODY1, headers={"ETag": '"v2"'})
    clock.advance(minutes=1)
    assert [r.outcome for r in poll(db, http, clock, url)] == ["changes"]
    assert rows(db, "SELECT etag FROM feeds") == [{"etag": '"v2"'}]


def test_last_modified_is_sent_back_as_if_modified_since(feed_server, db, http, clock):
    stamp = "Wed, 25 Nov 2026 10:00:00 GMT"
    url = feed_server.set("/history.atom", BODY0, headers={"Last-Modified": stamp})
    poll(db, http, clock, url)
    clock.advance(minutes=1)
    # The server ignores it and answers 200: 304 is never relied on.
    assert [r.outcome for r in poll(db, http, clock, url)] == ["same_body"]
    assert feed_server.requests[-1]["headers"]["If-Modified-Since"] == stamp


def test_every_request_carries_our_user_agent(feed_server, db, http, clock):
    url = feed_server.set("/history.atom", BODY0)
    poll(db, http, clock, url)
    assert [r["headers"]["User-Agent"] for r in feed_server.requests] == [USER_AGENT]
    assert USER_AGENT.startswith("status-notifier/")


def test_redirects_are_followed_and_logged(feed_server, db, http, clock, caplog):
    url = feed_server.set("/old/history.atom", fault="redirect:/new/history.atom")
    feed_server.set("/new/history.atom", BODY0)
    with caplog.at_level(logging.INFO, logger="notifier"):
        (result,) = poll(db, http, clock, url)
    assert result.outcome == "baseline"
    assert f"feed {url} redirected (301) to /new/history.atom" in caplog.messages
    assert [r["path"] for r in feed_server.requests] == ["/old/history.atom", "/new/history.atom"]


def test_a_redirect_loop_is_an_error(feed_server, db, http, clock, caplog):
    url = feed_server.set("/loop/history.atom", fault="redirect:/loop/history.atom")
    with caplog.at_level(logging.INFO, logger="notifier"):
        (result,) = poll(db, http, clock, url)
    assert (result.outcome, result.error) == ("error", f"too many redirects fetching {url}")
    assert f"poll failed: too many redirects fetching {url}" in caplog.messages


def test_html_in_titles_and_texts_is_stored_as_inert_text(feed_server, db, http, clock):
    hostile = Incident(
        key="html0000000x",
        title='SMS <b>down</b> & "MMS" <script>steal()</script>',
        posts=(
            Post(
                "investigating",
                utc(2026, 11, 26, 11, 0),
                '<p onclick="x()">Delays</p> <a href="javascript:alert(1)">details</a> '
                '<a href="https://status.sinch.com/x">more</a> &lt;img src=x onerror=y&gt;',
                html=True,
            ),
        ),
    )
    url = feed_server.set("/history.rss", render("rss", PAGE, [hostile]))
    poll(db, http, clock, url)
    assert rows(
        db, "SELECT i.title, u.text FROM incidents i JOIN updates u ON u.incident_id = i.id"
    ) == [
        {
            # A text title is stored as written and escaped wherever it is shown (issue 10).
            "title": 'SMS <b>down</b> & "MMS" <script>steal()</script>',
            "text": "Delays details more (https://status.sinch.com/x) <img src=x onerror=y>",
        }
    ]


def test_real_capture_ongoing_then_resolved_over_http(feed_server, db, http, clock):
    ongoing = shared_fixture("statuspage", "githubstatus_history_2022-07-28_ongoing-incident.atom")
    resolved = shared_fixture(
        "statuspage", "githubstatus_history_2022-07-29_same-incident-resolved.atom"
    )
    url = feed_server.set("/history.atom", ongoing.read_bytes())
    assert [r.outcome for r in poll(db, http, clock, url)] == ["baseline"]
    feed_server.set("/history.atom", resolved.read_bytes())
    clock.advance(minutes=1)
    assert [r.outcome for r in poll(db, http, clock, url)] == ["changes"]
    assert rows(
        db,
        "SELECT i.key, c.type, c.status, c.posted_at, c.count FROM changes c "
        "JOIN incidents i ON i.id = c.incident_id",
    ) == [
        {
            "key": "7rghmvv5crq0",
            "type": "new_update",
            "status": "resolved",
            "posted_at": "2022-07-28T06:24:00.000000Z",
            "count": 4,
        }
    ]


def polled_at_once(db, clock, settings, url, pollers: int = 2) -> list[str]:
    barrier = threading.Barrier(pollers)
    outcomes: list[str] = []

    def run():
        with make_client(settings.feed_timeout_seconds) as client:
            barrier.wait()
            outcomes.extend(r.outcome for r in poll_all(db, client, [url], clock(), CAP_BYTES))

    threads = [threading.Thread(target=run) for _ in range(pollers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return sorted(outcomes)


def test_two_threads_polling_at_once_record_each_change_once(feed_server, db, clock, settings):
    # The delay keeps both requests in flight together, so both parse before either stores.
    url = feed_server.set("/history.atom", BODY0, delay_seconds=0.3)
    assert polled_at_once(db, clock, settings, url) == ["baseline", "no_changes"]
    assert rows(db, "SELECT count(*) AS n FROM incidents") == [{"n": 1}]
    feed_server.set("/history.atom", BODY1, delay_seconds=0.3)
    clock.advance(minutes=1)
    assert polled_at_once(db, clock, settings, url) == ["changes", "no_changes"]
    assert rows(db, "SELECT type, status, count FROM changes") == [
        {"type": "new_update", "status": "resolved", "count": 1}
    ]
    assert rows(db, "SELECT count(*) AS n FROM updates") == [{"n": 3}]


@pytest.mark.slow
def test_two_processes_polling_at_once_record_each_change_once(
    feed_server, db, http, clock, tmp_path, settings
):
    url = feed_server.set("/history.atom", BODY0)
    poll(db, http, clock, url)
    feed_server.set("/history.atom", BODY1, delay_seconds=1.0)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "DATABASE", "FEED"))}
    env.update(
        DATABASE_URL=settings.database_url,
        FEED_URLS=url,
        INSTANCE_PATH=str(tmp_path / "instance"),
        APP_ENV="test",
        LOG_LEVEL="WARNING",
    )
    command = [sys.executable, "-m", "flask", "--app", "app", "poll-once"]
    root = Path(__file__).resolve().parents[1]
    workers = [
        subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = sorted(w.communicate(timeout=60)[0].strip() for w in workers)
    assert [w.returncode for w in workers] == [0, 0]
    assert outputs[0] == f"{url}: 1 change(s) recorded from 1 entries"
    assert outputs[1] in {
        f"{url}: no changes in 1 entries",
        f"{url}: body unchanged since last poll",
    }
    assert rows(db, "SELECT type, status, count FROM changes") == [
        {"type": "new_update", "status": "resolved", "count": 1}
    ]
