"""Dashboard charts (issue 15, part 3): the tables behind the charts match the database, and the
SVG is well-formed with one bar per hour or day and an accessible name and description.

Seeded with the injectable clock (2026-11-26 12:00 UTC) on both backends: rows on hour
boundaries, empty hours as zeros, the 7-day and 24-hour edges, and the 90-day subscriber count
ending at today's count.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from notifier.admin.charts import days_ending, hours_ending, nice_ceiling
from notifier.fetch import make_client
from notifier.poller import poll_all

from .feedgen import Incident, Page, Post, render, utc
from .helpers import add_subscriber
from .test_admin_helpers import ADMIN_HASH, admin_client  # noqa: F401  (fixture)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # the `clock` fixture's start
FEED_A = "https://a.example.com/history.atom"
FEED_B = "https://b.example.com/history.atom"
SVG = "{http://www.w3.org/2000/svg}"
OUTCOMES = ["sent", "failed", "expired", "suppressed", "cancelled"]


@pytest.fixture(name="settings")
def chart_settings(settings):
    return replace(settings, admin_password_hash=ADMIN_HASH, feed_urls=(FEED_A, FEED_B))


# --- reading the page -------------------------------------------------------------


def figure(page: str, chart_id: str) -> str:
    match = re.search(rf'<figure class="chart-figure" data-chart="{chart_id}">(.*?)</figure>',
                      page, re.S)  # fmt: skip
    assert match, f"no chart {chart_id}"
    return match.group(1)


def table_rows(page: str, chart_id: str) -> list[tuple]:
    """(row header, *numbers) for each body row of the chart's table."""
    body = re.search(r"<tbody>(.*?)</tbody>", figure(page, chart_id), re.S).group(1)
    rows = []
    for head, cells in re.findall(r'<tr><th scope="row">(.*?)</th>(.*?)</tr>', body):
        rows.append((head, *(int(v) for v in re.findall(r'<td class="num">(\d+)</td>', cells))))
    return rows


def table_head(page: str, chart_id: str) -> list[str]:
    head = re.search(r"<thead>(.*?)</thead>", figure(page, chart_id), re.S).group(1)
    return re.findall(r'<th scope="col"[^>]*>(.*?)</th>', head)


def svg_of(page: str, chart_id: str) -> ET.Element:
    """The chart's <svg>, parsed as XML (fails when it is not well-formed)."""
    text = re.search(r"<svg class=\"chart\".*?</svg>", figure(page, chart_id), re.S).group(0)
    return ET.fromstring(text)


def dashboard(client, language: str = "en") -> str:
    response = client.get("/admin/", headers={"Accept-Language": language})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def hour_label(hour: datetime) -> str:
    return hour.strftime("%Y-%m-%d %H:%M UTC")


# --- seeding ---------------------------------------------------------------------


def add_notification(db) -> int:
    return db._query_one(
        "INSERT INTO notifications (kind, content, created_at, expires_at) "
        "VALUES ('announcement', '{}', ?, ?) RETURNING id",
        [NOW - timedelta(days=30), NOW + timedelta(days=1)],
    )["id"]


def add_delivery(db, notification_id: int, state: str, updated_at: datetime, reason=None):
    db._execute(
        "INSERT INTO deliveries (notification_id, subscriber_id, email, language, timezone, "
        "state, reason, next_attempt_at, created_at, updated_at) "
        "VALUES (?, NULL, 'ops@example.com', 'en', 'UTC', ?, ?, ?, ?, ?)",
        [notification_id, state, reason, updated_at, updated_at, updated_at],
    )


# --- deliveries per hour ------------------------------------------------------------


