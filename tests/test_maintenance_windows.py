"""Maintenance windows that move or are cancelled are events (issue 11, part W).

Replays of generated snapshot sequences (tests/feedgen.py, Atom and RSS, plus Statuspage JSON
API answers) give exactly the right `rescheduled` / `cancelled` events; the store records each
once (both backends), notify_changes turns each into one maintenance notification, and a
database at migration 0012 upgrades with its data and links intact.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from notifier.cli import replay_event
from notifier.enrich import apply_windows
from notifier.feed import parse_feed
from notifier.notifications import incident_content, notify_changes
from notifier.poller import ingest as ingest_parsed
from notifier.poller import replay

from .feedgen import Page, Post, maintenance, render, scheduled_maintenances_json, utc
from .helpers import add_subscriber, table

PAGE = Page()
T = utc(2026, 11, 26, 12, 0)  # the replays' and the clock fixture's start
W1 = (utc(2026, 12, 5, 4, 0), utc(2026, 12, 5, 6, 0))
W2 = (utc(2026, 12, 8, 4, 0), utc(2026, 12, 8, 6, 0))
W3 = (utc(2026, 12, 9, 22, 0), utc(2026, 12, 10, 2, 0))
KEY = "mnt00000win1"
M = maintenance(KEY, "Voice platform upgrade", W1, utc(2026, 11, 26, 9, 0), "We will upgrade.")
OTHER = maintenance(
    "mnt00000oth2", "Database upgrade", W2, utc(2026, 11, 26, 9, 30), "We will upgrade the DB."
)
DONE = maintenance(
    "mnt00000old3", "Old maintenance", (utc(2026, 11, 1, 4), utc(2026, 11, 1, 5)),
    utc(2026, 10, 30, 9, 0), "Done long ago.",
)  # fmt: skip
FORMATS = ("atom", "rss")


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:00Z")


def window(w) -> list:
    return [iso(w[0]), iso(w[1])]


def api(*items) -> bytes:
    """scheduled-maintenances.json listing (incident, window, status) items, plus an old
    completed one (a page with history)."""
    return scheduled_maintenances_json(PAGE, (*items, (DONE, DONE.window, "completed")))


def replayed(fmt: str, *snapshots, start: datetime = T) -> list[dict]:
    """The `feed replay --json` events of snapshots: lists of incidents (rendered as `fmt`)
    or bytes (JSON API answers)."""
    bodies = [s if isinstance(s, bytes) else render(fmt, PAGE, s) for s in snapshots]
    return [replay_event(c) for c in replay(bodies, start=start)]


def rescheduled(snapshot: int, new, old, key: str = KEY) -> dict:
    return {
        "snapshot": snapshot,
        "key": key,
        "type": "rescheduled",
        "window": window(new),
        "previous_window": window(old),
    }


def cancelled(snapshot: int, old, key: str = KEY) -> dict:
    return {
        "snapshot": snapshot,
        "key": key,
        "type": "cancelled",
        "window": None,
        "previous_window": window(old),
    }


# --- replays -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_window_moved_once_is_one_rescheduled_event(fmt):
    assert replayed(fmt, [M, OTHER], [M.moved_to(*W2), OTHER]) == [rescheduled(1, W2, W1)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_window_moved_twice_is_two_events_one_per_poll_that_saw_it(fmt):
    assert replayed(fmt, [M], [M.moved_to(*W2)], [M.moved_to(*W2)], [M.moved_to(*W3)]) == [
        rescheduled(1, W2, W1),
        rescheduled(3, W3, W2),
    ]


def test_an_end_extended_while_in_progress_is_rescheduled_from_the_rss_end_date():
    running = M.started(Post("in_progress", W1[0], "Started."))
    longer = (W1[0], W1[1] + timedelta(hours=2))
    assert replayed("rss", [M], [running], [running.started(end=longer[1])]) == [
        {
            "snapshot": 1,
            "key": KEY,
            "type": "new_update",
            "status": "in_progress",
            "at": iso(W1[0]),
            "count": 1,
        },
        rescheduled(2, longer, W1),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_end_extended_while_in_progress_is_rescheduled_from_the_json_api(fmt):
    running = M.started(Post("in_progress", W1[0], "Started."))
    longer = (W1[0], W1[1] + timedelta(hours=2))
    events = replayed(
        fmt,
        [M],
        [running],
        api((running, longer, "in_progress")),
        api((running, longer, "in_progress")),  # a second look finds it stored
        start=W1[0] + timedelta(minutes=10),
    )
    assert events[1:] == [rescheduled(2, longer, W1)]


def test_the_rss_date_of_a_running_maintenance_is_not_taken_for_its_start():
    # Once the banner is gone, RSS <pubDate> follows the newest post; only the end date is the
    # window's. The API then confirming the window is no move.
    running = M.started(Post("in_progress", W1[0] + timedelta(minutes=3), "Started."))
    events = replayed("rss", [M], [running], api((running, W1, "in_progress")), start=W1[0])
    assert [e["type"] for e in events] == ["new_update"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_maintenance_the_api_reports_cancelled_is_cancelled_once(fmt):
    assert replayed(
        fmt,
        [M, OTHER],
        api((M, W1, "cancelled"), (OTHER, W2, "scheduled")),
        api((M, W1, "cancelled"), (OTHER, W2, "scheduled")),
        [M.moved_to(*W2), OTHER],  # a cancelled maintenance does not move any more
    ) == [cancelled(1, W1)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_upcoming_maintenance_the_api_stops_listing_is_cancelled_once(fmt):
    listed = api((M, W1, "scheduled"), (OTHER, W2, "scheduled"))
    gone = api((OTHER, W2, "scheduled"))
    assert replayed(fmt, [M, OTHER], listed, gone, gone, [M, OTHER]) == [cancelled(2, W1)]


def test_a_captured_api_answer_is_judged_at_its_own_time():
    # Replayed today, a capture from 2025: its page.updated_at says when "upcoming" was.
    old = (utc(2025, 3, 5, 4), utc(2025, 3, 5, 6))
    then = maintenance(KEY, "Voice platform upgrade", old, utc(2025, 3, 1, 9), "Planned.")
    listed = scheduled_maintenances_json(PAGE, ((then, old, "scheduled"),), utc(2025, 3, 2))
    gone = scheduled_maintenances_json(PAGE, ((DONE, DONE.window, "completed"),), utc(2025, 3, 3))
    assert replayed("atom", [then], listed, gone, start=utc(2026, 11, 26)) == [cancelled(2, old)]


def test_a_maintenance_the_api_never_listed_is_not_cancelled_by_its_absence():
    # The API's cache may lag behind the feed: only a maintenance it listed before can go.
    gone = api((OTHER, W2, "scheduled"))
    assert replayed("atom", [M, OTHER], gone, gone) == []


def test_only_a_whole_scheduled_maintenances_answer_cancels_by_absence():
    listed = api((M, W1, "scheduled"), (OTHER, W2, "scheduled"))
    incidents_json = b'{"incidents": [{"id": "inc0000000x1", "status": "resolved"}]}'
    empty = b'{"scheduled_maintenances": []}'
    assert replayed("atom", [M, OTHER], listed, incidents_json, empty) == []


def test_a_started_maintenance_the_api_stops_listing_is_not_cancelled():
    running = M.started(Post("in_progress", W1[0], "Started."))
    listed = api((running, W1, "in_progress"), (OTHER, W2, "scheduled"))
    gone = api((OTHER, W2, "scheduled"))
    events = replayed("atom", [M, OTHER], [running, OTHER], listed, gone, start=W1[0])
    assert [e["type"] for e in events] == ["new_update"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_maintenance_dropping_out_of_the_feed_sends_nothing(fmt):
    assert replayed(fmt, [M, OTHER], [OTHER], [OTHER]) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_text_only_edit_is_no_event(fmt):
    edited = replace(M, posts=(Post("scheduled", M.posts[0].at, "Reworded."),))
    assert replayed(fmt, [M], [edited], [edited.with_posts(title="Voice upgrade")]) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_banner_removed_when_the_maintenance_starts_is_no_window_event(fmt):
    running = M.started(Post("in_progress", W1[0], "Started."))
    done = running.started(Post("completed", W1[1], "Done."))
    assert [(e["type"], e.get("status")) for e in replayed(fmt, [M], [running], [done])] == [
        ("new_update", "in_progress"),
        ("new_update", "completed"),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_feed_and_api_seeing_the_same_move_is_one_event(fmt):
    moved = M.moved_to(*W2)
    assert replayed(fmt, [M], [moved], api((moved, W2, "scheduled"))) == [rescheduled(1, W2, W1)]
    # The API first, the feed after it.
    assert replayed(fmt, [M], api((M, W2, "scheduled")), [moved]) == [rescheduled(1, W2, W1)]


def test_a_new_maintenance_is_new_not_rescheduled():
    assert replayed("atom", [OTHER], [M, OTHER]) == [
        {
            "snapshot": 1,
            "key": KEY,
            "type": "new_incident",
            "status": "scheduled",
            "at": iso(M.posts[0].at),
            "count": 1,
        }
    ]


# --- store, notifications (both backends) ------------------------------------------------------
FEED_URL = "https://status.sinch.com/history.atom"


@pytest.fixture
def feed(db, clock):
    """The page's feed with its baseline: the maintenance and another one, both upcoming."""
    feed_id = db.ensure_feed(FEED_URL, clock())["id"]
    poll(db, feed_id, [M, OTHER], clock())
    return feed_id


