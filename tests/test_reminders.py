"""Reminders before a maintenance window opens (issue 11): offsets, moves, cancels, workers."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from notifier import jobs
from notifier.delivery import wake
from notifier.delivery.mailer import apply_substitutions
from notifier.feed import parse_feed
from notifier.notifications import notify_changes, release_reviews
from notifier.poller import ingest
from notifier.reminders import REMINDER_CHANGE, queue_reminders, reminder_due
from notifier.render import render_email
from notifier.store import open_store

from .helpers import add_component, add_subscriber, atom, poll_and_mail_through_fakes, raw_rows

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # the clock fixture's start
START = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
END = START + timedelta(hours=2)
FEED_URL = "https://status.example.com/history.atom"


@pytest.fixture
def feed(db, clock):
    """A feed with its silent baseline recorded (one old resolved incident) and a component."""
    feed_id = db.ensure_feed(FEED_URL, clock())["id"]
    old = {
        "key": "old000000001",
        "title": "Old",
        "updates": [(T0 - timedelta(days=9), "Resolved", "x")],
    }
    ingest(db, feed_id, parse_feed(atom([old])), clock())
    add_component(db, feed_id, "db-eu", "Database (EU)", clock())
    return feed_id


def entry(key="mnt000000001", start=START, statuses=("Scheduled",)):
    posts = [
        (T0 - timedelta(hours=1) + timedelta(minutes=i), s, f"{s} text")
        for i, s in enumerate(statuses)
    ]
    return {
        "key": key,
        "title": "Database upgrade",
        "window": (start, start + timedelta(hours=2)),
        "updates": posts,
    }


def announce(db, feed_id, clock, *entries) -> list[int]:
    """Poll the entries (first seen now); their incident ids, with the components known."""
    ingest(db, feed_id, parse_feed(atom(list(entries))), clock())
    ids = []
    for e in entries:
        row = db._query_one("SELECT id FROM incidents WHERE key = ?", [e["key"]])
        db.set_incident_enrichment(row["id"], ["db-eu"], "maintenance", clock())
        ids.append(row["id"])
    return ids


@pytest.fixture
def audience(db, clock):
    """Subscribers of every kind: only the first two may get reminders."""
    add_subscriber(db, "en@example.com", now=clock())
    add_subscriber(db, "de@example.com", now=clock(), language="de", components=["db-eu"])
    add_subscriber(db, "incidents-only@example.com", now=clock(), maintenance=False)
    add_subscriber(db, "other-product@example.com", now=clock(), components=["sms"])
    add_subscriber(db, "pending@example.com", now=clock(), state="pending")
    opted_out = add_subscriber(db, "no-reminders@example.com", now=clock())
    db.update_subscriber(opted_out, maintenance_reminders=False)


def offsets(app, *minutes):
    app.extensions["settings"] = replace(
        app.extensions["settings"], maintenance_reminder_minutes=tuple(minutes)
    )


def run(app):
    """The worker's job, as the scheduler runs it."""
    return jobs.reminders(app)


def ledger(db) -> list[dict]:
    return raw_rows(
        db,
        "SELECT incident_id, offset_minutes, window_start_at, notification_id, created_at "
        "FROM maintenance_reminders ORDER BY id",
    )


def delivery_rows(db) -> list[dict]:
    return raw_rows(
        db,
        "SELECT notification_id, email, language, timezone, state, reason, attempts, "
        "next_attempt_at, expires_at, priority FROM deliveries ORDER BY notification_id, email",
    )


def pending(nid, email, language, zone, at) -> dict:
    return {
        "notification_id": nid,
        "email": email,
        "language": language,
        "timezone": zone,
        "state": "pending",
        "reason": None,
        "attempts": 0,
        "next_attempt_at": at,
        "expires_at": None,
        "priority": 0,
    }


