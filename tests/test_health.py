"""GET /healthz: database reachable, per-feed freshness, 503 when the database is gone."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from notifier.store.postgres import PostgresStore


def test_healthz_reports_each_configured_feed(app, client, db, settings, clock):
    a, b = "https://a.example/history.atom", "https://b.example/history.rss"
    app.extensions["settings"] = replace(settings, feed_urls=(a, b))
    feed = db.ensure_feed(a, clock())
    db.record_poll_success(feed["id"], clock() - timedelta(seconds=90))
    db.record_poll_error(feed["id"], clock(), "HTTP 503 from https://a.example/history.atom")

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == {
        "status": "ok",
        "database": "ok",
        "feeds": [
            {"url": a, "last_success_age_seconds": 90, "consecutive_failures": 1},
            {"url": b, "last_success_age_seconds": None, "consecutive_failures": 0},
        ],
    }


def test_healthz_is_503_when_the_database_is_unreachable(app, client, db):
    # Nothing listens on port 1: every query fails the way a lost database does.
    db.close()
    app.extensions["store"] = PostgresStore("postgresql://nobody@127.0.0.1:1/none")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "database": "unreachable"}