def poll(db, feed_id: int, incidents, now: datetime):
    body = render("atom", PAGE, incidents)
    return ingest_parsed(db, feed_id, parse_feed(body), now, page_url=PAGE.url)


def api_answer(*items) -> dict:
    import json

    return json.loads(api(*items))


def expected_content(change: str, status: str, shown, sequence: int, previous=None) -> dict:
    content = {
        "kind": "maintenance",
        "page_name": "Sinch",
        "page_url": PAGE.url,
        "incident": {
            "key": KEY,
            "title": "Voice platform upgrade",
            "link": f"{PAGE.url}/incidents/{KEY}",
            "impact": None,
            "components": [],
            "scheduled_start": iso(shown[0]),
            "scheduled_end": iso(shown[1]),
            "window_sequence": sequence,
        },
        "status": status,
        "change": change,
        "new_updates": 0,
        "updates": [
            {"status": "scheduled", "at": "2026-11-26T09:00:00Z", "text": "We will upgrade."}
        ],
    }
    if previous is not None:
        content["previous_window"] = {"start": iso(previous[0]), "end": iso(previous[1])}
    return content


def notifications(db) -> list[dict]:
    return [
        {
            k: n[k]
            for k in ("kind", "incident_id", "content", "audience", "created_at", "expires_at")
        }
        for n in (db.get_notification(r["id"]) for r in table(db, "notifications"))
    ]