def reminders_sent(db) -> list[tuple]:
    rows = db._query(
        "SELECT id, incident_id, content FROM notifications WHERE change_id IS NULL "
        "AND kind = 'maintenance' ORDER BY id"
    )
    out = []
    for row in rows:
        content = db.get_notification(row["id"])["content"]
        out.append(
            (
                row["incident_id"],
                content["reminder"]["offset_minutes"],
                content["incident"]["scheduled_start"],
            )
        )
    return out


def test_the_reminder_goes_at_its_offset_to_those_who_want_it(app, db, feed, audience, clock):
    [mid] = announce(db, feed, clock, entry())
    offsets(app, 1440)
    clock.current = START - timedelta(hours=24, minutes=1)
    assert run(app) == []
    assert delivery_rows(db) == [] and ledger(db) == []

    clock.advance(minutes=1)
    [nid] = run(app)

    at = "2026-11-28T10:00:00.000000Z"
    assert delivery_rows(db) == [
        pending(nid, "de@example.com", "de", "Europe/Berlin", at),
        pending(nid, "en@example.com", "en", "UTC", at),
    ]
    assert ledger(db) == [
        {
            "incident_id": mid,
            "offset_minutes": 1440,
            "window_start_at": "2026-11-29T10:00:00.000000Z",
            "notification_id": nid,
            "created_at": at,
        },
    ]
    notification = db.get_notification(nid)
    assert {k: notification[k] for k in ("kind", "incident_id", "change_id", "audience")} == {
        "kind": "maintenance",
        "incident_id": mid,
        "change_id": None,
        "audience": {"components": ["db-eu"], "feed_id": feed, "reminders": True},
    }
    assert notification["expires_at"] == START  # never sent once the window is open
    content = notification["content"]
    assert content["change"] == "reminder"
    assert content["status"] == "scheduled"
    assert content["new_updates"] == 0
    assert not any(u.get("new") for u in content["updates"])
    assert content["reminder"] == {"offset_minutes": 1440}
    assert content["incident"]["scheduled_start"] == "2026-11-29T10:00:00Z"
    assert content["incident"]["scheduled_end"] == "2026-11-29T12:00:00Z"
    assert content["incident"]["components"] == [{"id": "db-eu", "name": "Database (EU)"}]
    for language, zone in (("en", "UTC"), ("de", "Europe/Berlin")):
        mail = render_email(content, language, zone)
        assert "Database upgrade" in mail.subject
        assert "Database upgrade" in mail.text

    assert run(app) == []  # the same minute again, or the next one: nothing twice
    clock.advance(minutes=1)
    assert run(app) == []
    assert len(delivery_rows(db)) == 2


def test_two_offsets_each_go_once(app, db, feed, audience, clock):
    [mid] = announce(db, feed, clock, entry())
    offsets(app, 1440, 60)
    sent = []
    for moment in (
        START - timedelta(hours=30),
        START - timedelta(hours=24),
        START - timedelta(hours=23, minutes=59),
        START - timedelta(hours=2),
        START - timedelta(hours=1),
        START - timedelta(minutes=59),
        START - timedelta(minutes=1),
        START,
        START + timedelta(minutes=5),
    ):
        clock.current = moment
        sent.append((moment, len(run(app))))
    assert [n for _, n in sent] == [0, 1, 0, 0, 1, 0, 0, 0, 0]
    start = "2026-11-29T10:00:00Z"
    assert reminders_sent(db) == [(mid, 1440, start), (mid, 60, start)]
    assert [r["offset_minutes"] for r in ledger(db)] == [1440, 60]
    assert len(delivery_rows(db)) == 4  # two readers, two reminders each


def test_the_job_wakes_dispatch_after_queuing(app, db, feed, audience, clock):
    announce(db, feed, clock, entry())
    offsets(app, 60)
    woken = []
    app.extensions["dispatch_gate"] = wake.DispatchGate(lambda: woken.append(True))
    clock.current = START - timedelta(hours=2)
    run(app)
    assert woken == []
    clock.current = START - timedelta(minutes=30)
    run(app)
    assert woken == [True]


