"""Recorded changes to notifications and deliveries: audience, idempotence, supersede, review."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from notifier.feed import parse_feed
from notifier.notifications import notify_changes, queue_personal, release_reviews
from notifier.poller import ingest

from .helpers import add_component, add_subscriber, atom, table

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def updates(*steps):
    return [(T0 + timedelta(minutes=m), status, f"{status} text") for m, status in steps]


@pytest.fixture
def feed(db, clock):
    """A feed with its silent baseline already recorded (one old resolved incident)."""
    feed_id = db.ensure_feed("https://status.example.com/history.atom", clock())["id"]
    old = {"key": "old000000001", "title": "Old", "updates": updates((-600, "Resolved"))}
    ingest(db, feed_id, parse_feed(atom([old])), clock())
    return feed_id


def poll(db, feed_id, entries, clock):
    return ingest(db, feed_id, parse_feed(atom(entries)), clock())


def deliveries(db):
    return [
        (d["notification_id"], d["email"], d["state"], d["reason"])
        for d in table(db, "deliveries", "notification_id, email")
    ]


def test_a_change_reaches_confirmed_matching_subscribers_only(db, feed, settings, clock):
    add_component(db, feed, "sms-eu", "SMS (EU)", clock())
    add_component(db, feed, "voice", "Voice", clock())
    add_subscriber(db, "all@example.com", now=clock())
    add_subscriber(db, "sms@example.com", now=clock(), components=["sms-eu"])
    add_subscriber(db, "pending@example.com", now=clock(), state="pending")
    add_subscriber(db, "gone@example.com", now=clock(), state="unsubscribed")
    add_subscriber(db, "bounced@example.com", now=clock(), state="suppressed")
    add_subscriber(db, "maint-only@example.com", now=clock(), incidents=False)
    add_subscriber(db, "other-page@example.com", now=clock(), components=["elsewhere"])
    poll(
        db,
        feed,
        [{"key": "inc000000001", "title": "SMS delays", "updates": updates((0, "Investigating"))}],
        clock,
    )

    created = notify_changes(db, settings, clock())

    assert len(created) == 1
    # Components unknown (no JSON API data): everyone with any component of this page gets it.
    assert deliveries(db) == [
        (created[0], "all@example.com", "pending", None),
        (created[0], "sms@example.com", "pending", None),
    ]


def test_known_components_narrow_the_audience(db, feed, settings, clock):
    add_component(db, feed, "sms-eu", "SMS (EU)", clock())
    add_component(db, feed, "voice", "Voice", clock())
    add_subscriber(db, "sms@example.com", now=clock(), components=["sms-eu"])
    add_subscriber(db, "voice@example.com", now=clock(), components=["voice"])
    poll(
        db,
        feed,
        [{"key": "inc000000001", "title": "Voice down", "updates": updates((0, "Identified"))}],
        clock,
    )
    incident = db._query_one("SELECT id FROM incidents WHERE key = 'inc000000001'")
    db.set_incident_enrichment(incident["id"], ["voice"], "major", clock())

    [nid] = notify_changes(db, settings, clock())

    assert deliveries(db) == [(nid, "voice@example.com", "pending", None)]
    content = db.get_notification(nid)["content"]
    assert content["incident"]["components"] == [{"id": "voice", "name": "Voice"}]
    assert content["incident"]["impact"] == "major"


def test_notification_content_is_the_whole_snapshot(db, feed, settings, clock):
    poll(
        db,
        feed,
        [
            {
                "key": "inc000000001",
                "title": "SMS delays",
                "updates": updates((0, "Investigating"), (30, "Identified")),
            }
        ],
        clock,
    )
    [nid] = notify_changes(db, settings, clock())
    notification = db.get_notification(nid)
    assert notification["content"] == {
        "kind": "incident",
        "page_name": "Sinch",
        "page_url": "",
        "incident": {
            "key": "inc000000001",
            "title": "SMS delays",
            "link": "https://status.example.com/incidents/inc000000001",
            "impact": None,
            "components": [],
            "scheduled_start": None,
            "scheduled_end": None,
        },
        "status": "identified",
        "change": "new_incident",
        "new_updates": 2,
        "updates": [
            # Both posts came with the change (issue 16: the mail leads with what is new).
            {
                "status": "identified",
                "at": "2026-11-26T10:30:00Z",
                "text": "Identified text",
                "new": True,
            },
            {
                "status": "investigating",
                "at": "2026-11-26T10:00:00Z",
                "text": "Investigating text",
                "new": True,
            },
        ],
    }
    assert notification["expires_at"] == T0 + timedelta(
        minutes=30, hours=settings.notification_ttl_hours
    )
    assert notification["review_state"] == "none"


def test_running_everything_twice_creates_nothing_new(db, feed, settings, clock):
    add_subscriber(db, "all@example.com", now=clock())
    poll(
        db,
        feed,
        [{"key": "inc000000001", "title": "X", "updates": updates((0, "Investigating"))}],
        clock,
    )
    [nid] = notify_changes(db, settings, clock())
    before = deliveries(db)

    assert notify_changes(db, settings, clock()) == []
    assert db.fan_out(nid, clock()) == 0
    assert deliveries(db) == before
    assert len(table(db, "notifications")) == 1


def test_a_newer_update_supersedes_the_pending_older_one(db, feed, settings, clock):
    add_subscriber(db, "all@example.com", now=clock())
    entry = {"key": "inc000000001", "title": "X", "updates": updates((0, "Investigating"))}
    poll(db, feed, [entry], clock)
    [first] = notify_changes(db, settings, clock())
    entry["updates"] = updates((0, "Investigating"), (20, "Resolved"))
    poll(db, feed, [entry], clock)
    [second] = notify_changes(db, settings, clock())

    assert deliveries(db) == [
        (first, "all@example.com", "cancelled", f"superseded by notification {second}"),
        (second, "all@example.com", "pending", None),
    ]


def test_maintenance_goes_to_maintenance_subscribers(db, feed, settings, clock):
    add_subscriber(db, "incidents-only@example.com", now=clock(), maintenance=False)
    add_subscriber(db, "both@example.com", now=clock())
    window = (T0 + timedelta(days=2), T0 + timedelta(days=2, hours=2))
    poll(
        db,
        feed,
        [
            {
                "key": "mnt000000001",
                "title": "DB upgrade",
                "window": window,
                "updates": updates((0, "Scheduled")),
            }
        ],
        clock,
    )

    [nid] = notify_changes(db, settings, clock())

    notification = db.get_notification(nid)
    assert notification["kind"] == "maintenance"
    assert notification["content"]["incident"]["scheduled_start"] == "2026-11-28T10:00:00Z"
    assert notification["content"]["incident"]["scheduled_end"] == "2026-11-28T12:00:00Z"
    assert deliveries(db) == [(nid, "both@example.com", "pending", None)]


def test_review_mode_holds_deliveries_until_the_timeout(db, feed, settings, clock, app):
    reviewing = replace(settings, review_mode=True, review_timeout_minutes=15)
    add_subscriber(db, "all@example.com", now=clock())
    poll(
        db,
        feed,
        [{"key": "inc000000001", "title": "X", "updates": updates((0, "Investigating"))}],
        clock,
    )
    [nid] = notify_changes(db, reviewing, clock())
    assert deliveries(db) == []
    assert db.get_notification(nid)["review_state"] == "pending"

    clock.advance(minutes=14)
    assert release_reviews(db, clock()) == []
    assert deliveries(db) == []

    clock.advance(minutes=1)
    assert release_reviews(db, clock()) == [nid]
    assert db.get_notification(nid)["review_state"] == "timed_out"
    assert deliveries(db) == [(nid, "all@example.com", "pending", None)]


def test_an_old_backfilled_incident_expires_instead_of_being_sent(db, feed, settings, clock):
    add_subscriber(db, "all@example.com", now=clock())
    long_ago = [(T0 - timedelta(days=3), "Resolved", "Fixed three days ago")]
    poll(db, feed, [{"key": "inc000000009", "title": "Backfilled", "updates": long_ago}], clock)
    [nid] = notify_changes(db, settings, clock())

    assert db.get_notification(nid)["expires_at"] < clock()
    assert db.expire_due(clock()) == 1
    assert deliveries(db) == [(nid, "all@example.com", "failed", "expired")]


def test_personal_mail_goes_to_that_subscriber_whatever_its_state(db, clock):
    sid = add_subscriber(db, "new@example.com", now=clock(), state="pending")
    nid, _ = queue_personal(db, "confirmation", sid, clock())
    notification = db.get_notification(nid)
    assert (notification["kind"], notification["content"], notification["audience"]) == (
        "confirmation",
        {"kind": "confirmation"},
        None,  # shared by the minute's confirmations (issue 14); the row names the subscriber
    )
    # The row expires 72 h after it was queued; the shared notification with the minute's
    # last possible row.
    [row] = db._query("SELECT subscriber_id, expires_at FROM deliveries")
    assert row == {"subscriber_id": sid, "expires_at": clock() + timedelta(hours=72)}
    window_end = clock().replace(second=0, microsecond=0) + timedelta(minutes=1)
    assert notification["expires_at"] == window_end + timedelta(hours=72)
    assert deliveries(db) == [(nid, "new@example.com", "pending", None)]
    with pytest.raises(ValueError):
        queue_personal(db, "incident", sid, clock())


def test_housekeeping_purges_old_webhook_ids_and_unconfirmed_sign_ups(app, db, clock):
    from notifier import jobs

    old = clock() - timedelta(days=8)
    db.record_webhook_event("old-event", "delivered", None, old)
    db.record_webhook_event("new-event", "delivered", None, clock())
    sid = add_subscriber(db, "never-confirmed@example.com", now=old, state="pending")
    db._execute("UPDATE subscribers SET created_at = ? WHERE id = ?", [old, sid])

    result = jobs.housekeeping(app)

    assert result["webhook_events_purged"] == 1
    assert result["unconfirmed_purged"] == 1
    assert [r["sg_event_id"] for r in table(db, "webhook_events", "sg_event_id")] == ["new-event"]
    assert table(db, "subscribers") == []


def test_an_older_update_released_after_a_newer_one_sends_nothing(db, feed, settings, clock):
    reviewing = replace(settings, review_mode=True)
    add_subscriber(db, "all@example.com", now=clock())
    entry = {"key": "inc000000001", "title": "X", "updates": updates((0, "Investigating"))}
    poll(db, feed, [entry], clock)
    [older] = notify_changes(db, reviewing, clock())
    entry["updates"] = updates((0, "Investigating"), (20, "Resolved"))
    poll(db, feed, [entry], clock)
    [newer] = notify_changes(db, reviewing, clock())

    db.set_review_state(newer, "approved", clock(), reviewed_by="ops")  # approved first
    db.fan_out(newer, clock())
    clock.advance(minutes=15)
    assert release_reviews(db, clock()) == [older]  # the older one times out afterwards

    assert deliveries(db) == [(newer, "all@example.com", "pending", None)]
    assert db.get_notification(older)["fanned_out_at"] == clock()
