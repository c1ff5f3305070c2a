"""SQLite's write-ahead log: checkpoints stay out of most COMMITs (issue 14).

By default the COMMIT that takes the log past 1000 pages copies it back and fsyncs, and a
fan-out passed that every second or third request. Every connection the store opens sets a
larger threshold and a size limit for the log file left after a checkpoint.
"""

from __future__ import annotations

import os
import threading

import pytest

from notifier.store.sqlite import WAL_AUTOCHECKPOINT_PAGES, WAL_SIZE_LIMIT_BYTES, SQLiteStore


def test_every_connection_checkpoints_at_ten_thousand_pages_and_limits_the_log(tmp_path):
    store = SQLiteStore(tmp_path / "wal.db")
    store.upgrade()
    seen = []

    def settings():
        conn = store.conn
        seen.append(
            (
                conn.execute("PRAGMA journal_mode").fetchone()["journal_mode"],
                conn.execute("PRAGMA wal_autocheckpoint").fetchone()["wal_autocheckpoint"],
                conn.execute("PRAGMA journal_size_limit").fetchone()["journal_size_limit"],
            )
        )

    settings()
    thread = threading.Thread(target=settings)  # a connection of another thread
    thread.start()
    thread.join()
    assert seen == [("wal", WAL_AUTOCHECKPOINT_PAGES, WAL_SIZE_LIMIT_BYTES)] * 2
    assert seen[0][1:] == (10_000, 64 * 1024 * 1024)
    store.close()


def test_commits_past_a_thousand_pages_do_not_checkpoint(tmp_path):
    """Twelve commits of ~200 pages each: with SQLite's default the log would have been
    checkpointed and rewound near 1000 pages; now it holds all of them."""
    store = SQLiteStore(tmp_path / "wal.db")
    store.upgrade()
    conn = store.conn
    page = conn.execute("PRAGMA page_size").fetchone()["page_size"]
    conn.execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, blob BLOB)")
    for _ in range(12):
        with store.write():
            conn.executemany(
                "INSERT INTO filler (blob) VALUES (?)", [(os.urandom(page - 100),)] * 200
            )
    wal = tmp_path / "wal.db-wal"
    assert wal.stat().st_size > 2000 * page
    store.close()


def test_the_workers_checkpoint_job_copies_the_whole_log(app, db, settings):
    """jobs.checkpoint (every CHECKPOINT_SECONDS in the worker): after it, every frame of the
    log is in the database file, which is what makes a synchronous=NORMAL commit durable."""
    from notifier import jobs

    if not settings.database_is_sqlite:
        pytest.skip("PostgreSQL: no write-ahead log checkpoint job (tests/test_scheduler.py)")
    with db.write():
        db._execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, blob BLOB)")
        db._executemany("INSERT INTO filler (blob) VALUES (?)", [(os.urandom(3000),)] * 300)
    busy, log, done = jobs.checkpoint(app)
    assert (busy, done) == (0, log) and log > 300
    # Nothing left to copy: a second checkpoint finds the log already in the database.
    assert db.checkpoint()[1] == db.checkpoint()[2]
