"""SQLite query plans that must not depend on statistics SQLite never has here.

Production never runs ANALYZE, so SQLite's planner guesses, and for a statement that names
its deliveries by id (`id IN (…)`) and also tests `state`, it guesses an index on `state`
(deliveries_due): it then walks every row in that state (all 'sending' rows of the requests
in flight, or every 'sent' row ever) instead of looking up the ids. The hourly outcome
chart likewise walked every row of the four outcome states instead of its time range.

The first test runs the dispatcher through every outcome (202, 500, 400, a cancelled row,
the ambiguous-commit count) and the store calls that take id lists, captures every statement
the store sends, and holds each one that names deliveries by id to rowid lookups. A new
statement of that kind is checked without being listed here.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import pytest

from . import test_dispatch
from .helpers import add_subscriber
from .test_dispatch import CONTENT, dispatcher

sg_settings = test_dispatch.sg_settings

# A statement that picks deliveries rows by a list of ids (literal or json_each).
BY_ID = re.compile(r"\bdeliveries\b(?: d)?(?: NOT INDEXED)?\b.*?\b(?:d\.)?id IN \(", re.S)


def _sqlite_only(db):
    if db.backend != "sqlite":
        pytest.skip("PostgreSQL plans with its own statistics (autovacuum's ANALYZE)")


def _capture(db) -> list[tuple[str, list]]:
    """Every (sql, params) the store sends from now on, queries and executes alike (until
    _plan, which uses the store's own _raw_query again)."""
    seen: list[tuple[str, list]] = []
    query, execute = db._raw_query, db._raw_execute

    def noted_query(sql, params):
        seen.append((sql, list(params)))
        return query(sql, params)

    def noted_execute(sql, params):
        seen.append((sql, list(params)))
        return execute(sql, params)

    db._raw_query, db._raw_execute = noted_query, noted_execute
    return seen


def _plan(db, sql: str, params: list) -> list[str]:
    db.__dict__.pop("_raw_query", None)
    db.__dict__.pop("_raw_execute", None)
    return [r["detail"] for r in db._raw_query(f"EXPLAIN QUERY PLAN {sql}", params)]


def test_every_statement_that_names_deliveries_by_id_looks_them_up_by_rowid(
    db, sg_settings, clock, sendgrid
):
    _sqlite_only(db)
    now = clock()
    for i in range(12):
        add_subscriber(db, f"plan{i:02d}@example.com", now=now)
    nid = db.create_notification("incident", CONTENT, now, now + timedelta(hours=2))
    db.fan_out(nid, now)
    seen = _capture(db)

    # 202, a 500 (the rows go back for a retry), 202.
    sendgrid.script("accept", "server_error", "accept")
    settings = replace(sg_settings, send_batch_size=4, send_concurrency=1)
    dispatcher(db, settings, clock).run()
    # The calls a short run may not reach, on rows this worker holds.
    later = now + timedelta(hours=1)
    rows = db.claim_due("w1", later, later + timedelta(minutes=5), 4)
    ids = [r["id"] for r in rows]
    assert len(ids) == 4
    db.still_sending_subscribers(ids, "w1", "incident")
    db.record_request_attempt(ids[:1], later, "accepted", 202, None, "m1", once=True)
    db.mark_sent(ids[:1], later, "m1", "w1")
    db.count_sent_with(ids[:1], "m1")
    db.mark_retry(ids[1:2], later, later, "500", "w1")
    db.mark_failed(ids[2:3], later, "400", "w1")
    db.mark_cancelled(ids[3:], later, "unsubscribed", "w1")
    db.notifications_of_deliveries(ids)

    checked = set()
    for sql, params in list(seen):
        if not BY_ID.search(sql) or sql.lstrip().upper().startswith("INSERT INTO DELIVERIES "):
            continue
        plan = [line for line in _plan(db, sql, params) if "deliveries" in line or " d " in line]
        assert plan and all("USING INTEGER PRIMARY KEY (rowid=?)" in line for line in plan), (
            " ".join(sql.split()),
            plan,
        )
        checked.add(" ".join(sql.split())[:60])
    # Each kind walked: still-sending, the four outcomes, attempts, the two counts.
    assert len(checked) >= 8, sorted(checked)


def test_the_hourly_outcome_chart_reads_its_time_range_only(db, clock):
    _sqlite_only(db)
    seen = _capture(db)
    now = clock()
    db.deliveries_by_hour(now - timedelta(hours=24), now)
    ((sql, params),) = seen
    assert _plan(db, sql, params)[0] == (
        "SEARCH deliveries USING COVERING INDEX deliveries_outcome_time "
        "(updated_at>? AND updated_at<?)"
    )


def test_the_deliveries_gauge_counts_before_it_joins(db, clock):
    """The /metrics gauge of deliveries by state and kind counts per (state, notification)
    from an index first and joins the few groups to notifications, instead of looking up a
    notification for every delivery ever sent (notifier/store/metrics.py)."""
    _sqlite_only(db)
    seen = _capture(db)
    db.deliveries_by_state_kind()
    ((sql, params),) = seen
    plan = _plan(db, sql, params)
    scan = next(i for i, line in enumerate(plan) if "deliveries" in line)
    join = next(i for i, line in enumerate(plan) if line.startswith("SEARCH n "))
    assert "COVERING INDEX" in plan[scan] and scan < join, plan
    assert any(line in ("CO-ROUTINE g", "MATERIALIZE g") for line in plan[:scan]), plan
