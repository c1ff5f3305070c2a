"""Wake on work: dispatch starts as soon as deliveries are queued, not at its next tick.

Issue 14, item 3. Whoever queues deliveries calls `work_queued()` after committing them: a
poll that recorded changes (in the worker), an ops send, test send, resend or review approval
(in the web process or the CLI), a review released by its timeout. That wakes

- this process's dispatch job, when this process is a worker (`DispatchGate`), and
- every worker process, through the store (`notify_work`): on PostgreSQL a NOTIFY on
  WORK_CHANNEL, which each worker LISTENs for on a connection of its own to
  DATABASE_DIRECT_URL (`PostgresListener`); on SQLite (one host, web and worker are two
  processes on one file) a token in one meta row, which the worker reads every
  WATCH_SECONDS (`SQLiteWatcher`: one primary-key read, no write).

The dispatch tick (DISPATCH_INTERVAL_SECONDS) stays as the safety net: a wake that is lost
(no listener, a dropped connection, the database briefly away) only means the tick sends.
LISTEN needs a session, which PgBouncer in transaction mode does not keep (README, "Behind a
connection pooler"), so the listener proves that a NOTIFY sent like every sender sends it
(through DATABASE_URL) reaches it before it relies on it; when it does not, it says so in one
line and the worker dispatches on its tick.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime

from flask import Flask, current_app, has_app_context

from ..store.base import WORK_CHANNEL, StoreError, work_origin

log = logging.getLogger(__name__)

WATCH_SECONDS = 0.5  # SQLite: how often the worker reads the wake row
RECEIVE_SECONDS = 0.5  # PostgreSQL: how long one wait for notifications lasts (stop latency)
PROBE_SECONDS = 5.0  # how long the listener waits for its own probe
PROBE_RETRY_SECONDS = 300.0  # after a lost probe (a pooler): the next try, without a log line
BACKOFF_SECONDS = (0.5, 1, 2, 4, 8, 15, 30)  # reconnecting after a failed or dropped listen
LISTEN_APPLICATION = "status-notifier-listen"


class DispatchGate:
    """At most one dispatch run at a time in this process, and no wake lost.

    `wake()` starts a run at once (through `start`, e.g. the scheduler's
    modify_job(next_run_time=now)); when a run is already going, it asks that run to go once
    more after it ends instead, because the rows it was woken for may have been committed
    after that run's last claim. A run is `enter()` ... `more()` (loop while True) or
    `leave()` on error.
    """

    def __init__(self, start: Callable[[], None]):
        self._start = start
        self._lock = threading.Lock()
        self._running = False
        self._again = False

    def wake(self) -> None:
        with self._lock:
            if self._running:
                self._again = True
                return
        try:
            self._start()
        except Exception:  # the scheduler is shutting down: the tick is gone too, no loss
            log.debug("wake: could not start dispatch", exc_info=True)

    def enter(self) -> bool:
        """Begin a run; False when one runs already (that run goes once more if woken)."""
        with self._lock:
            if self._running:
                return False
            self._running, self._again = True, False
            return True

    def more(self) -> bool:
        """End of one pass: True when woken meanwhile (do another pass), else the run ends."""
        with self._lock:
            if self._again:
                self._again = False
                return True
            self._running = False
            return False

    def leave(self) -> None:
        """End the run at once (a failed pass); a pending wake is left to the tick."""
        with self._lock:
            self._running = self._again = False


def work_queued(store, now: datetime, app: Flask | None = None) -> None:
    """Deliveries were committed and are due now: wake this worker's dispatch (if this process
    is a worker) and every worker through the store. Never raises: the tick is the fallback."""
    if app is None and has_app_context():
        app = current_app._get_current_object()
    try:
        store.notify_work(now)
    except (StoreError, NotImplementedError) as exc:
        log.warning("wake: could not notify the workers (%s); they send on their tick", exc)
    gate = app.extensions.get("dispatch_gate") if app is not None else None
    if gate is not None:
        gate.wake()


def start_listener(store, on_wake: Callable[[], None], stop: threading.Event):
    """Start the thread that wakes this worker on other processes' work; returns it."""
    backend = getattr(store, "backend", None)
    if backend == "postgres":
        listener = PostgresListener(store, on_wake, stop)
    elif backend == "sqlite" and str(store.path) != ":memory:":
        listener = SQLiteWatcher(store, on_wake, stop)
    else:
        return None
    listener.start()
    return listener


def _foreign(origin: str) -> bool:
    """A wake from another process; this worker's own work woke it already."""
    return origin.split(" ", 1)[0] != work_origin()


