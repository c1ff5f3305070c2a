"""The dialect-neutral part of the store: value conversion and the query helpers every backend has.

Query mixins (feeds, subscribers, deliveries, ops) are written against this small surface with
portable SQL: `?` placeholders, `INSERT … ON CONFLICT`, `RETURNING`, integers for booleans, JSON
as text, and timestamps passed in as aware datetimes (never `now()` inside SQL), so a PostgreSQL
backend only has to provide `_query`, `_execute`, `_executemany` and the transaction managers.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# Wake on work (notifier.delivery.wake): the PostgreSQL NOTIFY channel, and the SQLite meta row.
WORK_CHANNEL = "notifier_work"
WORK_KEY = "work_queued"


class StoreError(RuntimeError):
    """The database could not be reached or refused an operation."""


def to_db_time(value: datetime) -> str:
    """An aware datetime as fixed-width UTC text that sorts correctly as a string."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; pass an aware UTC datetime")
    return value.astimezone(UTC).strftime(TS_FORMAT)


def from_db_time(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.strptime(value, TS_FORMAT).replace(tzinfo=UTC)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def work_origin() -> str:
    """This process as a wake message names it ("host:pid"): a worker ignores its own."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _is_time_column(name: str) -> bool:
    return name.endswith("_at")


class BaseStore:
    """Query helpers shared by backends. Subclasses implement the connection layer."""

    # --- connection layer (backend specific) -------------------------------------------
    def _raw_query(self, sql: str, params: Sequence[Any]) -> list[dict]:
        raise NotImplementedError

    def _raw_query_long(
        self, sql: str, params: Sequence[Any], columns: Sequence[str]
    ) -> list[dict]:
        """_raw_query for a result of many rows; SQLite packs it into one (SQLiteStore)."""
        return self._raw_query(sql, params)

    def _raw_execute(self, sql: str, params: Sequence[Any]) -> int:
        raise NotImplementedError

    def _raw_executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    @contextmanager
    def write(self, exclusive: bool = True) -> Iterator[None]:
        """A read-then-write transaction that holds the write lock from its first statement.

        exclusive=False is for statements that lock only the rows they touch (PostgreSQL's
        SKIP LOCKED claim, a feed row lock) and should not wait for unrelated writers.
        """
        raise NotImplementedError
        yield

    @contextmanager
    def feed_lock(self, feed_id: int) -> Iterator[None]:
        """Exclusive processing of one feed: two pollers never detect the same change twice."""
        raise NotImplementedError
        yield

    def close(self) -> None:
        raise NotImplementedError

    def close_thread_connection(self) -> None:
        """Close the calling thread's connection, if it has one. Both backends keep one
        connection per thread (`_local.conn`, all of them in `_all` for close()); a short-lived
        thread that used the store (the dispatcher's recorder) calls this before it ends, or
        each run would leave a connection open until close()."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        conn.close()

    # --- helpers the query mixins use ----------------------------------------------------
    @staticmethod
    def _param(value: Any) -> Any:
        if isinstance(value, datetime):
            return to_db_time(value)
        if isinstance(value, bool):
            return int(value)
        return value

    def _params(self, params: Sequence[Any]) -> list[Any]:
        return [self._param(p) for p in params]

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        return self._times(self._raw_query(sql, self._params(params)))

    def _query_long(self, sql: str, params: Sequence[Any], columns: Sequence[str]) -> list[dict]:
        """`_query` for a SELECT that may return many rows (a claim's 1000): the same list of
        dicts. `columns` names the statement's result columns, all of them, in order (SQLite
        reads the result as one JSON row keyed by them: SQLiteStore._raw_query_long)."""
        if not columns:
            raise ValueError("_query_long needs the result's column names")
        return self._times(self._raw_query_long(sql, self._params(params), columns))

    @staticmethod
    def _times(rows: list[dict]) -> list[dict]:
        # Every row of one result has the same columns: look for time columns once, not per
        # row and column (a claim has 1000 rows and none; issue 14): text in a *_at column
        # becomes an aware datetime, as before.
        times = [key for key in rows[0] if _is_time_column(key)] if rows else ()
        if times:
            for row in rows:
                for key in times:
                    value = row[key]
                    if isinstance(value, str):
                        row[key] = from_db_time(value)
        return rows

    def _query_one(self, sql: str, params: Sequence[Any] = ()) -> dict | None:
        rows = self._query(sql, params)
        return rows[0] if rows else None

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self._raw_query(sql, self._params(params))
        if not rows:
            return None
        return next(iter(rows[0].values()))

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._raw_execute(sql, self._params(params))

    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._raw_executemany(sql, (self._params(r) for r in rows))

    # --- key/value metadata (sending paused, alerts, dev secrets) -----------------------
    def get_meta(self, key: str) -> str | None:
        return self._scalar("SELECT value FROM meta WHERE key = ?", [key])

    def set_meta(self, key: str, value: str | None, now: datetime) -> None:
        if value is None:
            self._execute("DELETE FROM meta WHERE key = ?", [key])
            return
        self._execute(
            "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
            "updated_at = excluded.updated_at",
            [key, value, now],
        )

    # --- wake on work (notifier.delivery.wake) -----------------------------------------------
    def notify_work(self, now: datetime) -> None:
        """Tell every worker process that deliveries were queued and are due now.

        Call it after (or inside) the transaction that queued them: inside one it takes effect
        at commit, like the rows. PostgreSQL: NOTIFY on WORK_CHANNEL, SQLite: a new token in
        the meta row WORK_KEY. Best effort: the dispatch tick still finds the rows without it.
        """
        raise NotImplementedError

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        return self._scalar("SELECT 1 AS ok") == 1