def deliveries(db) -> list[tuple]:
    return [
        (d["notification_id"], d["email"], d["state"])
        for d in table(db, "deliveries", "notification_id, email")
    ]


def incident_row(db) -> dict:
    row = db._query_one(
        "SELECT id, scheduled_start_at, scheduled_end_at, window_sequence, cancelled_at "
        "FROM incidents WHERE key = ?",
        [KEY],
    )
    return row


def test_a_move_is_recorded_once_and_notified_once(db, feed, settings, clock):
    add_subscriber(db, "all@example.com", now=clock())
    add_subscriber(db, "de@example.com", now=clock(), language="de")
    add_subscriber(db, "incidents-only@example.com", now=clock(), maintenance=False)
    clock.advance(minutes=5)
    moved = M.moved_to(*W2)

    first = poll(db, feed, [moved, OTHER], clock())
    second = poll(db, feed, [moved, OTHER], clock() + timedelta(minutes=1))  # another poller
    again = apply_windows(db, feed, api_answer((moved, W2, "scheduled")), clock(), full=True)

    incident = incident_row(db)
    assert [{k: v for k, v in c.items() if k != "id"} for c in first.changes] == [
        {
            "incident_id": incident["id"],
            "key": KEY,
            "type": "rescheduled",
            "status": "scheduled",
            "posted_at": clock(),
            "count": 0,
            "window": W2,
            "previous_window": W1,
        }
    ]
    assert (second.changes, again) == ((), [])
    assert incident == {
        "id": incident["id"],
        "scheduled_start_at": W2[0],
        "scheduled_end_at": W2[1],
        "window_sequence": 1,
        "cancelled_at": None,
    }

    created = notify_changes(db, settings, clock())
    assert notify_changes(db, settings, clock()) == []
    assert len(created) == 1
    assert notifications(db) == [
        {
            "kind": "maintenance",
            "incident_id": incident["id"],
            "content": expected_content("rescheduled", "scheduled", W2, 1, previous=W1),
            "audience": {"components": [], "feed_id": feed},
            "created_at": clock(),
            "expires_at": clock() + timedelta(hours=settings.notification_ttl_hours),
        }
    ]
    assert deliveries(db) == [
        (created[0], "all@example.com", "pending"),
        (created[0], "de@example.com", "pending"),
    ]


