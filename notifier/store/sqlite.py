"""SQLite backend: one file, WAL, a connection per thread, ordered sqlite-utils migrations."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from .base import WORK_KEY, StoreError, work_origin
from .migrations import MIGRATIONS
from .queries import Queries

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
# WAL checkpoints (sqlite.org/wal.html#ckpt): by default the connection whose COMMIT takes the
# log past 1000 pages copies it back into the database file and, with synchronous=NORMAL,
# fsyncs both files, inside that COMMIT. A fan-out changes several hundred pages per request
# of 1000 recipients, so every second or third request paid a checkpoint: about 18 ms per 1000
# recipients of COMMIT time (issue 14). At 10,000 pages (~40 MB) the hot index pages a run
# rewrites are copied once per checkpoint instead of once per request. The log file is cut
# back to WAL_SIZE_LIMIT_BYTES after a checkpoint, so the disk it holds stays bounded. The
# worker checkpoints every few seconds by itself (SQLiteStore.checkpoint), off those commits.
WAL_AUTOCHECKPOINT_PAGES = 10_000
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
# How long a thread waits for another thread of this process to finish its write (seconds):
# the same bound as SQLite's busy handler, so a stuck writer still ends in a StoreError.
WRITER_WAIT_SECONDS = BUSY_TIMEOUT_MS / 1000
# Statements _raw_query runs without the writer lock outside a transaction: they never write.
_READ_ONLY_VERBS = ("SELECT", "PRAGMA", "EXPLAIN")

_writers: dict[str, threading.RLock] = {}
_writers_guard = threading.Lock()


def _writer_lock(path: Path) -> threading.RLock:
    """The in-process writer lock of one database file, shared by every SQLiteStore of this
    process on that file (a ":memory:" database is private to its connection, so it gets its
    own).

    SQLite lets one connection write at a time. Another connection that wants to write sleeps
    in SQLite's busy handler, 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms... between tries
    (sqlite3.c, sqliteDefaultBusyCallback), and wakes up to that long after the lock came
    free. Threads of one process (the worker's dispatcher, its recorder, the poller, the
    channel run) queue on this lock instead and start the moment the previous write ends;
    other processes still meet in SQLite's busy handler.
    """
    if str(path) == ":memory:":
        return threading.RLock()
    key = os.path.realpath(path)
    with _writers_guard:
        lock = _writers.get(key)
        if lock is None:
            lock = _writers[key] = threading.RLock()
        return lock


def _forget_writer_locks() -> None:
    # A forked child (gunicorn --preload) has one thread: a lock another thread of the parent
    # held at fork time would never be released in the child.
    global _writers_guard
    _writers.clear()
    _writers_guard = threading.Lock()


os.register_at_fork(after_in_child=_forget_writer_locks)


# The column names of the last result _dict_factory saw: (cursor.description, names). One
# slot, swapped whole (atomic under the GIL): threads that interleave results only recompute.
_last_columns: tuple = (None, ())


def _dict_factory(cursor: sqlite3.Cursor, row: tuple) -> dict:
    """Each row as {column: value}. The names are read from `cursor.description` once per
    result, not once per row and column: a result can hold 1000 rows (long ones go through
    _raw_query_long), and the comprehension over the description cost about twice the zip
    (issue 14)."""
    global _last_columns
    description = cursor.description
    last = _last_columns
    if last[0] is not description:
        last = _last_columns = (description, tuple(column[0] for column in description))
    return dict(zip(last[1], row, strict=True))


def packed_statement(sql: str, columns: Sequence[str]) -> str:
    """`sql`'s whole result as one row, column `packed` (SQLiteStore._raw_query_long)."""
    return f"SELECT json_group_array(json_array({', '.join(columns)})) AS packed FROM ({sql})"