def test_deliveries_table_counts_each_hour_by_outcome_with_empty_hours_as_zero(admin, db):
    n = add_notification(db)
    first_hour = datetime(2026, 11, 19, 13, tzinfo=UTC)  # 168 hours ending with 12:00-13:00
    seeded = [
        ("sent", NOW, None),  # on the boundary: the current hour
        ("sent", NOW + timedelta(minutes=59, seconds=59), None),  # clock may run on in the hour
        ("sent", NOW - timedelta(microseconds=1), None),  # 11:59:59.999999: the hour before
        ("failed", NOW - timedelta(minutes=30), "HTTP 400"),
        ("failed", NOW - timedelta(minutes=31), "expired"),
        ("failed", NOW - timedelta(hours=5), None),
        ("suppressed", NOW - timedelta(hours=5), "bounce"),
        ("cancelled", NOW - timedelta(hours=26), "withdrawn"),
        ("sent", first_hour, None),  # the 7-day edge: the first hour is in
        ("sent", first_hour - timedelta(microseconds=1), None),  # and the hour before it is out
        ("failed", first_hour - timedelta(days=3), "expired"),  # long gone
        ("pending", NOW - timedelta(hours=1), None),  # not an outcome yet
        ("sending", NOW - timedelta(hours=1), None),
    ]
    for state, at, reason in seeded:
        add_delivery(db, n, state, at, reason)

    rows = table_rows(dashboard(admin), "chart-deliveries")

    expected = {h: dict.fromkeys(OUTCOMES, 0) for h in hours_ending(NOW, 168)}
    expected[NOW]["sent"] = 2
    expected[NOW - timedelta(hours=1)].update(sent=1, failed=1, expired=1)
    expected[NOW - timedelta(hours=5)].update(failed=1, suppressed=1)
    expected[NOW - timedelta(hours=26)]["cancelled"] = 1
    expected[first_hour]["sent"] = 1
    assert rows == [(hour_label(h), *(c[k] for k in OUTCOMES)) for h, c in expected.items()]
    assert rows[0][0] == "2026-11-19 13:00 UTC" and rows[-1][0] == "2026-11-26 12:00 UTC"
    # The same totals straight from the ledger.
    in_range = db._query(
        "SELECT state, reason FROM deliveries WHERE updated_at >= ? AND updated_at < ? "
        "AND state IN ('sent', 'failed', 'suppressed', 'cancelled')",
        [first_hour, NOW + timedelta(hours=1)],
    )
    by_outcome = Counter(
        "expired" if r["state"] == "failed" and r["reason"] == "expired" else r["state"]
        for r in in_range
    )
    assert [sum(r[i + 1] for r in rows) for i in range(5)] == [by_outcome[k] for k in OUTCOMES]


def test_deliveries_chart_is_well_formed_svg_with_168_bars_and_accessible_names(admin, db):
    n = add_notification(db)
    add_delivery(db, n, "sent", NOW - timedelta(hours=2))
    add_delivery(db, n, "sent", NOW - timedelta(hours=2))
    add_delivery(db, n, "failed", NOW - timedelta(hours=2), "expired")
    page = dashboard(admin)

    svg = svg_of(page, "chart-deliveries")
    assert (svg.get("role"), svg.get("aria-labelledby")) == (
        "img",
        "chart-deliveries-title chart-deliveries-desc",
    )
    title = svg.find(f"{SVG}title")
    desc = svg.find(f"{SVG}desc")
    assert (title.get("id"), title.text) == (
        "chart-deliveries-title",
        "Deliveries per hour, last 7 days",
    )
    assert (desc.get("id"), desc.text) == (
        "chart-deliveries-desc",
        "From 2026-11-19 13:00 UTC to 2026-11-26 12:00 UTC. Totals: Sent 2, Failed 0, "
        "Expired 1, Suppressed 0, Cancelled 0. Highest: 3 (2026-11-26 10:00 UTC).",
    )
    bars = svg.findall(f"{SVG}g[@class='bar']")
    assert len(bars) == 168
    drawn = [(b.find(f"{SVG}title").text, [r.get("class") for r in b.findall(f"{SVG}rect")])
             for b in bars if b.findall(f"{SVG}rect")]  # fmt: skip
    assert drawn == [
        (
            "2026-11-26 10:00 UTC: Sent 2, Failed 0, Expired 1, Suppressed 0, Cancelled 0",
            ["seg s-sent", "seg s-expired"],
        )
    ]
    patterns = [p.get("id") for p in svg.iter(f"{SVG}pattern")]
    assert patterns == [f"chart-deliveries-{k}" for k in OUTCOMES]
    assert table_head(page, "chart-deliveries") == [
        "Hour", "Sent", "Failed", "Expired", "Suppressed", "Cancelled",
    ]  # fmt: skip
    legend = re.findall(r"</svg>(\w+): <strong>(\d+)</strong>", figure(page, "chart-deliveries"))
    assert legend == [("Sent", "2"), ("Failed", "0"), ("Expired", "1"), ("Suppressed", "0"),
                      ("Cancelled", "0")]  # fmt: skip
    assert "<caption>Deliveries per hour, last 7 days</caption>" in page