class SQLiteWatcher(threading.Thread):
    """Reads the wake row every WATCH_SECONDS; a new token from another process wakes."""

    def __init__(self, store, on_wake: Callable[[], None], stop: threading.Event):
        super().__init__(name="wake watcher", daemon=True)
        self.store, self.on_wake, self.stop = store, on_wake, stop

    def run(self) -> None:
        try:
            last = self._read()
        except StoreError:
            last = None
        failing = False
        log.info("wake: watching the database for queued work every %ss", WATCH_SECONDS)
        while not self.stop.wait(WATCH_SECONDS):
            try:
                token = self._read()
            except StoreError as exc:
                if not failing:
                    log.warning(
                        "wake: cannot read the wake row (%s); dispatch runs on its tick", exc
                    )
                failing = True
                continue
            failing = False
            if token != last:
                last = token
                if token and _foreign(token):
                    self.on_wake()

    def _read(self) -> str | None:
        try:
            return self.store.work_token()
        except StoreError:
            raise
        except Exception as exc:  # sqlite3 errors the store did not wrap
            raise StoreError(str(exc)) from exc


class ProbeLost(Exception):
    """A NOTIFY sent through DATABASE_URL never reached the listen connection."""


class PostgresListener(threading.Thread):
    """LISTEN on DATABASE_DIRECT_URL (else DATABASE_URL); reconnects with backoff.

    Each (re)connection LISTENs, then sends a probe NOTIFY the way senders do (through the
    store, DATABASE_URL) and waits up to PROBE_SECONDS for it: through a transaction pooler
    the listen session is not the client's and the probe never arrives: one line says why,
    and it tries again every PROBE_RETRY_SECONDS without another line. After a drop it logs
    one line, retries with BACKOFF_SECONDS and, once back, wakes dispatch once (work may have
    been queued meanwhile). Listening, it stops within RECEIVE_SECONDS of `stop`; a connect or
    probe in flight may take longer, which is why it is a daemon thread (never delays exit).
    """

    def __init__(self, store, on_wake: Callable[[], None], stop: threading.Event):
        super().__init__(name="wake listener", daemon=True)
        self.store, self.on_wake, self.stop = store, on_wake, stop
        self.url = store.direct_url
        self.conn = None

    def run(self) -> None:
        attempt, down, probe_lost = 0, False, False
        while not self.stop.is_set():
            try:
                self.conn = self._listen()
            except ProbeLost:
                if not probe_lost:
                    log.warning(
                        "wake: NOTIFY through DATABASE_URL does not reach a LISTEN on %s (a "
                        "connection pooler in transaction mode? set DATABASE_DIRECT_URL to the "
                        "database itself); dispatch runs on its tick only",
                        _where(self.url),
                    )
                probe_lost = True
                # A pooler stays a pooler, but a database too slow for one probe recovers:
                # try again, rarely and silently.
                self.stop.wait(PROBE_RETRY_SECONDS)
                continue
            except Exception as exc:
                if self.stop.is_set():
                    return
                if not down:
                    log.warning(
                        "wake: cannot listen on %s (%s); dispatch runs on its tick until it "
                        "can, retrying",
                        _where(self.url),
                        _first_line(exc),
                    )
                down = True
                self.stop.wait(BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS) - 1)])
                attempt += 1
                continue
            log.info("wake: listening for queued work on %s", _where(self.url))
            attempt, down, probe_lost = 0, False, False
            self.on_wake()  # whatever was queued before this listen
            down = self._receive()

    def _listen(self):
        import psycopg

        conn = psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=10,
            application_name=LISTEN_APPLICATION,
            # A peer gone without a FIN (NAT, failover) is noticed within about a minute.
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
        try:
            conn.execute(f"LISTEN {WORK_CHANNEL}")
            probe = f"probe {uuid.uuid4().hex}"
            self._send_probe(probe)
            for note in conn.notifies(timeout=PROBE_SECONDS):
                if note.payload == probe:
                    return conn
                if _foreign(note.payload):
                    self.on_wake()
        except BaseException:
            conn.close()
            raise
        conn.close()
        raise ProbeLost()

    def _send_probe(self, payload: str) -> None:
        """NOTIFY as senders do: through DATABASE_URL (the pooler, if any), on a connection
        of its own that is closed at once (no extra idle server connection per worker)."""
        conn = self.store._connect(self.store.url)
        try:
            conn.execute("SELECT pg_notify(%s, %s)", [WORK_CHANNEL, payload])
        finally:
            conn.close()

    def _receive(self) -> bool:
        """Wake on every foreign notification until `stop` (False) or the connection drops
        (True, logged)."""
        conn = self.conn
        try:
            while not self.stop.is_set():
                for note in conn.notifies(timeout=RECEIVE_SECONDS):
                    if _foreign(note.payload) and not self.stop.is_set():
                        self.on_wake()
            return False
        except Exception as exc:
            if self.stop.is_set():
                return False
            log.warning(
                "wake: the listen connection dropped (%s); dispatch runs on its tick until it "
                "is back, reconnecting",
                _first_line(exc),
            )
            return True
        finally:
            conn.close()


def _where(url: str) -> str:
    """host:port/dbname of a PostgreSQL URL, never its password."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(url)
    except Exception:
        return "the database"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
