"""Statement-level figures behind issue 14's fifth pass, in one command (BENCHMARKS.md, Fan-out).

    .venv/bin/python bench/statements.py            # about 30 s

1. The GIL convoy: a 1000-row SQLite fetchall alone, and beside two threads that want the
   GIL (a Python busy loop; json.dumps of a request-sized body), against the same rows read
   as one packed JSON row (SQLiteStore._raw_query_long).
2. Rowid lookups (DispatchQueries._by_id): at 100,000 deliveries with 8,000 'sending' (eight
   requests in flight), the still-sending check of 1000 ids and the "sent" UPDATE of 500,
   as the planner picks without NOT INDEXED and as they run now.
3. The deliveries gauge (MetricQueries.deliveries_by_state_kind) at 300,000 deliveries, a
   third of them sent: joining before counting against counting per notification first.

Wall time (perf_counter) per call, medians; real SQLite files in a temp directory, seeded by
bench/fanout.py's `seed`. A machine under load moves the figures; compare within a run.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import fanout  # noqa: E402

from notifier.settings import load_settings  # noqa: E402
from notifier.store import open_store  # noqa: E402


def median_ms(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def convoy() -> None:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT, c INTEGER)")
    conn.executemany(
        "INSERT INTO t (a, b, c) VALUES (?, ?, ?)",
        [(f"user{i}@example.com", "Europe/Berlin", i) for i in range(1000)],
    )
    body = {"personalizations": [{"to": [{"email": f"u{i}@x.com"}]} for i in range(1000)]}
    plain = lambda: conn.execute("SELECT * FROM t").fetchall()  # noqa: E731
    packed = lambda: json.loads(  # noqa: E731
        conn.execute("SELECT json_group_array(json_array(id, a, b, c)) FROM t").fetchone()[0]
    )

    def busy_loop(stop):
        while not stop.is_set():
            for _ in range(1000):
                pass

    def busy_json(stop):
        while not stop.is_set():
            json.dumps(body)

    print("1. 1000 rows, ms per read: fetchall / one packed JSON row")
    loads = (("alone", None), ("2 busy loops", busy_loop), ("2 json.dumps", busy_json))
    for label, target in loads:
        stop = threading.Event()
        count = 2 if target else 0
        threads = [threading.Thread(target=target, args=(stop,)) for _ in range(count)]
        for thread in threads:
            thread.start()
        try:
            print(f"   {label:14s} {median_ms(plain, 15):8.2f} / {median_ms(packed, 15):6.2f}")
        finally:
            stop.set()
            for thread in threads:
                thread.join()


def by_id(tmp: Path) -> None:
    url = f"sqlite:///{tmp / 'byid.db'}"
    fanout.seed(url, 100_000)
    store = open_store(load_settings({"DATABASE_URL": url}))
    now = datetime.now(UTC)
    lease = now + timedelta(minutes=5)
    with store.write(exclusive=False):
        store._claim("w1", now, lease, now, 8000)  # eight requests in flight
    still = (
        "SELECT d.id, d.subscriber_id, s.link_nonce FROM deliveries d {hint} LEFT JOIN "
        "subscribers s ON s.id = d.subscriber_id WHERE d.id IN ({marks}) AND "
        "d.state = 'sending' AND d.lease_owner = ?"
    )
    sent = (
        "UPDATE deliveries {hint} SET state = 'sent', sent_at = ?, message_id = ?, attempts = "
        "attempts + 1, lease_owner = NULL, lease_expires_at = NULL, updated_at = ? WHERE id IN "
        "({marks}) AND lease_owner = ? AND state IN ('sending', 'cancelled')"
    )
    results: dict[str, list[float]] = {}
    for _ in range(10):
        with store.write(exclusive=False):
            ids = [r["id"] for r in store._claim("w1", now, lease, now, 1000)]
        marks = ",".join("?" * len(ids))
        for hint in ("", "NOT INDEXED"):
            sql = still.format(hint=hint, marks=marks)
            cols = ("id", "subscriber_id", "link_nonce")
            call = partial(store._query_long, sql, [*ids, "w1"], cols)
            results.setdefault(f"still-sending, 1000 ids {hint or 'as planned'}", []).append(
                median_ms(call, 1)
            )
        for hint, half in (("", ids[:500]), ("NOT INDEXED", ids[500:])):
            sql = sent.format(hint=hint, marks=",".join("?" * len(half)))
            call = partial(store._execute, sql, [now, "m", now, *half, "w1"])
            results.setdefault(f"'sent' UPDATE, 500 ids {hint or 'as planned'}", []).append(
                median_ms(call, 1)
            )
    store.close()
    print("2. 100,000 deliveries, 8,000 in flight, ms per statement (median of 10)")
    for label, values in results.items():
        print(f"   {label:40s} {statistics.median(values):6.2f}")


def gauge(tmp: Path) -> None:
    url = f"sqlite:///{tmp / 'gauge.db'}"
    fanout.seed(url, 300_000)
    store = open_store(load_settings({"DATABASE_URL": url}))
    store._execute("UPDATE deliveries SET state = 'sent' WHERE id % 3 = 0")
    joined = (
        "SELECT d.state, n.kind, COUNT(*) AS count FROM deliveries d JOIN notifications n "
        "ON n.id = d.notification_id GROUP BY d.state, n.kind ORDER BY d.state, n.kind"
    )
    before = median_ms(lambda: store._query(joined), 5)
    now = median_ms(store.deliveries_by_state_kind, 5)
    assert store._query(joined) == store.deliveries_by_state_kind()
    store.close()
    print("3. deliveries gauge, 300,000 deliveries, ms per call (median of 5)")
    print(f"   join, then count {before:8.1f}\n   count, then join {now:8.1f}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        convoy()
        by_id(Path(tmp))
        gauge(Path(tmp))


if __name__ == "__main__":
    main()