def test_chart_hours_are_labelled_in_berlin_time_in_german(admin, db):
    page = dashboard(admin, "de")
    rows = table_rows(page, "chart-deliveries")
    # 12:00 UTC is 13:00 in Berlin in November (MEZ, UTC+1).
    assert (rows[0][0], rows[-1][0]) == ("2026-11-19 14:00 MEZ", "2026-11-26 13:00 MEZ")
    assert table_head(page, "chart-deliveries") == [
        "Stunde", "Gesendet", "Fehlgeschlagen", "Abgelaufen", "Gesperrt", "Abgebrochen",
    ]  # fmt: skip
    assert svg_of(page, "chart-deliveries").find(f"{SVG}title").text == (
        "Zustellungen pro Stunde, letzte 7 Tage"
    )


# --- polls per feed --------------------------------------------------------------


def test_poll_tables_count_each_feeds_outcomes_per_hour_for_24_hours(admin, db):
    a = db.ensure_feed(FEED_A, NOW - timedelta(days=3))["id"]
    b = db.ensure_feed(FEED_B, NOW - timedelta(days=3))["id"]
    first_hour = NOW - timedelta(hours=23)
    db.record_poll_success(a, NOW)
    db.record_poll_success(a, NOW + timedelta(minutes=1))
    db.record_feed_warning(a, NOW + timedelta(minutes=1), "entry 3: unknown status word")
    db.record_poll_error(a, NOW - timedelta(seconds=1), "timed out")
    db.record_poll_success(a, first_hour)  # the 24-hour edge: in
    db.record_poll_error(a, first_hour - timedelta(microseconds=1), "refused")  # out
    db.record_poll_error(b, NOW - timedelta(hours=3), "HTTP 503")
    db.record_poll_error(b, NOW - timedelta(hours=3, minutes=-1), "HTTP 503")

    page = dashboard(admin)

    hours = hours_ending(NOW, 24)
    expected_a = {h: [0, 0, 0] for h in hours}
    expected_a[NOW] = [1, 1, 0]
    expected_a[NOW - timedelta(hours=1)] = [0, 0, 1]
    expected_a[first_hour] = [1, 0, 0]
    expected_b = {h: [0, 0, 0] for h in hours}
    expected_b[NOW - timedelta(hours=3)] = [0, 0, 2]
    assert table_rows(page, "chart-polls-1") == [(hour_label(h), *v) for h, v in expected_a.items()]
    assert table_rows(page, "chart-polls-2") == [(hour_label(h), *v) for h, v in expected_b.items()]
    assert table_head(page, "chart-polls-1") == ["Hour", "Succeeded", "With warnings", "Failed"]
    for number, url in [(1, FEED_A), (2, FEED_B)]:
        svg = svg_of(page, f"chart-polls-{number}")
        assert len(svg.findall(f"{SVG}g[@class='bar']")) == 24
        assert svg.find(f"{SVG}title").text == f"Polls per hour, last 24 hours: {url}"
    # The log is the store's own record: one row per poll, the warning on its poll.
    logged = db._query("SELECT feed_id, polled_at, outcome FROM poll_log ORDER BY id")
    assert logged == [
        {"feed_id": a, "polled_at": NOW, "outcome": "ok"},
        {"feed_id": a, "polled_at": NOW + timedelta(minutes=1), "outcome": "warning"},
        {"feed_id": a, "polled_at": NOW - timedelta(seconds=1), "outcome": "error"},
        {"feed_id": a, "polled_at": first_hour, "outcome": "ok"},
        {"feed_id": a, "polled_at": first_hour - timedelta(microseconds=1), "outcome": "error"},
        {"feed_id": b, "polled_at": NOW - timedelta(hours=3), "outcome": "error"},
        {"feed_id": b, "polled_at": NOW - timedelta(hours=3, minutes=-1), "outcome": "error"},
    ]


