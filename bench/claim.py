"""Claim benchmark: what one claim of 1000 rows costs with 1,000 and 100,000 pending rows.

    .venv/bin/python bench/claim.py                 # SQLite
    TEST_DATABASE_URL=postgresql://… .venv/bin/python bench/claim.py   # + PostgreSQL

The queue holds that many pending confirmations (priority 1, one shared notification, two
languages) and a newer incident for 400 readers (priority 0). Each claim must return the
incident's 400 rows first; the rows are handed back after each claim so every claim sees the
same queue. Prints the median of 7 claims per size and the ratio 100,000 / 1,000 from the
same run: about 1 when the claim walks the partial index deliveries_pending and updates by
primary key, instead of growing with the queue (store.DispatchQueries._claim: SQLite's
pick_statement then CLAIM_BY_IDS, PostgreSQL's claim_statement).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.web import machine  # noqa: E402
from notifier.store.postgres import PostgresStore  # noqa: E402
from notifier.store.sqlite import SQLiteStore  # noqa: E402

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
ROWS = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
    "INSERT INTO deliveries (notification_id, subscriber_id, email, language, timezone, state, "
    "next_attempt_at, created_at, updated_at, priority) SELECT ?, NULL, ? || i || '@example.com', "
    "CASE WHEN i % 2 = 0 THEN 'de' ELSE 'en' END, 'UTC', 'pending', ?, ?, ?, ? FROM n"
)


def fill(store, pending: int) -> int:
    personal = store.create_notification(
        "confirmation", {"kind": "confirmation"}, NOW, NOW + timedelta(hours=72)
    )
    store._execute(ROWS, [pending, personal, "p", NOW, NOW, NOW, 1])
    incident = store.create_notification("incident", {}, NOW, NOW + timedelta(hours=24))
    store._execute(ROWS, [400, incident, "r", NOW, NOW, NOW, 0])
    store._execute("ANALYZE")
    return incident


def measure(store, incident: int) -> list[float]:
    times = []
    for k in range(7):
        now = NOW + timedelta(minutes=1 + k)
        started = time.perf_counter()
        rows = store.claim_due(f"w{k}", now, now + timedelta(minutes=5), 1000)
        times.append(time.perf_counter() - started)
        assert len(rows) == 1000 and rows[0]["notification_id"] == incident
        store._execute(
            "UPDATE deliveries SET state = 'pending', lease_owner = NULL, "
            "lease_expires_at = NULL WHERE state = 'sending'"
        )
    return times


def open_store(backend: str, tmp: Path):
    if backend == "sqlite":
        return SQLiteStore(tmp / f"{uuid.uuid4().hex}.db"), None
    import psycopg

    admin = os.environ["TEST_DATABASE_URL"]
    name = f"bench_claim_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return PostgresStore(admin.rsplit("/", 1)[0] + f"/{name}"), name


def drop(name: str | None) -> None:
    if name:
        import psycopg

        with psycopg.connect(os.environ["TEST_DATABASE_URL"], autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def main() -> None:
    backends = ["sqlite"] + (["postgres"] if os.environ.get("TEST_DATABASE_URL") else [])
    print(f"# python bench/claim.py  ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
    print(f"# machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            medians = {}
            for pending in (1_000, 100_000):
                store, name = open_store(backend, Path(tmp))
                try:
                    store.upgrade()
                    times = measure(store, fill(store, pending))
                finally:
                    store.close()
                    drop(name)
                medians[pending] = statistics.median(times) * 1000
                print(
                    f"{backend:8} {pending:>7,} pending: claims of 1000 (incident's 400 first) "
                    f"{[round(t * 1000) for t in times]} ms, median {medians[pending]:.0f} ms"
                )
            ratio = medians[100_000] / medians[1_000]
            print(f"{backend:8} ratio 100,000 / 1,000 pending: {ratio:.2f}")


if __name__ == "__main__":
    main()