def test_a_cancellation_is_recorded_once_and_notified_once(db, feed, settings, clock):
    add_subscriber(db, "all@example.com", now=clock())
    listed = api_answer((M, W1, "scheduled"), (OTHER, W2, "scheduled"))
    gone = api_answer((OTHER, W2, "scheduled"))
    assert apply_windows(db, feed, listed, clock(), full=True) == []
    clock.advance(minutes=5)

    recorded = apply_windows(db, feed, gone, clock(), full=True)
    assert apply_windows(db, feed, gone, clock() + timedelta(minutes=5), full=True) == []
    assert poll(db, feed, [M.moved_to(*W2), OTHER], clock()).changes == ()

    incident = incident_row(db)
    assert [{k: v for k, v in c.items() if k != "id"} for c in recorded] == [
        {
            "incident_id": incident["id"],
            "key": KEY,
            "type": "cancelled",
            "status": "cancelled",
            "posted_at": clock(),
            "count": 0,
            "window": None,
            "previous_window": W1,
        }
    ]
    assert incident["window_sequence"] == 1 and incident["cancelled_at"] == clock()

    [nid] = notify_changes(db, settings, clock())
    assert notify_changes(db, settings, clock()) == []
    assert notifications(db) == [
        {
            "kind": "maintenance",
            "incident_id": incident["id"],
            "content": expected_content("cancelled", "cancelled", W1, 1),
            "audience": {"components": [], "feed_id": feed},
            "created_at": clock(),
            "expires_at": clock() + timedelta(hours=settings.notification_ttl_hours),
        }
    ]
    assert deliveries(db) == [(nid, "all@example.com", "pending")]


def test_the_apis_first_word_on_a_doubted_window_corrects_it_silently(db, feed, clock):
    # The parser was unsure of the banner's zone: an hour off is a misreading, not a move.
    with db.write():
        db._execute("UPDATE incidents SET time_doubt = '[\"Dec 5, 04:00 XST: read as UTC\"]'")
    shifted = (W1[0] - timedelta(hours=1), W1[1] - timedelta(hours=1))
    assert apply_windows(db, feed, api_answer((M, shifted, "scheduled")), clock(), full=True) == []
    assert (incident_row(db)["scheduled_start_at"], incident_row(db)["window_sequence"]) == (
        shifted[0],
        0,
    )
    # Once the API has spoken, its next move is a move.
    later = [
        {k: v for k, v in c.items() if k not in ("id", "incident_id", "posted_at")}
        for c in apply_windows(db, feed, api_answer((M, W2, "scheduled")), clock(), full=True)
    ]
    assert later == [
        {
            "key": KEY,
            "type": "rescheduled",
            "status": "scheduled",
            "count": 0,
            "window": W2,
            "previous_window": shifted,
        }
    ]


def test_two_moves_give_two_notifications_with_growing_sequence(db, feed, settings, clock):
    clock.advance(minutes=1)
    poll(db, feed, [M.moved_to(*W2), OTHER], clock())
    clock.advance(minutes=1)
    poll(db, feed, [M.moved_to(*W3), OTHER], clock())
    notify_changes(db, settings, clock())
    assert [n["content"] for n in notifications(db)] == [
        expected_content("rescheduled", "scheduled", W2, 1, previous=W1),
        expected_content("rescheduled", "scheduled", W3, 2, previous=W2),
    ]


def test_a_move_to_a_window_already_over_is_not_notified(db, feed, settings, clock):
    clock.advance(minutes=1)
    poll(db, feed, [M.moved_to(*W2), OTHER], clock())
    clock.current = W2[1] + timedelta(minutes=1)  # the worker was down until after the window
    assert notify_changes(db, settings, clock()) == []
    assert table(db, "notifications") == []
    assert [c["processed_at"] for c in table(db, "changes")] == [clock()]


