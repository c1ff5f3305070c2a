"""GET /metrics (issue 15, part 2): Prometheus text format behind a bearer token, gauges read
from the database at scrape time, worker counters kept in the database (notifier/metrics.py).

Scrapes go through the test client and are parsed with prometheus_client's own parser; the
values are compared with what the database holds after a real poll of a local feed and a real
dispatch through the official sendgrid library to tests/fake_sendgrid.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from notifier import jobs
from notifier.delivery.mailer import SendResult
from notifier.metrics import count_polls, count_send
from notifier.poller import PollResult
from notifier.store import open_store

from .helpers import add_subscriber, atom, poll_and_mail_through_fakes

TOKEN = "metrics-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
P = "status_notifier_"
BUCKETS = ("0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "30.0", "+Inf")


def scrape(client, headers=AUTH) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted label pairs): value} of one authorised scrape."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.data
    assert response.headers["Cache-Control"] == "no-store"
    assert response.content_type.startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def named(samples: dict, name: str) -> dict[tuple, float]:
    return {labels: value for (n, labels), value in samples.items() if n == name}


@pytest.fixture
def metrics_app(app, settings):
    app.extensions["settings"] = replace(settings, metrics_token=TOKEN)
    return app


# --- access -----------------------------------------------------------------------------
def test_metrics_is_not_found_while_no_token_is_set(client):
    for headers in ({}, AUTH, {"Authorization": "Bearer "}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 404
        assert "WWW-Authenticate" not in response.headers


def test_metrics_refuses_a_missing_or_wrong_token(metrics_app):
    client = metrics_app.test_client()
    wrong = (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    )
    for headers in wrong:
        response = client.get("/metrics", headers=headers)
        assert (response.status_code, response.headers["WWW-Authenticate"]) == (
            401,
            'Bearer realm="metrics"',
        ), headers
        assert response.headers["Cache-Control"] == "no-store"
        assert b"# TYPE" not in response.data
    head = client.head("/metrics", headers=AUTH)
    assert (head.status_code, head.headers["Cache-Control"]) == (200, "no-store")
    assert client.post("/metrics", headers=AUTH).status_code in (400, 405)


def test_metrics_requests_are_rate_limited_per_client(settings, clock):
    """Wrong tokens and right ones count alike against RATE_LIMIT_ONE_CLICK."""
    app = create_app(
        settings.with_overrides(metrics_token=TOKEN, rate_limit_one_click="3 per minute")
    )
    app.extensions["clock"] = clock
    try:
        client = app.test_client()
        statuses = [
            client.get("/metrics", headers=h).status_code
            for h in ({"Authorization": "Bearer nope"}, AUTH, {}, AUTH)
        ]
        assert statuses == [401, 200, 401, 429]
        clock.advance(minutes=1)
        assert client.get("/metrics", headers=AUTH).status_code == 200
    finally:
        app.extensions["store"].close()


# --- values against the database ------------------------------------------------------
def _db_gauges(db, now) -> dict:
    deliveries = db._query(
        "SELECT d.state, n.kind, COUNT(*) AS c FROM deliveries d "
        "JOIN notifications n ON n.id = d.notification_id GROUP BY d.state, n.kind"
    )
    subscribers = db._query(
        "SELECT state, language, COUNT(*) AS c FROM subscribers GROUP BY state, language"
    )
    return {
        "deliveries": {
            (("kind", r["kind"]), ("state", r["state"])): float(r["c"]) for r in deliveries
        },
        "subscribers": {
            (("language", r["language"]), ("state", r["state"])): float(r["c"]) for r in subscribers
        },
    }


def test_scrape_matches_the_database_after_a_real_poll_and_dispatch(
    metrics_app, db, settings, sendgrid, feed_server, clock
):
    app = metrics_app
    url = feed_server.url("/history.atom")
    poll_and_mail_through_fakes(app, settings, sendgrid, url)
    app.extensions["settings"] = replace(app.extensions["settings"], metrics_token=TOKEN)
    add_subscriber(db, "anna@example.de", now=clock(), language="de")
    add_subscriber(db, "ben@example.com", now=clock(), language="en")
    add_subscriber(db, "pending@example.com", now=clock(), state="pending")
    db.raise_alert("sending_paused", "test", clock())
    t0 = clock() - timedelta(hours=1)
    incident = {"key": "sms000000001", "title": "Delayed SMS delivery",
                "updates": [(t0, "Investigating", "We are looking into delays.")]}  # fmt: skip
    feed_server.set("/history.atom", atom([incident]))
    jobs.poll(app)  # the silent baseline
    incident["updates"].append((t0 + timedelta(minutes=30), "Identified", "A faulty gateway."))
    feed_server.set("/history.atom", atom([incident]))
    clock.advance(minutes=1)
    jobs.poll(app)
    jobs.dispatch(app)
    assert [r.status for r in sendgrid.requests] == [202, 202]  # one per language

    clock.advance(seconds=42)
    samples = scrape(app.test_client())
    gauges = _db_gauges(db, clock())
    assert named(samples, P + "deliveries") == gauges["deliveries"]
    assert gauges["deliveries"] == {(("kind", "incident"), ("state", "sent")): 2.0}
    assert named(samples, P + "subscribers") == gauges["subscribers"]
    [feed] = db.list_feeds()
    assert (
        named(samples, P + "feed_last_success_age_seconds")
        == {(("feed", "feed-1"),): (clock() - feed["last_success_at"]).total_seconds()}
        == {(("feed", "feed-1"),): 42.0}
    )
    assert named(samples, P + "feed_consecutive_failures") == {(("feed", "feed-1"),): 0.0}
    assert named(samples, P + "oldest_due_delivery_age_seconds") == {(): 0.0}
    assert named(samples, P + "open_alerts") == {(("kind", "sending_paused"),): 1.0}
    assert named(samples, P + "polls_total") == {
        (("outcome", "baseline"),): 1.0,
        (("outcome", "changes"),): 1.0,
    }
    assert named(samples, P + "changes_recorded_total") == {(("type", "new_update"),): 1.0}
    assert named(samples, P + "sendgrid_requests_total") == {
        (("outcome", "accepted"), ("status_class", "2xx")): 2.0
    }
    buckets = named(samples, P + "sendgrid_request_duration_seconds_bucket")
    assert [le for ((_, le),) in buckets] == list(BUCKETS)
    assert buckets[(("le", "+Inf"),)] == 2.0
    assert named(samples, P + "sendgrid_request_duration_seconds_count") == {(): 2.0}
    assert 0 < samples[(P + "sendgrid_request_duration_seconds_sum", ())] < 5


def test_failures_and_a_waiting_delivery_show(
    metrics_app, db, settings, sendgrid, feed_server, clock
):
    """A 500 from SendGrid is counted by status class and leaves a due delivery whose age
    grows with the clock; a feed answering 404 counts a failed poll."""
    app = metrics_app
    url = feed_server.url("/history.atom")
    poll_and_mail_through_fakes(app, settings, sendgrid, url)
    app.extensions["settings"] = replace(app.extensions["settings"], metrics_token=TOKEN)
    add_subscriber(db, "ben@example.com", now=clock(), language="en")
    t0 = clock() - timedelta(hours=1)
    incident = {"key": "sms000000001", "title": "Delayed SMS delivery",
                "updates": [(t0, "Investigating", "We are looking into delays.")]}  # fmt: skip
    feed_server.set("/history.atom", atom([incident]))
    jobs.poll(app)
    incident["updates"].append((t0 + timedelta(minutes=30), "Identified", "A faulty gateway."))
    feed_server.set("/history.atom", atom([incident]))
    jobs.poll(app)
    sendgrid.script("server_error")
    jobs.dispatch(app)
    [row] = db._query("SELECT state, next_attempt_at FROM deliveries")
    assert row["state"] == "pending"
    clock.current = row["next_attempt_at"] + timedelta(seconds=90)
    feed_server.set("/history.atom", b"gone", status=404)
    jobs.poll(app)
    samples = scrape(app.test_client())
    assert named(samples, P + "oldest_due_delivery_age_seconds") == {(): 90.0}
    assert named(samples, P + "sendgrid_requests_total") == {
        (("outcome", "transient"), ("status_class", "5xx")): 1.0
    }
    assert named(samples, P + "polls_total") == {
        (("outcome", "baseline"),): 1.0,
        (("outcome", "changes"),): 1.0,
        (("outcome", "error"),): 1.0,
    }
    assert named(samples, P + "feed_consecutive_failures") == {(("feed", "feed-1"),): 1.0}


# --- counters persist ----------------------------------------------------------------------
def _send(status: int | None, outcome: str, seconds: float) -> SendResult:
    return SendResult(outcome, status, None, None, None, duration_seconds=seconds)


def test_counters_survive_a_restart_and_two_workers_add_up(metrics_app, db, settings):
    """Two workers (two store instances on one database) count; a new app (a restarted
    web process) reports their sum; the histogram buckets are cumulative."""
    other = open_store(settings)
    try:
        count_polls(db, [PollResult("u", "no_changes"), PollResult("u", "error", error="x")])
        count_polls(other, [PollResult("u", "no_changes", changes=({"type": "new_incident"},))])
        count_send(db, _send(202, "accepted", 0.07))
        count_send(other, _send(202, "accepted", 0.3))
        count_send(other, _send(None, "maybe_sent", 31.0))
        count_send(other, _send(429, "rate_limited", 0.04))
        count_send(db, SendResult("accepted", None, "outbox", None, None))  # no request
    finally:
        other.close()
    db.close()

    restarted = create_app(replace(settings, metrics_token=TOKEN))
    try:
        samples = scrape(restarted.test_client())
    finally:
        restarted.extensions["store"].close()
    assert named(samples, P + "polls_total") == {
        (("outcome", "error"),): 1.0,
        (("outcome", "no_changes"),): 2.0,
    }
    assert named(samples, P + "changes_recorded_total") == {(("type", "new_incident"),): 1.0}
    assert named(samples, P + "sendgrid_requests_total") == {
        (("outcome", "accepted"), ("status_class", "2xx")): 2.0,
        (("outcome", "maybe_sent"), ("status_class", "none")): 1.0,
        (("outcome", "rate_limited"), ("status_class", "4xx")): 1.0,
    }
    cumulative = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 4.0]
    assert named(samples, P + "sendgrid_request_duration_seconds_bucket") == {
        (("le", le),): value for le, value in zip(BUCKETS, cumulative, strict=True)
    }
    assert named(samples, P + "sendgrid_request_duration_seconds_count") == {(): 4.0}
    assert samples[(P + "sendgrid_request_duration_seconds_sum", ())] == pytest.approx(31.41)


def test_counting_never_stops_the_worker_when_the_database_refuses(db, caplog):
    db.close()
    db._raw_execute = db._raw_executemany = None  # any write now fails inside the store

    count_polls(db, [PollResult("u", "no_changes")])
    count_send(db, _send(202, "accepted", 0.1))
    assert [r.message for r in caplog.records if r.name == "notifier.metrics"] == [
        "metrics: counters not updated (TypeError): 'NoneType' object is not callable"
    ] * 2