def test_real_polls_are_logged_as_ok_error_and_warning(feed_server, db, settings, clock):
    sms = Incident(
        key="sms0000000a1",
        title="Delayed SMS delivery (EU)",
        posts=(Post("investigating", utc(2026, 11, 26, 11, 2), "We are investigating."),),
    )
    unknown_word = sms.with_posts(Post("Mitigated", utc(2026, 11, 26, 12, 0), "?"))
    url = feed_server.set("/history.atom", render("atom", Page(), [sms]))
    outcomes = []
    with make_client(settings.feed_timeout_seconds) as http:
        for body, status in [
            (render("atom", Page(), [sms]), 200),  # baseline
            (render("atom", Page(), [sms]), 200),  # the same body
            (b"Service Unavailable", 503),
            (render("atom", Page(), [unknown_word]), 200),  # usable, with a warning
        ]:
            feed_server.set("/history.atom", body, status=status)
            [result] = poll_all(db, http, [url], clock.advance(minutes=1), 5 * 1024 * 1024)
            outcomes.append(result.outcome)
    assert outcomes == ["baseline", "same_body", "error", "no_changes"]
    feed_id = db.get_feed(url)["id"]
    assert db._query("SELECT feed_id, polled_at, outcome FROM poll_log ORDER BY id") == [
        {"feed_id": feed_id, "polled_at": NOW + timedelta(minutes=m), "outcome": o}
        for m, o in [(1, "ok"), (2, "ok"), (3, "error"), (4, "warning")]
    ]


def test_poll_log_keeps_two_days_per_feed(db):
    a = db.ensure_feed(FEED_A, NOW)["id"]
    b = db.ensure_feed(FEED_B, NOW)["id"]
    db.record_poll_success(a, NOW - timedelta(hours=50))
    db.record_poll_success(b, NOW - timedelta(hours=50))
    db.record_poll_error(a, NOW - timedelta(hours=47), "timed out")
    db.record_poll_success(a, NOW)
    logged = db._query("SELECT feed_id, polled_at, outcome FROM poll_log ORDER BY id")
    assert logged == [
        {"feed_id": b, "polled_at": NOW - timedelta(hours=50), "outcome": "ok"},  # b not polled
        {"feed_id": a, "polled_at": NOW - timedelta(hours=47), "outcome": "error"},
        {"feed_id": a, "polled_at": NOW, "outcome": "ok"},
    ]


def test_a_feed_never_polled_has_a_chart_of_zeros(admin, db):
    page = dashboard(admin)
    assert table_rows(page, "chart-polls-2") == [(hour_label(h), 0, 0, 0)
                                                 for h in hours_ending(NOW, 24)]  # fmt: skip
    svg = svg_of(page, "chart-polls-2")
    segments = [r for r in svg.iter(f"{SVG}rect") if r.get("class", "").startswith("seg")]
    assert segments == []


# --- subscribers per day -----------------------------------------------------------


def set_times(db, subscriber_id: int, **times) -> None:
    columns = ", ".join(f"{k} = ?" for k in times)
    db._execute(f"UPDATE subscribers SET {columns} WHERE id = ?", [*times.values(), subscriber_id])


