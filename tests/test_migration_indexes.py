"""Migration 0020 (issue 14): leaner delivery indexes, on both backends.

A delivery changes state twice per send, and every index holding `state` is rewritten each
time. The due-queue index now holds pending rows only (a claimed row leaves it once, a sent
row never enters it), and the per-subscriber index no longer holds the state. The reads
that used them still walk an index.
"""

from __future__ import annotations

from datetime import timedelta

from .helpers import add_subscriber
from .test_dispatch import CONTENT


def _index_sql(db, name: str) -> str:
    if db.backend == "sqlite":
        return db._scalar("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", [name])
    return db._scalar("SELECT indexdef FROM pg_indexes WHERE indexname = ?", [name])


def test_the_due_index_holds_pending_rows_and_the_subscriber_index_no_state(db):
    if db.backend == "sqlite":
        assert _index_sql(db, "deliveries_due") == (
            "CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at) "
            "WHERE state = 'pending'"
        )
        assert _index_sql(db, "deliveries_subscriber") == (
            "CREATE INDEX deliveries_subscriber ON deliveries (subscriber_id)"
        )
    else:
        assert _index_sql(db, "deliveries_due") == (
            "CREATE INDEX deliveries_due ON public.deliveries USING btree (state, next_attempt_at) "
            "WHERE (state = 'pending'::text)"
        )
        assert _index_sql(db, "deliveries_subscriber") == (
            "CREATE INDEX deliveries_subscriber ON public.deliveries USING btree (subscriber_id)"
        )


def test_the_oldest_due_delivery_is_read_from_the_pending_index(db, clock):
    """metrics.oldest_due_delivery_at and alerts.oldest_due_at: the oldest due row among
    pending ones only, found through deliveries_due (SQLite's plan names it)."""
    now = clock()
    nid = db.create_notification("incident", CONTENT, now, now + timedelta(hours=24), audience={})
    for i in range(3):
        add_subscriber(db, f"r{i}@example.com", now=now - timedelta(minutes=i))
    db.fan_out(nid, now)
    ids = [r["id"] for r in db._query("SELECT id FROM deliveries ORDER BY id")]
    db._execute(
        "UPDATE deliveries SET next_attempt_at = ? WHERE id = ?", [now - timedelta(hours=1), ids[0]]
    )
    db._execute(
        "UPDATE deliveries SET state = 'sent', next_attempt_at = ? WHERE id = ?",
        [now - timedelta(hours=2), ids[1]],
    )
    db._execute(
        "UPDATE deliveries SET next_attempt_at = ? WHERE id = ?", [now + timedelta(hours=1), ids[2]]
    )
    assert db.oldest_due_delivery_at(now) == now - timedelta(hours=1)
    assert db.oldest_due_at(now) == now - timedelta(hours=1)
    if db.backend == "sqlite":
        for analyzed in (False, True):
            if analyzed:
                db._execute("ANALYZE")
            plan = [
                r["detail"]
                for r in db._query(
                    "EXPLAIN QUERY PLAN SELECT MIN(next_attempt_at) FROM deliveries "
                    "WHERE state = 'pending' AND next_attempt_at <= ?",
                    [now],
                )
            ]
            assert plan == [
                "SEARCH deliveries USING COVERING INDEX deliveries_due "
                "(state=? AND next_attempt_at<?)"
            ], (analyzed, plan)


def test_a_subscribers_deliveries_are_found_by_subscriber_without_statistics(db):
    """Suppression and unsubscribe read one subscriber's pending rows: through
    deliveries_subscriber, never by walking every pending row of a fan-out (SQLite's plan
    without ANALYZE statistics, as production databases have)."""
    if db.backend != "sqlite":
        return  # PostgreSQL's planner has autovacuum's statistics
    plan = [
        r["detail"]
        for r in db._query(
            "EXPLAIN QUERY PLAN SELECT id FROM deliveries WHERE subscriber_id = ? "
            "AND state = 'pending' AND channel = 'email'",
            [1],
        )
    ]
    assert plan == ["SEARCH deliveries USING INDEX deliveries_subscriber (subscriber_id=?)"]