def test_a_rescheduled_notice_expires_with_its_window_when_that_is_sooner(db, settings, clock):
    soon = (T + timedelta(hours=2), T + timedelta(hours=3))
    feed_id = db.ensure_feed(FEED_URL, clock())["id"]
    poll(db, feed_id, [M], clock())
    clock.advance(minutes=1)
    poll(db, feed_id, [M.moved_to(*soon)], clock())
    notify_changes(db, settings, clock())
    assert [n["expires_at"] for n in notifications(db)] == [soon[1]]


def test_incident_content_keeps_working_for_a_synthetic_reminder_change(db, feed, clock):
    clock.advance(minutes=1)
    poll(db, feed, [M.moved_to(*W2), OTHER], clock())
    incident = db.get_incident(incident_row(db)["id"])
    change = {"type": "reminder", "status": "scheduled", "count": 0, "update_id": None,
              "detected_at": None}  # fmt: skip
    content = incident_content(db, change, incident, {})
    expected = expected_content("reminder", "scheduled", W2, 1)
    assert content == expected


# --- migration 0013 on a database with data ----------------------------------------------------
def _data_at_0012(execute) -> None:
    t = "2026-11-26T12:00:00.000000Z"
    execute("INSERT INTO feeds (id, url, created_at) VALUES (1, 'https://x/history.atom', ?)", [t])
    execute(
        "INSERT INTO incidents (id, feed_id, key, kind, title, link, first_seen_at, "
        "last_changed_at) VALUES (1, 1, 'k1', 'maintenance', 'M', 'https://x/incidents/k1', ?, ?)",
        [t, t],
    )
    for uid in (1, 2):
        execute(
            "INSERT INTO updates (id, incident_id, posted_at, status, seq, text, first_seen_at) "
            "VALUES (?, 1, ?, 'scheduled', ?, 't', ?)",
            [uid, t, uid, t],
        )
        execute(
            "INSERT INTO changes (id, feed_id, incident_id, update_id, type, status, posted_at, "
            "count, detected_at, processed_at) VALUES (?, 1, 1, ?, 'new_update', 'scheduled', "
            "?, 1, ?, ?)",
            [uid, uid, t, t, t],
        )
        execute(
            "INSERT INTO notifications (id, kind, incident_id, change_id, content, created_at, "
            "expires_at) VALUES (?, 'maintenance', 1, ?, '{}', ?, ?)",
            [uid, uid, t, t],
        )


def _check_upgraded(store) -> None:
    rows = store._query("SELECT id, update_id, type, window_sequence FROM changes ORDER BY id")
    assert rows == [
        {"id": 1, "update_id": 1, "type": "new_update", "window_sequence": None},
        {"id": 2, "update_id": 2, "type": "new_update", "window_sequence": None},
    ]
    links = store._query("SELECT id, change_id FROM notifications ORDER BY id")
    assert links == [{"id": 1, "change_id": 1}, {"id": 2, "change_id": 2}]
    now = datetime(2026, 11, 27, tzinfo=UTC)
    with store.write():
        change = store.record_window_change(1, 1, "k1", "rescheduled", "scheduled", W2, W1, now)
    assert change["window"] == W2 and change["id"] == 3
    refused = (sqlite3.IntegrityError, psycopg.errors.IntegrityError)
    with pytest.raises(refused), store.write():  # an update change needs its update
        store._execute(
            "INSERT INTO changes (feed_id, incident_id, type, status, posted_at, count, "
            "detected_at) VALUES (1, 1, 'new_update', 's', ?, 1, ?)",
            [now, now],
        )
    with store.write():  # deleting a change still unlinks its notification
        store._execute("DELETE FROM changes WHERE id = 1")
    assert store._query("SELECT change_id FROM notifications ORDER BY id") == [
        {"change_id": None},
        {"change_id": 2},
    ]


