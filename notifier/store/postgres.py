"""PostgreSQL backend (psycopg 3): the same query mixins over a different connection layer.

Heroku dynos have separate, ephemeral disks, so web and worker dynos cannot share a SQLite file;
on Heroku the store is Heroku Postgres. Where SQLite serializes every writer with BEGIN
IMMEDIATE, PostgreSQL uses row locks: the feed row (`FOR UPDATE`) for detection and
`FOR UPDATE SKIP LOCKED` for claiming deliveries, so several workers dispatch in parallel.

Pooler-safe (README, "Behind a connection pooler"): DATABASE_URL may point at PgBouncer in
transaction pool mode with its default settings (Heroku's connection pooling), where each
transaction may run on a different server connection and nothing of a session survives it:
- no `options` startup parameter (PgBouncer refuses it: "unsupported startup parameter");
- no server-side prepared statements (`prepare_threshold=None`): a statement psycopg prepared
  as "_pg3_0" on one server connection collides with another client's "_pg3_0" there;
- every statement runs inside a transaction that first sets the time zone and the timeouts
  with `set_config(..., is_local => true)` (SET LOCAL), so they hold whichever server
  connection the transaction lands on and leak into no other client's;
- timestamps come back as UTC datetimes whatever the server's time zone (`_UTCLoader`);
- locks are transaction-scoped: `pg_advisory_xact_lock`, row locks; never session locks.
Migrations need nothing more than one transaction either; when DATABASE_DIRECT_URL is set
they still run on it, so a long migration never holds a pooled server connection. Anything
that needs a session must use `direct_url` and fall back to polling when it cannot: the
worker's LISTEN for queued work (notifier.delivery.wake) does; NOTIFY itself is transactional and
works through the pooler.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg.types.datetime import TimestamptzLoader

from .base import WORK_CHANNEL, StoreError, work_origin
from .migrations import SCHEMA, statements
from .queries import Queries

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every process of this app.
MIGRATION_LOCK_ID = 0x5715_0001
WRITE_LOCK_ID = 0x5715_0002
_SQL_CACHE: dict[str, str] = {}
# Sent as one simple-protocol query (no parameters) at the start of every transaction: the
# settings the `options` startup parameter used to carry, scoped to this transaction only.
# lock_timeout 10 s, statement_timeout 60 s (milliseconds), as before the pooler work.
BEGIN_TRANSACTION = (
    "BEGIN; SELECT set_config('TimeZone', 'UTC', true), "
    "set_config('lock_timeout', '10000', true), "
    "set_config('statement_timeout', '60000', true)"
)


class _UTCLoader(TimestamptzLoader):
    """timestamptz -> aware datetime in UTC, whatever TimeZone the server connection reports
    (through a pooler that is whichever session the last transaction left behind)."""

    def __init__(self, oid: int, context: Any = None):
        super().__init__(oid, context)
        self._timezone = UTC

    def load(self, data: Any) -> datetime:
        return super().load(data).astimezone(UTC)


def to_pyformat(sql: str) -> str:
    """Portable `?` placeholders -> psycopg's `%s` (literal % doubled first)."""
    converted = _SQL_CACHE.get(sql)
    if converted is None:
        converted = _SQL_CACHE[sql] = sql.replace("%", "%%").replace("?", "%s")
    return converted


