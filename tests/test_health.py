"""GET /healthz: database reachable, per-feed freshness, 503 when the database is gone.

Feed URLs are shown only to a logged-in ops user; everyone else (an uptime checker) sees the
feeds as feed-1, feed-2, … in FEED_URLS order.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from notifier.store.postgres import PostgresStore

from .test_admin_helpers import ADMIN_HASH, login

A, B = "https://a.example/history.atom", "https://b.example/history.rss?key=private-token"


@pytest.fixture
def settings(settings):
    return replace(settings, admin_password_hash=ADMIN_HASH)


@pytest.fixture
def two_feeds(app, db, settings, clock):
    """Two configured feeds: A polled 90 s ago and failing once since, B never polled."""
    app.extensions["settings"] = replace(settings, feed_urls=(A, B))
    feed = db.ensure_feed(A, clock())
    db.record_poll_success(feed["id"], clock() - timedelta(seconds=90))
    db.record_poll_error(feed["id"], clock(), f"HTTP 503 from {A}")


def test_healthz_reports_each_feed_by_label_without_its_url(client, two_feeds):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == {
        "status": "ok",
        "database": "ok",
        "feeds": [
            {"feed": "feed-1", "last_success_age_seconds": 90, "consecutive_failures": 1},
            {"feed": "feed-2", "last_success_age_seconds": None, "consecutive_failures": 0},
        ],
    }
    body = response.get_data(as_text=True)
    assert "example" not in body and "private-token" not in body


def test_a_logged_in_admin_also_sees_the_feed_urls(client, two_feeds):
    assert login(client).status_code == 303

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == {
        "status": "ok",
        "database": "ok",
        "feeds": [
            {
                "feed": "feed-1",
                "url": A,
                "last_success_age_seconds": 90,
                "consecutive_failures": 1,
            },
            {
                "feed": "feed-2",
                "url": B,
                "last_success_age_seconds": None,
                "consecutive_failures": 0,
            },
        ],
    }


def test_an_ended_admin_session_sees_no_urls(client, two_feeds, settings, clock):
    assert login(client).status_code == 303
    idle = settings.admin_session_idle_minutes * 60 + 1
    clock.advance(seconds=idle)
    assert client.get("/healthz").get_json() == {
        "status": "ok",
        "database": "ok",
        "feeds": [
            {"feed": "feed-1", "last_success_age_seconds": 90 + idle, "consecutive_failures": 1},
            {"feed": "feed-2", "last_success_age_seconds": None, "consecutive_failures": 0},
        ],
    }


def test_healthz_is_503_when_the_database_is_unreachable(app, client, db):
    # Nothing listens on port 1: every query fails the way a lost database does.
    db.close()
    app.extensions["store"] = PostgresStore("postgresql://nobody@127.0.0.1:1/none")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "database": "unreachable"}
