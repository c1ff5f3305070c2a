"""The dashboard (subscribers, feed health, staleness, recent progress) and a walk over every
ops page with data in it, in English and German."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from flask import url_for

from notifier.admin.dashboard import feed_health
from notifier.announcements import normalize
from notifier.feed import parse_feed
from notifier.notifications import notify_changes
from notifier.poller import ingest
from notifier.settings import Settings

from .helpers import atom
from .test_admin_helpers import (  # noqa: F401  (fixtures)
    admin_client,
    admin_settings,
    audience_world,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
FEED = {
    "consecutive_failures": 0,
    "last_poll_at": NOW - timedelta(seconds=30),
    "last_success_at": NOW - timedelta(seconds=30),
}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({}, None),
        ({"consecutive_failures": 4}, None),
        ({"consecutive_failures": 5}, "failing"),
        ({"last_success_at": NOW - timedelta(seconds=301)}, "no_success"),
        ({"last_success_at": None}, "no_success"),
        (
            {
                "last_poll_at": NOW - timedelta(seconds=301),
                "last_success_at": NOW - timedelta(seconds=299),
            },
            "not_polled",
        ),
        ({"last_poll_at": None}, "never_polled"),
    ],
)
def test_a_feed_is_stale_after_five_missed_polls(changes, problem):
    settings = Settings(stale_after_polls=5, poll_interval_seconds=60)
    health = feed_health("https://x/history.atom", {**FEED, **changes}, settings, NOW)
    assert health.problem == problem


def test_dashboard_counts_subscribers_by_state_language_and_product(admin, db, clock):
    audience_world(db, clock())
    page = admin.get("/admin/").text
    states = dict(re.findall(r'data-state-count="(\w+)">(\d+)<', page))
    assert states == {"confirmed": "5", "pending": "1", "unsubscribed": "1", "suppressed": "1"}
    assert db.subscriber_counts() == {
        "by_state": {"confirmed": 5, "pending": 1, "unsubscribed": 1, "suppressed": 1},
        "by_language": {"de": 3, "en": 2},
        "by_component": [
            {"id": "sms-eu", "name": "SMS (EU)", "n": 2},
            {"id": "sms-us", "name": "SMS (US)", "n": 0},
            {"id": "voice", "name": "Voice", "n": 1},
            {"id": "engage-chat", "name": "Chat", "n": 0},
        ],
        "all_components": 2,
        # Issue 12: per channel; every subscriber of this world is an email one.
        "by_channel": {
            "email": {"active": 5, "awaiting": 0, "paused": 0},
            "slack": {"active": 0, "awaiting": 0, "paused": 0},
            "teams": {"active": 0, "awaiting": 0, "paused": 0},
            "webhook": {"active": 0, "awaiting": 0, "paused": 0},
        },
    }
    assert '<th scope="row">SMS (EU)</th><td class="num">2</td>' in page


def test_dashboard_raises_a_feed_alert_after_missed_polls(app, admin, db, settings, clock):
    url = "https://status.example.com/history.atom"
    app.extensions["settings"] = replace(settings, feed_urls=(url,))
    feed = db.ensure_feed(url, clock())
    db.record_poll_success(feed["id"], clock(), title="Sinch Status")
    assert "Feed alert" not in admin.get("/admin/").text
    for _ in range(5):
        clock.advance(minutes=1)
        db.record_poll_error(feed["id"], clock(), "HTTP 503 from status.example.com")
    page = admin.get("/admin/").text
    assert "Feed alert: no fresh data" in page
    assert "5 polls in a row failed." in page
    assert "HTTP 503 from status.example.com" in page


def test_dashboard_shows_recent_notifications_with_progress(admin, db, clock):
    audience_world(db, clock())
    content, audience = normalize({"de": {"title": "T", "intro": "I"}, "en": {"title": "T2"}})
    draft = db.save_announcement(content, audience, "admin", clock())
    nid, _ = db.send_announcement(draft, content, audience, clock(), clock() + timedelta(hours=1))
    page = admin.get("/admin/").text
    assert f'data-progress="{nid}"' in page
    assert re.search(rf'data-progress="{nid}".*?data-count="pending">5<', page, re.S)


@pytest.fixture
def everything(db, settings, clock):
    """One of each: subscriber, sent announcement, draft, incident under review."""
    ids = audience_world(db, clock())
    content, audience = normalize(
        {"de": {"title": "Hinweis", "intro": "Text"}, "en": {"title": "Notice", "intro": "Text"}}
    )
    sent = db.save_announcement(content, audience, "admin", clock())
    nid, _ = db.send_announcement(sent, content, audience, clock(), clock() + timedelta(hours=1))
    draft = db.save_announcement(content, audience, "admin", clock())
    feed_id = db.list_feeds()[0]["id"]
    t0 = clock() - timedelta(minutes=1)
    entry = {
        "key": "inc000000001",
        "title": "Voice outage",
        "updates": [(t0, "Investigating", "Calls fail.")],
    }
    ingest(db, feed_id, parse_feed(atom([])), clock())
    ingest(db, feed_id, parse_feed(atom([entry])), clock())
    [review] = notify_changes(db, replace(settings, review_mode=True), clock())
    return {
        "subscriber_id": ids["de-sms-eu@example.de"],
        "announcement_id": draft,
        "notification_id": review,
        "lang": "de",
        "sent": (sent, nid),
    }


@pytest.mark.parametrize("language", ["en", "de"])
def test_every_ops_page_renders_with_data(app, admin, everything, language):
    sent_announcement, sent_notification = everything["sent"]
    pages = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if not rule.rule.startswith("/admin") or "GET" not in rule.methods:
                continue
            if rule.endpoint == "admin.login":  # logged in: it leads on to the dashboard
                continue
            values = {arg: everything[arg] for arg in rule.arguments}
            pages.append(url_for(rule.endpoint, **values))
        pages += [
            url_for("admin.announcement", announcement_id=sent_announcement),
            url_for("admin.notification", notification_id=sent_notification),
            url_for("admin.notification", notification_id=sent_notification, q="de", state="x"),
        ]
    headers = {"Accept-Language": language}
    for path in pages:
        response = admin.get(path, headers=headers)
        assert response.status_code == 200, path
        if response.mimetype == "text/html" and "/preview/" not in path:
            assert f'<html lang="{language}">' in response.text, path


def test_the_console_speaks_german(admin, everything):
    german = {"Accept-Language": "de-DE,de;q=0.9"}
    page = admin.get("/admin/", headers=german).text
    assert '<h2 id="subs-heading">Abonnent:innen</h2>' in page
    composer = admin.get(f"/admin/announcements/{everything['announcement_id']}", headers=german)
    assert "Für beide Sprachen" in composer.text
    review = admin.get(f"/admin/review/{everything['notification_id']}", headers=german).text
    assert "Freigeben und senden" in review