def test_a_moved_window_is_reminded_by_its_new_start_only(app, db, feed, audience, clock):
    [mid] = announce(db, feed, clock, entry())
    offsets(app, 1440)
    moved = START + timedelta(days=2)
    clock.current = START - timedelta(hours=25)
    assert run(app) == []
    # The poller (part W) records the new window on the incident.
    db._execute(
        "UPDATE incidents SET scheduled_start_at = ?, scheduled_end_at = ?, "
        "window_sequence = window_sequence + 1 WHERE id = ?",
        [moved, moved + timedelta(hours=2), mid],
    )
    for moment in (START - timedelta(hours=24), START - timedelta(hours=1), START):
        clock.current = moment
        assert run(app) == []
    clock.current = moved - timedelta(hours=24)
    [nid] = run(app)
    assert reminders_sent(db) == [(mid, 1440, "2026-12-01T10:00:00Z")]
    assert db.get_notification(nid)["expires_at"] == moved


def test_a_window_moved_after_its_reminder_gets_one_for_the_new_start(
    app, db, feed, audience, clock
):
    [mid] = announce(db, feed, clock, entry())
    offsets(app, 1440)
    clock.current = START - timedelta(hours=24)
    assert len(run(app)) == 1
    moved = START + timedelta(hours=6)
    db._execute(
        "UPDATE incidents SET scheduled_start_at = ?, scheduled_end_at = ? WHERE id = ?",
        [moved, moved + timedelta(hours=2), mid],
    )
    clock.current = moved - timedelta(hours=24, minutes=1)
    assert run(app) == []
    clock.advance(minutes=1)
    assert len(run(app)) == 1
    assert reminders_sent(db) == [
        (mid, 1440, "2026-11-29T10:00:00Z"),
        (mid, 1440, "2026-11-29T16:00:00Z"),
    ]


def test_a_cancelled_maintenance_gets_no_reminder(app, db, feed, audience, clock):
    [mid] = announce(db, feed, clock, entry())
    offsets(app, 1440, 60)
    db._execute("UPDATE incidents SET cancelled_at = ? WHERE id = ?", [clock(), mid])
    for moment in (START - timedelta(hours=24), START - timedelta(hours=1)):
        clock.current = moment
        assert run(app) == []
    assert ledger(db) == [] and delivery_rows(db) == []


@pytest.mark.parametrize("status", ["In progress", "Verifying", "Completed"])
def test_a_started_or_completed_maintenance_gets_no_reminder(
    app, db, feed, audience, clock, status
):
    # Started early: the window's start is still ahead, but the newest post says otherwise.
    announce(db, feed, clock, entry(statuses=("Scheduled", status)))
    offsets(app, 1440, 60)
    for moment in (START - timedelta(hours=24), START - timedelta(hours=1)):
        clock.current = moment
        assert run(app) == []
    assert ledger(db) == []


def test_a_maintenance_without_a_known_start_gets_no_reminder(app, db, feed, audience, clock):
    [mid] = announce(db, feed, clock, entry())
    db._execute(
        "UPDATE incidents SET scheduled_start_at = NULL, scheduled_end_at = NULL WHERE id = ?",
        [mid],
    )
    offsets(app, 1440)
    clock.current = START - timedelta(hours=1)
    assert run(app) == []
    assert ledger(db) == []


def test_a_late_worker_sends_only_the_reminder_closest_to_the_start(app, db, feed, audience, clock):
    announce(db, feed, clock, entry())
    offsets(app, 2880, 1440, 60)
    clock.current = START - timedelta(minutes=30)  # the worker was down for two days
    [nid] = run(app)
    assert db.get_notification(nid)["content"]["reminder"] == {"offset_minutes": 60}
    for _ in range(3):
        clock.advance(minutes=5)
        assert run(app) == []
    assert [r["offset_minutes"] for r in ledger(db)] == [60]
    clock.current = START + timedelta(minutes=1)
    assert run(app) == []