class PostgresStore(Queries):
    backend = "postgres"
    _claim_lock = "FOR UPDATE SKIP LOCKED"
    _claim_index = ""  # PostgreSQL's planner keeps statistics itself (autovacuum's ANALYZE)
    _by_id = ""  # likewise (DispatchQueries._by_id)
    _outcome_index = ""  # likewise (ChartQueries._outcome_index)

    def __init__(self, url: str, direct_url: str | None = None):
        """`url`: the database or a transaction-mode pooler in front of it; `direct_url`: the
        database itself (DATABASE_DIRECT_URL) for migrations, else `url`."""
        self.url = url
        self.direct_url = direct_url or url
        self._local = threading.local()
        self._all: list[psycopg.Connection] = []
        self._lock = threading.Lock()

    # --- connections -----------------------------------------------------------------
    def _connect(self, url: str | None = None) -> psycopg.Connection:
        try:
            conn = psycopg.connect(
                url or self.url,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=10,
                prepare_threshold=None,
                application_name="status-notifier",
            )
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {_first_line(exc)}") from exc
        conn.adapters.register_loader("timestamptz", _UTCLoader)
        return conn

    @property
    def conn(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or getattr(self._local, "pid", None) != os.getpid():
            conn = self._connect()
            self._local.conn, self._local.pid = conn, os.getpid()
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    # --- raw execution ---------------------------------------------------------------
    def _param(self, value: Any) -> Any:
        if isinstance(value, bool):
            return int(value)
        return value  # psycopg adapts aware datetimes to timestamptz itself

    def _run(self, sql: str, params: Sequence[Any]) -> psycopg.Cursor:
        conn = self.conn
        try:
            with _transaction(conn):
                return conn.execute(to_pyformat(sql), params)
        except psycopg.OperationalError as exc:
            if conn.closed or conn.broken:  # server restart, idle timeout: next call reconnects
                self._local.conn = None
            raise StoreError(_first_line(exc)) from exc

    def _raw_query(self, sql: str, params: Sequence[Any]) -> list[dict]:
        cur = self._run(sql, params)
        return cur.fetchall() if cur.description else []

    def _raw_execute(self, sql: str, params: Sequence[Any]) -> int:
        return self._run(sql, params).rowcount

    def _raw_executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        conn = self.conn
        try:
            with _transaction(conn), conn.cursor() as cur:
                cur.executemany(to_pyformat(sql), rows)
        except psycopg.OperationalError as exc:
            if conn.closed or conn.broken:
                self._local.conn = None
            raise StoreError(_first_line(exc)) from exc

    # --- transactions ----------------------------------------------------------------
    @contextmanager
    def write(self, exclusive: bool = True) -> Iterator[None]:
        """A transaction; `exclusive` makes it what BEGIN IMMEDIATE is on SQLite.

        The query mixins' read-then-write sequences (sign-up, unsubscribe, resend, webhook
        batches, fan-out) were written for one writer at a time. Under READ COMMITTED two such
        transactions would interleave (a double-clicked resend mailing everyone twice), so an
        exclusive write first takes one transaction-scoped advisory lock. The hot paths that are
        safe without it - claiming deliveries (SKIP LOCKED) and feed detection (a row lock per
        feed) - pass exclusive=False and keep several dynos working in parallel.
        """
        with _transaction(self.conn):
            if exclusive:
                self._execute("SELECT pg_advisory_xact_lock(?)", [WRITE_LOCK_ID])
            yield

    @contextmanager
    def feed_lock(self, feed_id: int) -> Iterator[None]:
        with self.write(exclusive=False):
            # Pollers on other dynos wait here for this feed; the second one then sees
            # everything the first stored and records nothing twice.
            self._execute("SELECT id FROM feeds WHERE id = ? FOR UPDATE", [feed_id])
            yield

    # --- wake on work ------------------------------------------------------------------
    def notify_work(self, now) -> None:
        """NOTIFY WORK_CHANNEL with this process's name ("host:pid") as the payload; inside a
        transaction PostgreSQL delivers it at commit. Works through a transaction pooler."""
        self._execute("SELECT pg_notify(?, ?)", [WORK_CHANNEL, work_origin()])

    # --- schema ----------------------------------------------------------------------
    def upgrade(self) -> list[str]:
        """Apply pending migrations on `direct_url`, in one transaction; concurrent callers
        wait on a transaction-scoped advisory lock (safe through a transaction pooler too)."""
        conn = self._connect(self.direct_url)
        applied = []
        try:
            with _transaction(conn):
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK_ID])
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    "name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                done = {r["name"] for r in conn.execute("SELECT name FROM schema_migrations")}
                for name, migration in SCHEMA:
                    if name in done:
                        continue
                    for statement in statements(migration, "postgres"):
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", [name])
                    applied.append(name)
        except psycopg.Error as exc:
            raise StoreError(f"migration failed: {_first_line(exc)}") from exc
        finally:
            conn.close()
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        return applied


@contextmanager
def _transaction(conn: psycopg.Connection) -> Iterator[None]:
    """One transaction on an autocommit connection, opened with BEGIN_TRANSACTION (one round
    trip); inside an open transaction, nothing: the statements join the caller's.

    Commits when the block ends, rolls back when it raises (the error propagates).
    """
    if conn.info.transaction_status != TransactionStatus.IDLE:
        yield
        return
    conn.execute(BEGIN_TRANSACTION)
    try:
        yield
    except BaseException:
        if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:
                log.warning("rollback failed; the connection is dropped", exc_info=True)
                conn.close()
        raise
    conn.execute("COMMIT")


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
