"""A time the parser is unsure of travels with the incident: stored, in the notification content,
marked on the ops review page; titles with their own '<' are escaped there (issue 10)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from notifier.feed import parse_feed
from notifier.notifications import notify_changes
from notifier.poller import ingest

from .feedgen import Incident, Page, Post, render
from .test_admin_helpers import admin_client, admin_settings  # noqa: F401  (fixtures)

# A page on an older tz database: Tashkent (+05:00) printed as "UZT", which no table knows.
UZT = Page(zone="Asia/Tashkent", abbreviation="UZT")
DOUBT = "Nov 26, 16:50 UZT: no time zone is known by that name; read with the entry's offset +05:00"


@pytest.fixture
def waiting(db, settings, clock):
    """A notification under review for an incident with an unsure time and a '<' in its title."""
    feed_id = db.ensure_feed("https://status.example.com/history.atom", clock())["id"]
    old = Incident(
        key="old000000001",
        title="Old",
        posts=(Post("resolved", clock() - timedelta(days=9), "Done."),),
    )
    ingest(db, feed_id, parse_feed(render("atom", UZT, [old])), clock())  # silent baseline
    new = Incident(
        key="uzt000000001",
        title="Errors on <POST /xms/v1/batches> in EU",
        posts=(Post("investigating", clock() - timedelta(minutes=10), "Calls fail."),),
    )
    ingest(db, feed_id, parse_feed(render("atom", UZT, [new, old])), clock())
    [nid] = notify_changes(db, replace(settings, review_mode=True), clock())
    return db.get_notification(nid)


def test_the_doubt_is_stored_and_carried_in_the_notification(db, waiting):
    incident = db.get_incident(waiting["incident_id"])
    assert (incident["title"], incident["time_doubt"]) == (
        "Errors on <POST /xms/v1/batches> in EU",
        [DOUBT],
    )
    assert waiting["content"]["incident"]["time_doubt"] == [DOUBT]
    assert waiting["content"]["updates"] == [
        # The update that made the notification is marked new (issue 16).
        {
            "status": "investigating",
            "at": "2026-11-26T11:50:00Z",
            "text": "Calls fail.",
            "new": True,
        }
    ]


def test_the_review_page_marks_the_unsure_time_and_escapes_the_title(admin, waiting):
    page = admin.get(f"/admin/review/{waiting['id']}").text
    assert "Times uncertain" in page
    assert f"<li>{DOUBT.replace(chr(39), '&#39;')}</li>" in page
    assert "Errors on &lt;POST /xms/v1/batches&gt; in EU" in page
    assert "<POST" not in page
    queue = admin.get("/admin/review").text
    assert '<span class="badge badge-warning">Times uncertain</span>' in queue


def test_an_incident_without_doubt_stores_none(db, settings, clock):
    feed_id = db.ensure_feed("https://status.example.com/history.atom", clock())["id"]
    sure = Incident(
        key="sure00000001",
        title="Delays",
        posts=(Post("investigating", clock() - timedelta(minutes=10), "Looking."),),
    )
    ingest(db, feed_id, parse_feed(render("atom", Page(zone="Europe/Berlin"), [sure])), clock())
    (row,) = db._query("SELECT id FROM incidents")
    assert db.get_incident(row["id"])["time_doubt"] is None