def test_subscriber_table_counts_confirmed_at_each_days_end_for_90_days(admin, db):
    day = timedelta(days=1)
    long_ago = NOW - 200 * day
    # Confirmed before the range and still there; confirmed before and left inside it.
    add_subscriber(db, "old@example.com", now=long_ago)
    gone = add_subscriber(db, "gone@example.com", now=long_ago, state="unsubscribed")
    set_times(db, gone, confirmed_at=long_ago, unsubscribed_at=NOW - 10 * day)
    # Left before the range: never counted in it.
    left = add_subscriber(db, "left@example.com", now=long_ago, state="suppressed")
    set_times(db, left, confirmed_at=long_ago, suppressed_at=NOW - 100 * day)
    # Signed up and confirmed inside the range, one on the first day's first microsecond.
    first_day = datetime(2026, 8, 29, tzinfo=UTC)  # 90 days ending with 2026-11-26
    add_subscriber(db, "edge@example.com", now=first_day)
    recent = add_subscriber(db, "new@example.com", now=NOW - 2 * day)
    set_times(db, recent, confirmed_at=NOW - day)
    late = add_subscriber(db, "late@example.com", now=first_day - timedelta(microseconds=1))
    set_times(db, late, confirmed_at=first_day + 5 * day)
    # Signed up, never confirmed; and confirmed then suppressed today.
    add_subscriber(db, "pending@example.com", now=NOW - 3 * day, state="pending")
    bounced = add_subscriber(db, "bounced@example.com", now=NOW - 20 * day, state="suppressed")
    set_times(db, bounced, confirmed_at=NOW - 20 * day, suppressed_at=NOW)

    rows = table_rows(dashboard(admin), "chart-subscribers")

    days = days_ending(NOW, 90)
    assert (days[0], days[-1]) == (date(2026, 8, 29), date(2026, 11, 26))
    # The reference: each subscriber's confirmed span [from, until), counted at each day's end.
    spans = [
        (long_ago, None),
        (long_ago, NOW - 10 * day),
        (long_ago, NOW - 100 * day),
        (first_day, None),
        (NOW - day, None),
        (first_day + 5 * day, None),
        (NOW - 20 * day, NOW),
    ]
    signups = Counter(d.date() for d in [first_day, NOW - 2 * day, NOW - 3 * day, NOW - 20 * day])
    unsubscribes = Counter([(NOW - 10 * day).date()])
    expected = []
    for d in days:
        end = datetime(d.year, d.month, d.day, tzinfo=UTC) + day
        confirmed = sum(
            1 for start, until in spans if start < end and (until is None or until >= end)
        )
        expected.append((d.isoformat(), confirmed, signups[d], unsubscribes[d]))
    assert rows == expected
    assert rows[0] == ("2026-08-29", 3, 1, 0)
    assert rows[-1] == ("2026-11-26", 4, 0, 0)
    assert rows[-1][1] == db.subscriber_counts()["by_state"]["confirmed"]
    page = dashboard(admin)
    svg = svg_of(page, "chart-subscribers")
    assert len(svg.findall(f"{SVG}g[@class='bar']")) == 90
    peak = max(expected, key=lambda r: r[1])  # the first day with the most confirmed
    assert svg.find(f"{SVG}desc").text == (
        "From 2026-08-29 to 2026-11-26. Totals: Confirmed now 4, Sign-ups 4, Unsubscribes 1. "
        f"Highest: {peak[1]} ({peak[0]})."
    )
    legend = re.findall(
        r"</svg>([\w ]+): <strong>(\d+)</strong>", figure(page, "chart-subscribers")
    )
    assert legend == [("Confirmed now", "4")]
    assert [p.get("id") for p in svg.iter(f"{SVG}pattern")] == ["chart-subscribers-confirmed"]


def test_empty_database_draws_every_chart_with_zeros(admin, db):
    page = dashboard(admin)
    charts = ["chart-deliveries", "chart-polls-1", "chart-polls-2", "chart-subscribers"]
    assert re.findall(r'data-chart="([\w-]+)"', page) == charts
    for chart_id, bars in zip(charts, [168, 24, 24, 90], strict=True):
        rows = table_rows(page, chart_id)
        assert len(rows) == bars and all(set(r[1:]) == {0} for r in rows)
        svg = svg_of(page, chart_id)
        assert len(svg.findall(f"{SVG}g[@class='bar']")) == bars
        assert svg.find(f"{SVG}desc").text.startswith("From ")


def test_nice_ceiling_rounds_up_to_one_two_or_five_times_ten_to_a_power():
    assert [nice_ceiling(v) for v in [0, 1, 2, 3, 6, 11, 99, 101, 4999, 5001]] == [
        1, 1, 2, 5, 10, 20, 100, 200, 5000, 10000,
    ]  # fmt: skip
