"""Migration 0019 (issue 12) on a database with data, on both backends.

On SQLite the subscribers table is rebuilt (the inline UNIQUE on email cannot be dropped in
place); every child row (components, consents, confirmation sends, deliveries and their
attempts) must survive with its reference, and the new uniqueness rules must hold: an email
address once among email subscriptions, a target once among channel ones, and an owner may
have both.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import psycopg
import pytest

from notifier.store.migrations import SCHEMA

TS = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CHILD_TABLES = (
    "subscriber_components",
    "consents",
    "confirmation_sends",
    "deliveries",
    "delivery_attempts",
)


def _data_at_0018(execute) -> None:
    for sid, email in ((1, "ana@example.com"), (2, "ben@example.de")):
        execute(
            "INSERT INTO subscribers (id, email, language, timezone, all_components, state, "
            "link_nonce, created_at, updated_at, confirmed_at) "
            "VALUES (?, ?, 'de', 'Europe/Berlin', 0, 'confirmed', 'n', ?, ?, ?)",
            [sid, email, TS, TS, TS],
        )
        execute(
            "INSERT INTO subscriber_components (subscriber_id, component_id) VALUES (?, 'c1')",
            [sid],
        )
        execute(
            "INSERT INTO consents (subscriber_id, consent_version, language, signup_at) "
            "VALUES (?, '2026-11', 'de', ?)",
            [sid, TS],
        )
        execute("INSERT INTO confirmation_sends (subscriber_id, sent_at) VALUES (?, ?)", [sid, TS])
    execute(
        "INSERT INTO notifications (id, kind, content, created_at, expires_at) "
        "VALUES (1, 'announcement', '{}', ?, ?)",
        [TS, TS],
    )
    for did, sid in ((1, 1), (2, 2)):
        execute(
            "INSERT INTO deliveries (id, notification_id, subscriber_id, email, language, "
            "timezone, state, next_attempt_at, created_at, updated_at) "
            "VALUES (?, 1, ?, 'x@example.com', 'de', 'UTC', 'pending', ?, ?, ?)",
            [did, sid, TS, TS, TS],
        )
        execute(
            "INSERT INTO delivery_attempts (delivery_id, attempted_at, outcome) "
            "VALUES (?, ?, 'transient')",
            [did, TS],
        )


def _snapshot(store) -> dict:
    return {t: store._query(f"SELECT * FROM {t} ORDER BY 1, 2") for t in CHILD_TABLES}


def _check_upgraded(store, before: dict, refused: tuple) -> None:
    after = _snapshot(store)
    for table in CHILD_TABLES:
        old_rows = before[table]
        new_rows = [
            {k: v for k, v in row.items() if k != "channel"} for row in after[table]
        ]  # deliveries gain a channel column
        assert new_rows == old_rows, table
    assert [r["channel"] for r in after["deliveries"]] == ["email", "email"]
    subscribers = store._query(
        "SELECT id, email, channel, target_url, webhook_secret, verified_at, paused_at, "
        "paused_reason, failure_count, failing_since, maintenance_reminders, state "
        "FROM subscribers ORDER BY id"
    )
    assert subscribers == [
        {
            "id": sid,
            "email": email,
            "channel": "email",
            "target_url": None,
            "webhook_secret": None,
            "verified_at": None,
            "paused_at": None,
            "paused_reason": None,
            "failure_count": 0,
            "failing_since": None,
            "maintenance_reminders": 1,
            "state": "confirmed",
        }
        for sid, email in ((1, "ana@example.com"), (2, "ben@example.de"))
    ]
    insert = (
        "INSERT INTO subscribers (email, language, timezone, state, link_nonce, created_at, "
        "updated_at, channel, target_url) VALUES (?, 'en', 'UTC', 'pending', 'n', ?, ?, ?, ?)"
    )
    with store.write():  # the owner of an email subscription adds a Slack channel and a webhook
        store._execute(insert, ["ana@example.com", TS, TS, "slack", "https://hooks.slack.com/a"])
        store._execute(insert, ["ana@example.com", TS, TS, "webhook", "https://h.example/w"])
    for params in (
        ["ana@example.com", TS, TS, "email", None],  # a second email subscription
        ["eve@example.com", TS, TS, "slack", "https://hooks.slack.com/a"],  # same target
        ["eve@example.com", TS, TS, "slack", None],  # a channel without a target
        ["eve@example.com", TS, TS, "email", "https://h.example/x"],  # email with a target
        ["eve@example.com", TS, TS, "pigeon", "https://h.example/y"],  # no such channel
    ):
        with pytest.raises(refused), store.write():
            store._execute(insert, params)
    with pytest.raises(refused), store.write():
        store._execute(
            "INSERT INTO notifications (kind, content, created_at, expires_at) "
            "VALUES ('nonsense', '{}', ?, ?)",
            [TS, TS],
        )
    with store.write():
        for kind in ("channel_verification", "channel_notice"):
            store._execute(
                "INSERT INTO notifications (kind, content, created_at, expires_at) "
                "VALUES (?, '{}', ?, ?)",
                [kind, TS, TS],
            )
        store._execute("DELETE FROM subscribers WHERE id = 1")  # still cascades to children
    assert [r["subscriber_id"] for r in store._query("SELECT subscriber_id FROM deliveries")] == [2]
    assert store._scalar("SELECT COUNT(*) AS n FROM consents") == 1
    assert store._scalar("SELECT COUNT(*) AS n FROM delivery_attempts") == 1


def test_migration_0019_keeps_every_subscriber_and_child_row_on_sqlite(tmp_path, monkeypatch):
    from notifier.store import sqlite as sqlite_store
    from notifier.store.migrations import Migrations, _applier, statements

    names = [name for name, _ in SCHEMA]
    old = Migrations("notifier")
    for name, migration in SCHEMA[: names.index("0019_channels")]:
        old(name=name)(_applier(statements(migration, "sqlite")))
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", old)
    store = sqlite_store.SQLiteStore(tmp_path / "old.db")
    store.upgrade()
    with store.write():
        _data_at_0018(store._execute)
    before = _snapshot(store)
    monkeypatch.undo()

    assert store.upgrade() == ["0019_channels"]
    assert store._query("PRAGMA foreign_key_check") == []
    assert store._query("PRAGMA integrity_check") == [{"integrity_check": "ok"}]
    _check_upgraded(store, before, (sqlite3.IntegrityError,))
    store.close()


def test_migration_0019_refuses_to_run_with_foreign_keys_on(tmp_path):
    """Run by hand with foreign keys on, the rebuild would cascade-delete every child row: it
    stops instead, and the transaction leaves the data as it was."""
    import sqlite_utils

    from notifier.store import migrations
    from notifier.store.sqlite import connect

    conn = connect(tmp_path / "x.db", dict_rows=False)  # foreign keys on
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(RuntimeError, match="foreign keys off"):
        migrations.MIGRATIONS.apply(sqlite_utils.Database(conn))
    conn.execute("ROLLBACK")
    conn.close()


def test_migration_0019_keeps_every_subscriber_and_child_row_on_postgres(monkeypatch):
    from . import conftest

    if not conftest.PG_ADMIN_URL:
        pytest.skip("PostgreSQL half skipped: TEST_DATABASE_URL is not set (see README, Tests)")
    from notifier.store import postgres as pg_store

    name = f"t_m0019_{datetime.now(UTC):%H%M%S%f}"
    with conftest._pg_admin() as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        names = [n for n, _ in SCHEMA]
        monkeypatch.setattr(pg_store, "SCHEMA", SCHEMA[: names.index("0019_channels")])
        store = pg_store.PostgresStore(conftest._pg_url(name))
        store.upgrade()
        with store.write():
            _data_at_0018(store._execute)
            for table in ("subscribers", "notifications", "deliveries"):
                store._execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 10)")
        before = _snapshot(store)
        monkeypatch.undo()
        assert store.upgrade() == ["0019_channels"]
        _check_upgraded(store, before, (psycopg.errors.IntegrityError,))
        store.close()
    finally:
        with conftest._pg_admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