def test_migration_0013_keeps_changes_and_notification_links_on_sqlite(tmp_path, monkeypatch):
    from notifier.store import sqlite as sqlite_store
    from notifier.store.migrations import SCHEMA, Migrations, _applier, statements

    names = [name for name, _ in SCHEMA]
    old = Migrations("notifier")
    for name, migration in SCHEMA[: names.index("0013_window_changes")]:
        old(name=name)(_applier(statements(migration, "sqlite")))
    path = tmp_path / "old.db"
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", old)
    store = sqlite_store.SQLiteStore(path)
    store.upgrade()
    with store.write():
        _data_at_0012(store._execute)
    monkeypatch.undo()

    assert "0013_window_changes" in store.upgrade()
    _check_upgraded(store)
    assert store._query("PRAGMA foreign_key_check") == []
    store.close()


def test_migration_0013_keeps_changes_and_notification_links_on_postgres(monkeypatch):
    from . import conftest

    if not conftest.PG_ADMIN_URL:
        pytest.skip("PostgreSQL half skipped: TEST_DATABASE_URL is not set (see README, Tests)")
    from notifier.store import postgres as pg_store
    from notifier.store.migrations import SCHEMA

    name = f"t_m0013_{datetime.now(UTC):%H%M%S%f}"
    with conftest._pg_admin() as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        names = [n for n, _ in SCHEMA]
        monkeypatch.setattr(pg_store, "SCHEMA", SCHEMA[: names.index("0013_window_changes")])
        store = pg_store.PostgresStore(conftest._pg_url(name))
        store.upgrade()
        with store.write():
            _data_at_0012(store._execute)
            # The rows were given their ids: move the identity past them, as real rows do.
            store._execute("SELECT setval(pg_get_serial_sequence('changes', 'id'), 2)")
        monkeypatch.undo()
        assert "0013_window_changes" in store.upgrade()
        _check_upgraded(store)
        store.close()
    finally:
        with conftest._pg_admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_feed_and_api_pollers_at_once_record_one_move(db, feed, clock):
    from .test_concurrency import run_together

    moved = M.moved_to(*W2)
    body = parse_feed(render("atom", PAGE, [moved, OTHER]))
    answer = api_answer((moved, W2, "scheduled"), (OTHER, W2, "scheduled"))
    jobs = [
        lambda: ingest_parsed(db, feed, body, clock()).changes,
        lambda: ingest_parsed(db, feed, body, clock()).changes,
        lambda: apply_windows(db, feed, answer, clock(), full=True),
        lambda: apply_windows(db, feed, answer, clock(), full=True),
    ]
    lock = threading.Lock()

    def one_of_them():
        with lock:
            job = jobs.pop()
        return job()

    results = run_together(4, one_of_them)
    assert sum(len(r) for r in results) == 1
    assert [(c["type"], c["window_sequence"]) for c in table(db, "changes")] == [("rescheduled", 1)]


# --- pure rules and rendering --------------------------------------------------------------------
A, B, C = utc(2026, 12, 5, 4), utc(2026, 12, 5, 6), utc(2026, 12, 5, 8)


@pytest.mark.parametrize(
    ("stored", "offered", "moved"),
    [
        ((A, B), (A, C), (A, C)),  # end extended
        ((A, B), (None, C), (A, C)),  # only the end stated (RSS end date)
        ((A, B), (None, None), None),  # the banner gone: no change
        ((A, B), (A, B), None),
        ((None, None), (A, B), None),  # the first window seen
        ((None, B), (A, B), None),  # a start stated for the first time
        ((A, B), (B, C), (B, C)),
    ],
)
def test_moved_window_compares_only_parts_both_sides_know(stored, offered, moved):
    from notifier.changes import moved_window

    assert moved_window(stored, offered) == moved


def test_window_contents_render_with_the_maintenance_templates_until_their_own_land(
    db, feed, settings, clock
):
    from notifier.render import SharedEmail, render_email

    clock.advance(minutes=1)
    poll(db, feed, [M.moved_to(*W2), OTHER], clock())
    apply_windows(db, feed, api_answer((M, W2, "cancelled")), clock(), full=True)
    notify_changes(db, settings, clock())
    contents = [n["content"] for n in notifications(db)]
    assert [c["change"] for c in contents] == ["rescheduled", "cancelled"]
    for content in contents:
        for language in ("de", "en"):
            assert render_email(content, language, "Europe/Berlin").subject
            assert SharedEmail(content, language).for_zone("UTC").email.subject