def test_a_worker_back_after_the_start_sends_nothing(app, db, feed, audience, clock):
    announce(db, feed, clock, entry())
    offsets(app, 1440, 60)
    clock.current = START + timedelta(seconds=1)
    assert run(app) == []
    clock.current = START
    assert run(app) == []  # the window opens at its start: too late for a reminder
    assert ledger(db) == []


def test_a_maintenance_announced_after_an_offset_gets_no_reminder_for_it(
    app, db, feed, audience, clock
):
    clock.current = START - timedelta(hours=3)
    [mid] = announce(db, feed, clock, entry())
    offsets(app, 1440, 60)
    assert run(app) == []  # announced three hours ahead: the 24h reminder would add nothing
    clock.current = START - timedelta(hours=1)
    assert len(run(app)) == 1
    assert reminders_sent(db) == [(mid, 60, "2026-11-29T10:00:00Z")]


def test_no_reminders_when_switched_off(app, db, feed, audience, clock):
    announce(db, feed, clock, entry())
    offsets(app)
    clock.current = START - timedelta(hours=1)
    assert run(app) == []
    assert ledger(db) == []


def test_two_workers_at_once_queue_each_reminder_once(app, db, feed, audience, clock, settings):
    keys = [f"mnt00000000{n}" for n in range(5)]
    ids = announce(
        db,
        feed,
        clock,
        *(entry(key=k, start=START + timedelta(minutes=n)) for n, k in enumerate(keys)),
    )
    now = START - timedelta(minutes=30)
    workers = [open_store(settings) for _ in range(2)]
    config = replace(settings, maintenance_reminder_minutes=(1440, 60))
    barrier = threading.Barrier(len(workers))
    results, errors = [], []

    def work(store):
        try:
            barrier.wait(timeout=10)
            results.append(queue_reminders(store, config, now))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(store,)) for store in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for store in workers:
        store.close()
    assert errors == []
    assert len(results) == 2 and sum(len(r) for r in results) == len(ids)
    assert sorted(r["incident_id"] for r in ledger(db)) == sorted(ids)
    assert len(delivery_rows(db)) == 2 * len(ids)
    assert queue_reminders(db, config, now) == []


@pytest.mark.parametrize(
    ("now_before_start", "seen_before_start", "reminded", "due"),
    [
        (timedelta(hours=25), timedelta(days=3), [], None),
        (timedelta(hours=24), timedelta(days=3), [], 1440),
        (timedelta(hours=1), timedelta(days=3), [1440], 60),
        (timedelta(hours=1), timedelta(days=3), [60], None),
        (timedelta(minutes=10), timedelta(days=3), [], 60),
        (timedelta(minutes=10), timedelta(hours=2), [], 60),
        (timedelta(minutes=10), timedelta(minutes=30), [], None),
        (timedelta(0), timedelta(days=3), [], None),
        (-timedelta(minutes=1), timedelta(days=3), [], None),
    ],
)
def test_reminder_due_picks_the_offset_closest_to_the_start(
    now_before_start, seen_before_start, reminded, due
):
    assert (
        reminder_due(
            START, START - seen_before_start, (1440, 60), reminded, START - now_before_start
        )
        == due
    )


def test_the_reminder_change_is_the_contract_s_synthetic_change():
    assert REMINDER_CHANGE == {
        "type": "reminder",
        "status": "scheduled",
        "count": 0,
        "update_id": None,
        "detected_at": None,
    }