def connect(path: str | Path, dict_rows: bool = True) -> sqlite3.Connection:
    """A connection with the settings every connection must have."""
    # isolation_level=None: the sqlite3 module never opens transactions behind our back; every
    # transaction is explicit (BEGIN IMMEDIATE for read-then-write), see SQLiteStore.write().
    conn = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _use_wal(conn)
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
    conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
    conn.execute("PRAGMA foreign_keys = ON")
    if dict_rows:  # sqlite-utils (migrations) expects plain tuples
        conn.row_factory = _dict_factory
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL (persistent; readers then never block the single writer).

    Switching needs an exclusive lock and SQLite answers "database is locked" at once, without
    the busy handler, while another process holds one - which happens when web and worker
    create a fresh database at the same moment. So: read the mode first (no lock needed) and
    retry the switch for up to the busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class SQLiteStore(Queries):
    """The embedded default store."""

    backend = "sqlite"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer, self._writer_pid = _writer_lock(self.path), os.getpid()

    # --- connections -----------------------------------------------------------------
    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        # A forked child (gunicorn --preload, multiprocessing) must not reuse the parent's handle.
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            try:
                conn = connect(self.path)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open database {self.path}: {exc}") from exc
            self._local.conn, self._local.pid = conn, os.getpid()
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.ProgrammingError):  # closed in its thread
                    conn.close()
            self._all.clear()
        self._local = threading.local()

    # --- the in-process writer lock ---------------------------------------------------
    @contextmanager
    def _writing(self, conn: sqlite3.Connection) -> Iterator[None]:
        """Hold this process's writer lock of the file (see _writer_lock) for one write
        outside a transaction, or for a whole transaction.

        One deadline for both waits: the in-process lock, then SQLite's busy handler (another
        process), together at most WRITER_WAIT_SECONDS. After waiting here, `conn`'s
        busy_timeout is what is left of it until the write ends. Raises StoreError when the
        lock does not come free in time (SQLite's own "database is locked" when the file
        does not)."""
        if self._writer_pid != os.getpid():  # a forked child: the parent's lock is not ours
            self._writer, self._writer_pid = _writer_lock(self.path), os.getpid()
        writer = self._writer
        started = time.monotonic()
        if not writer.acquire(timeout=WRITER_WAIT_SECONDS):
            raise StoreError(
                f"database is locked: another thread of this process has been writing to "
                f"{self.path} for more than {WRITER_WAIT_SECONDS:g} s"
            )
        try:
            waited = time.monotonic() - started
            if waited < 0.001:  # uncontended, the usual case: no PRAGMA round trips
                yield
                return
            left_ms = max(1, int((WRITER_WAIT_SECONDS - waited) * 1000))
            conn.execute(f"PRAGMA busy_timeout = {left_ms}")
            try:
                yield
            finally:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        finally:
            writer.release()

    # --- raw execution ---------------------------------------------------------------
    # Outside a transaction a statement commits by itself, so it takes the writer lock on its
    # own; inside one the transaction holds it (write()).
    def _raw_query(self, sql: str, params: Sequence[Any]) -> list[dict]:
        conn = self.conn
        try:
            if conn.in_transaction or sql.lstrip()[:7].upper().startswith(_READ_ONLY_VERBS):
                return conn.execute(sql, params).fetchall()
            with self._writing(conn):  # UPDATE/INSERT/DELETE … RETURNING, WITH …
                return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise StoreError(str(exc)) from exc

    def _raw_query_long(
        self, sql: str, params: Sequence[Any], columns: Sequence[str]
    ) -> list[dict]:
        """The whole result as one row: `json_group_array` of each row's `json_array` of
        `columns` (the statement's result columns, in order), decoded here.

        Python's sqlite3 module lets go of the GIL around every row it steps (`sqlite3_step`)
        and must win it back for the next. While other threads want the GIL (the senders
        building and encoding request bodies), each row can wait out a switch interval
        (5 ms): 1000 rows took 320-490 ms instead of 0.6 ms beside two busy threads, one
        packed row 6-21 ms (bench/statements.py; the "convoy effect", bugs.python.org/issue7946).
        JSON keeps what these results hold (integers, text, NULL; not BLOBs or REALs' last
        bits); the order of the rows is not kept, the callers sort."""
        (row,) = self._raw_query(packed_statement(sql, columns), params)
        return [dict(zip(columns, values, strict=True)) for values in json.loads(row["packed"])]

    def _raw_execute(self, sql: str, params: Sequence[Any]) -> int:
        conn = self.conn
        try:
            if conn.in_transaction:
                return conn.execute(sql, params).rowcount
            with self._writing(conn):
                return conn.execute(sql, params).rowcount
        except sqlite3.OperationalError as exc:
            raise StoreError(str(exc)) from exc

    def _raw_executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        conn = self.conn
        try:
            if conn.in_transaction:
                conn.executemany(sql, rows)
                return
            with self._writing(conn):
                conn.executemany(sql, rows)
        except sqlite3.OperationalError as exc:
            raise StoreError(str(exc)) from exc

    # --- transactions ----------------------------------------------------------------
    @contextmanager
    def write(self, exclusive: bool = True) -> Iterator[None]:
        """BEGIN IMMEDIATE: SQLite has one writer at a time, so every write is exclusive.

        The transaction holds this process's writer lock of the file from before BEGIN to
        after COMMIT or ROLLBACK (see _writer_lock): threads of one process queue there, other
        processes in SQLite's busy handler. Raises StoreError when either wait runs out."""
        conn = self.conn
        if conn.in_transaction:  # nested: part of the caller's transaction
            yield
            return
        with self._writing(conn):
            # BEGIN IMMEDIATE takes the write lock now and waits up to busy_timeout for it. A
            # plain BEGIN would fail at the first write with "database is locked" if another
            # writer got in between our read and our write; busy_timeout cannot help there.
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreError(f"could not start a write transaction: {exc}") from exc
            try:
                yield
            except BaseException:
                # SQLite rolls back by itself on some errors (disk full, I/O); a second
                # ROLLBACK would then raise and hide the original error.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    def checkpoint(self) -> tuple[int, int, int]:
        """PRAGMA wal_checkpoint(PASSIVE) (sqlite.org/pragma.html#pragma_wal_checkpoint): copy
        what the write-ahead log holds into the database file without waiting for readers or
        writers, fsyncing the log first. With synchronous=NORMAL a commit survives a power
        loss or OS crash only once it is checkpointed, and connections checkpoint by
        themselves only past WAL_AUTOCHECKPOINT_PAGES, so the worker runs this every
        CHECKPOINT_SECONDS (notifier/scheduler.py); off the request and dispatch paths, and
        in C, without Python's GIL. Returns (busy, log frames, frames checkpointed)."""
        row = self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return row["busy"], row["log"], row["checkpointed"]

    @contextmanager
    def feed_lock(self, feed_id: int) -> Iterator[None]:
        # SQLite has one writer at a time: the write transaction is the lock.
        with self.write():
            yield

    # --- wake on work ------------------------------------------------------------------
    def notify_work(self, now) -> None:
        """A fresh token ("host:pid uuid") in the meta row WORK_KEY: the worker, another
        process on the same file, reads that one row every WATCH_SECONDS
        (notifier.delivery.wake)."""
        self.set_meta(WORK_KEY, f"{work_origin()} {uuid.uuid4().hex}", now)

    def work_token(self) -> str | None:
        """The meta row WORK_KEY as notify_work last wrote it (None before the first)."""
        return self.get_meta(WORK_KEY)

    # --- schema ----------------------------------------------------------------------
    def upgrade(self) -> list[str]:
        """Apply pending migrations; safe when several processes start at the same moment."""
        conn = connect(self.path, dict_rows=False)
        try:
            db = sqlite_utils.Database(conn)
            # Holding the write lock while checking what is pending means a second process
            # waits, then finds nothing left to do, instead of failing on "table exists".
            # Foreign keys off on this connection only (a no-op inside a transaction, so before
            # BEGIN): a migration that rebuilds a parent table (0019: subscribers) must not
            # cascade its DROP to the children - sqlite.org's documented procedure
            # (lang_altertable.html, "Making Other Kinds Of Table Schema Changes"). The
            # foreign_key_check below refuses to commit anything a rebuild left dangling.
            conn.execute("PRAGMA foreign_keys = OFF")
            conn.execute("BEGIN IMMEDIATE")
            try:
                pending = [m.name for m in MIGRATIONS.pending(db)]
                MIGRATIONS.apply(db)
                broken = conn.execute("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left broken references: {broken[:5]}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()
        if pending:
            log.info("applied migrations: %s", ", ".join(pending))
        return pending
