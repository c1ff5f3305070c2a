"""PostgreSQL through a real PgBouncer in transaction pool mode with its default settings
(script/pgbouncer; Heroku's connection pooling runs it so). Issue 16, item 1: before, every
process was refused ("unsupported startup parameter: options") and, with `options` ignored,
psycopg's prepared statements collided across pooled server connections ("prepared statement
"_pg3_0" already exists") and /healthz answered 500 and 503 under normal traffic.

The store suite itself runs through PgBouncer too (the "pgbouncer" backend in conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from notifier.settings import Settings, SettingsError, load_settings
from notifier.store import open_store
from notifier.store.postgres import PostgresStore

from .conftest import PG_TEMPLATE, _pg_admin, _pg_url
from .test_processes import FEED, Output, free_port, stop

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def databases(pg_pooler):
    """make(template=True): a new database; its (pooled URL, direct URL). All dropped after."""
    names = []

    def make(template: bool = True) -> tuple[str, str]:
        name = f"t_{uuid.uuid4().hex[:16]}"
        with _pg_admin() as conn:
            clone = f" TEMPLATE {PG_TEMPLATE}" if template else ""
            conn.execute(f"CREATE DATABASE {name}{clone}")
        names.append(name)
        return _pg_url(name, pg_pooler), _pg_url(name)

    yield make
    with _pg_admin() as conn:
        for name in names:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _stores(url: str, count: int) -> list[PostgresStore]:
    return [PostgresStore(url) for _ in range(count)]


def test_two_processes_worth_of_connections_share_pooled_server_connections_cleanly(databases):
    # Two clients taking turns get the same server connection from PgBouncer (LIFO); each
    # query runs well past psycopg's default prepare threshold (5 executions).
    pooled, _ = databases()
    a, b = _stores(pooled, 2)
    try:
        for round_ in range(12):
            for name, store in (("a", a), ("b", b)):
                store.ensure_feed(f"https://{name}.example/history.atom", NOW)
                store.set_meta(f"round-{name}", str(round_), NOW)
                assert store.get_meta(f"round-{name}") == str(round_)
                assert store.ping() is True
        assert [f["url"] for f in a.list_feeds()] == [
            "https://a.example/history.atom",
            "https://b.example/history.atom",
        ]
        assert [b.get_meta("round-a"), b.get_meta("round-b")] == ["11", "11"]
    finally:
        a.close()
        b.close()


def test_time_zone_and_timeouts_hold_in_every_transaction_and_leak_into_no_other_session(
    databases, pg_pooler
):
    pooled, direct = databases()
    name = psycopg.conninfo.conninfo_to_dict(direct)["dbname"]
    with _pg_admin() as conn:  # a server whose sessions default to another zone
        conn.execute(f"ALTER DATABASE {name} SET timezone = 'America/New_York'")
    store = PostgresStore(pooled)
    try:
        settings_sql = "SELECT current_setting('TimeZone') AS tz, "
        settings_sql += "current_setting('lock_timeout') AS lock, "
        settings_sql += "current_setting('statement_timeout') AS statement"
        expected = {"tz": "UTC", "lock": "10s", "statement": "1min"}
        assert store._query_one(settings_sql) == expected
        with store.write():
            assert store._query_one(settings_sql) == expected
        feed = store.ensure_feed("https://status.example/history.atom", NOW)
        store.record_poll_success(feed["id"], NOW + timedelta(seconds=1))
        stored = store.feed_by_id(feed["id"])
        assert stored["last_success_at"] == NOW + timedelta(seconds=1)
        assert stored["last_success_at"].utcoffset() == timedelta(0)
        assert stored["last_poll_at"].tzinfo is UTC
    finally:
        store.close()
    # Another client on the same pooled server connections sees the database's own defaults.
    with psycopg.connect(pooled, autocommit=True, prepare_threshold=None) as other:
        row = other.execute(
            "SELECT current_setting('TimeZone'), current_setting('lock_timeout'), "
            "current_setting('statement_timeout')"
        ).fetchone()
    assert row == ("America/New_York", "0", "0")


def test_the_write_lock_is_held_across_pooled_connections(databases):
    pooled, _ = databases()
    first, second = _stores(pooled, 2)
    events: list[str] = []
    inside = threading.Event()

    def hold():
        with first.write():
            events.append("first in")
            inside.set()
            time.sleep(0.5)
            events.append("first out")

    def wait():
        inside.wait(10)
        with second.write():
            events.append("second in")

    threads = [threading.Thread(target=hold), threading.Thread(target=wait)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert events == ["first in", "first out", "second in"]
    finally:
        first.close()
        second.close()


def test_concurrent_upgrades_through_the_pooler_apply_each_migration_once(databases):
    pooled, direct = databases(template=False)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def upgrade():
        store = PostgresStore(pooled)
        try:
            results.append(store.upgrade())
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=upgrade) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    applied = sorted(results, key=len)
    assert applied[:2] == [[], []] and len(applied[2]) > 0
    with psycopg.connect(direct) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
    assert sorted(applied[2]) == names


def test_migrations_run_on_the_direct_url_when_one_is_set(databases, tmp_path):
    pooled, _ = databases(template=False)
    _, direct = databases(template=False)
    settings = load_settings(
        {"DATABASE_URL": pooled, "DATABASE_DIRECT_URL": direct.replace("postgresql", "postgres", 1)}
    )
    assert settings.database_direct_url == direct
    store = open_store(settings)
    try:
        applied = store.upgrade()
    finally:
        store.close()
    tables = "SELECT count(*) FROM pg_tables WHERE tablename = 'schema_migrations'"
    with psycopg.connect(direct) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(applied)
    with psycopg.connect(pooled, prepare_threshold=None) as conn:
        assert conn.execute(tables).fetchone()[0] == 0


@pytest.mark.parametrize(
    ("env", "error"),
    [
        (
            {"DATABASE_URL": "sqlite:///x.db", "DATABASE_DIRECT_URL": "postgresql://h/db"},
            "DATABASE_DIRECT_URL must be a postgres(ql):// URL, next to a PostgreSQL DATABASE_URL",
        ),
        (
            {"DATABASE_URL": "postgresql://h/db", "DATABASE_DIRECT_URL": "mysql://h/db"},
            "DATABASE_DIRECT_URL must be a postgres(ql):// URL, next to a PostgreSQL DATABASE_URL",
        ),
    ],
)
def test_a_direct_url_must_be_postgresql(env, error):
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert str(caught.value) == error


def test_without_a_direct_url_everything_uses_database_url():
    settings = load_settings({"DATABASE_URL": "postgres://u:p@pooler:6432/db"})
    assert (settings.database_url, settings.database_direct_url) == (
        "postgresql://u:p@pooler:6432/db",
        None,
    )
    store = open_store(settings)
    assert (store.url, store.direct_url) == ("postgresql://u:p@pooler:6432/db",) * 2
    assert Settings().database_direct_url is None


@pytest.mark.slow
def test_healthz_and_pages_answer_under_load_through_pgbouncer_while_a_worker_polls(
    databases, feed_server, tmp_path
):
    pooled, _ = databases()
    feed_url = feed_server.set("/history.atom", FEED)
    port = free_port()
    env = {
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": pooled,
        "FEED_URLS": feed_url,
        "POLL_INTERVAL_SECONDS": "1",
        "DISPATCH_INTERVAL_SECONDS": "1",
        "RATE_LIMIT_LINKS": "100000 per minute",
        "PYTHONUNBUFFERED": "1",
    }
    web_cmd = [str(BIN / "gunicorn"), "app:create_app()", "--bind", f"127.0.0.1:{port}"]
    web_cmd += ["--workers", "2", "--threads", "4", "--graceful-timeout", "5"]
    procs = {}
    for name, cmd in (("web", web_cmd), ("worker", [str(BIN / "flask"), "--app", "app", "worker"])):
        procs[name] = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    outputs = {name: Output(proc) for name, proc in procs.items()}
    base = f"http://127.0.0.1:{port}"
    paths = ["/healthz", "/subscribe", "/preferences/not-a-token"]
    statuses: dict[str, list[int]] = {path: [] for path in paths}
    try:
        outputs["worker"].wait_for("worker: started", timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # gunicorn is up when it answers
            try:
                httpx.get(base + "/healthz", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)

        def hammer(offset: int):
            with httpx.Client(base_url=base, timeout=20) as http:
                end = time.monotonic() + 8
                count = offset
                while time.monotonic() < end:
                    path = paths[count % len(paths)]
                    statuses[path].append(http.get(path).status_code)
                    count += 1

        threads = [threading.Thread(target=hammer, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        polls = len(feed_server.requests)
    finally:
        codes = {name: stop(proc) for name, proc in procs.items()}
    log = "\n".join(outputs["web"].lines + outputs["worker"].lines)
    assert codes == {"web": 0, "worker": 0}, log
    assert {path: sorted(set(codes)) for path, codes in statuses.items()} == {
        "/healthz": [200],
        "/subscribe": [200],
        "/preferences/not-a-token": [404],
    }, log
    assert min(len(codes) for codes in statuses.values()) >= 20, statuses
    assert polls >= 3, log
    for needle in ("prepared statement", "Traceback", "ERROR", "unsupported startup parameter"):
        assert needle not in log