def test_a_reminder_waits_while_the_announcement_is_in_review(app, db, feed, audience, clock):
    # Fan-out skips a notification once a newer one about the same maintenance went out: a
    # reminder queued during the review would make the reviewed announcement vanish.
    clock.current = START - timedelta(hours=1, minutes=5)
    [mid] = announce(db, feed, clock, entry())
    reviewing = replace(app.extensions["settings"], review_mode=True, review_timeout_minutes=15)
    [announcement] = notify_changes(db, reviewing, clock())
    offsets(app, 60)
    clock.current = START - timedelta(hours=1)
    assert run(app) == []
    clock.current = START - timedelta(minutes=50)
    assert release_reviews(db, clock()) == [announcement]
    db._execute("UPDATE deliveries SET state = 'sent'")  # dispatch sent the announcement
    [reminder] = run(app)
    assert reminders_sent(db) == [(mid, 60, "2026-11-29T10:00:00Z")]
    assert [(r["notification_id"], r["email"], r["state"]) for r in delivery_rows(db)] == [
        (announcement, "de@example.com", "sent"),
        (announcement, "en@example.com", "sent"),
        (announcement, "no-reminders@example.com", "sent"),
        (reminder, "de@example.com", "pending"),
        (reminder, "en@example.com", "pending"),
    ]


def test_migration_0014_keeps_reminders_on_for_existing_subscribers(tmp_path):
    import sqlite3

    from notifier.store.migrations import SCHEMA, statements

    conn = sqlite3.connect(tmp_path / "old.db")
    names = [name for name, _ in SCHEMA]
    upgrade = names.index("0014_maintenance_reminders")
    for _name, migration in SCHEMA[:upgrade]:
        for statement in statements(migration, "sqlite"):
            conn.execute(statement)
    t = "2026-11-26T12:00:00.000000Z"
    conn.execute(
        "INSERT INTO subscribers (id, email, language, timezone, state, link_nonce, created_at, "
        "updated_at) VALUES (1, 'a@example.com', 'en', 'UTC', 'confirmed', 'n', ?, ?)",
        [t, t],
    )
    for statement in statements(SCHEMA[upgrade][1], "sqlite"):
        conn.execute(statement)
    assert conn.execute("SELECT id, maintenance_reminders FROM subscribers").fetchall() == [(1, 1)]
    assert conn.execute("SELECT COUNT(*) FROM maintenance_reminders").fetchall() == [(0,)]


def test_the_reminder_reaches_the_fake_sendgrid_once_per_reader(
    app, db, feed, audience, clock, settings, sendgrid
):
    poll_and_mail_through_fakes(app, settings, sendgrid, FEED_URL)
    announce(db, feed, clock, entry())
    offsets(app, 1440, 60)
    for moment in (START - timedelta(hours=24), START - timedelta(hours=23, minutes=59)):
        clock.current = moment
        run(app)
        jobs.dispatch(app)
    sent = []
    for request in sendgrid.requests:
        assert request.status == 202
        for p in request.body["personalizations"]:
            subject = apply_substitutions(request.body["subject"], p.get("substitutions") or {})
            sent.append((p["to"][0]["email"], "Database upgrade" in subject))
    assert sorted(sent) == [("de@example.com", True), ("en@example.com", True)]
    assert {r["state"] for r in delivery_rows(db)} == {"sent"}


def test_a_window_moved_closer_than_an_offset_gets_no_reminder_for_that_offset(
    app, db, feed, audience, clock
):
    """The rescheduled mail has just told readers the new time: like a maintenance announced
    less than an offset ahead, the window is as good as new for that offset."""
    [mid] = announce(db, feed, clock, entry())
    offsets(app, 1440, 60)
    moved = START + timedelta(hours=6)
    clock.current = moved - timedelta(hours=5)  # the poller sees the move 5 h before it opens
    ingest(db, feed, parse_feed(atom([entry(start=moved)])), clock())
    assert db.get_incident(mid)["scheduled_start_at"] == moved  # recorded as rescheduled
    assert run(app) == []
    clock.current = moved - timedelta(hours=1)
    assert len(run(app)) == 1
    assert reminders_sent(db) == [(mid, 60, "2026-11-29T16:00:00Z")]
