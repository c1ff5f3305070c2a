"""Wake on work (issue 14, item 3): dispatch starts when deliveries are queued, not at its tick.

The worker processes here run with DISPATCH_INTERVAL_SECONDS=600: after the run at start,
only a wake can explain a mail within seconds. Before this, a feed change waited for the
5 s tick, and an ops send in another process too.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from notifier.delivery.wake import LISTEN_APPLICATION, DispatchGate
from notifier.settings import load_settings
from notifier.store import open_store
from notifier.store.base import WORK_CHANNEL, WORK_KEY, work_origin

from .conftest import _pg_admin, _pg_url
from .helpers import add_subscriber, atom
from .test_admin_announcements import new_draft
from .test_admin_cli import ANNOUNCEMENT
from .test_admin_helpers import (  # noqa: F401  (fixtures)
    admin_client,
    admin_settings,
    audience_world,
    composer_form,
    hidden,
    post,
)
from .test_crash import process_env
from .test_shutdown import _sigterm_and_time, _start_worker, _wait

ROOT = Path(__file__).resolve().parents[1]
BUDGET_SECONDS = 25.0
# Far beyond any test here: the tick cannot explain a send after the run at start.
NO_TICK = {"DISPATCH_INTERVAL_SECONDS": "600"}
# A wake sends within this; generous for a loaded 2-core machine, far below the tick.
WAKE_BOUND_SECONDS = 8.0
AUDIENCE = ["de-all@example.de", "de-sms-eu@example.de", "en-all@example.com",
            "en-sms-eu@example.com"]  # fmt: skip


# --- the gate: one run at a time, no wake lost ----------------------------------------
def test_a_wake_while_idle_starts_a_run_and_a_wake_during_a_run_asks_for_one_more_pass():
    started = []
    gate = DispatchGate(lambda: started.append("start"))
    gate.wake()
    assert started == ["start"]
    assert gate.enter() is True
    assert gate.enter() is False  # a second instance (the tick, a wake) is turned away
    gate.wake()
    gate.wake()
    assert started == ["start"]  # not a second run: the running one goes again
    assert gate.more() is True  # one more pass for both wakes
    assert gate.more() is False  # and the run ends
    assert gate.enter() is True
    gate.leave()  # a failed pass ends the run too
    gate.wake()
    assert started == ["start", "start"]


def test_dispatch_runs_never_overlap_and_a_wake_during_a_run_is_served(app, monkeypatch):
    from notifier import jobs

    active, passes, overlap = [0], [], []
    runs: list[threading.Thread] = []

    def start_run():
        runs.append(threading.Thread(target=jobs.dispatch, args=(app,)))
        runs[-1].start()

    gate = DispatchGate(start_run)
    app.extensions["dispatch_gate"] = gate
    release = threading.Event()

    def one_pass(app_, stop):
        active[0] += 1
        overlap.append(active[0])
        passes.append(time.monotonic())
        if len(passes) == 1:
            release.wait(5)
        active[0] -= 1

    monkeypatch.setattr(jobs, "_dispatch_pass", one_pass)
    gate.wake()  # first run starts, blocks in its pass
    _wait(lambda: len(passes) == 1, 5, "the first pass")
    gate.wake()  # during the run: served by a second pass of the same run
    tick = threading.Thread(target=jobs.dispatch, args=(app,))  # the tick: turned away
    tick.start()
    # The tick must knock while the first pass runs: started late, after the run ended, it
    # would rightly run a pass of its own.
    tick.join(5)
    release.set()
    for run in runs:
        run.join(5)
    assert (len(passes), max(overlap), len(runs), tick.is_alive()) == (2, 1, 1, False)


# --- the store's notification ------------------------------------------------------
def test_notify_work_reaches_another_process_only_at_commit(db, clock):
    now = clock()
    if db.backend == "sqlite":
        assert db.work_token() is None
        db.notify_work(now)
        first = db.work_token()
        db.notify_work(now)
        origin, token = first.split(" ")
        assert (origin, len(token), db.work_token() != first) == (work_origin(), 32, True)
        assert db.get_meta(WORK_KEY) == db.work_token()
        return
    with psycopg.connect(db.direct_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {WORK_CHANNEL}")
        with pytest.raises(RuntimeError), db.write():
            db.notify_work(now)
            raise RuntimeError("rolled back")
        with db.write():
            db.notify_work(now)
        got = [(n.channel, n.payload) for n in listener.notifies(timeout=2)]
    assert got == [(WORK_CHANNEL, work_origin())]


class Wakes:
    """The wakes another process would see: NOTIFYs on WORK_CHANNEL, or new SQLite tokens."""

    def __init__(self, db):
        self.db, self.conn = db, None
        if db.backend == "postgres":
            self.conn = psycopg.connect(db.direct_url, autocommit=True)
            self.conn.execute(f"LISTEN {WORK_CHANNEL}")
        else:
            self.last = db.work_token()

    def count(self, expect: int = 0) -> int:
        """Wakes since the last call. On PostgreSQL: waits up to 10 s for `expect` of them,
        then 0.3 s for any more (the listener's backend passes a NOTIFY on when it is
        scheduled, which on a loaded machine can take longer than a fixed window)."""
        if self.conn is not None:
            got = list(self.conn.notifies(timeout=10, stop_after=expect)) if expect else []
            return len(got) + len(list(self.conn.notifies(timeout=0.3)))
        token = self.db.work_token()
        woken, self.last = token != self.last, token  # one row: at least one wake, not how many
        return int(woken)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def test_every_console_action_that_queues_mail_wakes_the_workers_once(admin, db, clock):
    audience_world(db, clock())
    wakes = Wakes(db)
    try:
        draft = new_draft(admin)
        assert wakes.count() == 0  # a draft queues nothing
        post(admin, f"/admin/announcements/{draft}", composer_form(action="test", test_to="o@x.de"))
        assert wakes.count(expect=1) == 1
        page = admin.get(f"/admin/announcements/{draft}/send").text
        response = post(
            admin, f"/admin/announcements/{draft}/send", {"revision": hidden(page, "revision")}
        )
        assert wakes.count(expect=1) == 1
        nid = int(response.headers["Location"].rsplit("/", 1)[1])
        db._execute(
            "UPDATE deliveries SET state = 'failed', reason = 'timeout' WHERE notification_id = ?",
            [nid],
        )
        response = post(admin, f"/admin/notifications/{nid}/resend", {"which": "failed"})
        assert response.status_code == 303
        assert wakes.count(expect=1) == 1
    finally:
        wakes.close()


# --- real worker processes -----------------------------------------------------------
def _store(url: str):
    return open_store(load_settings({"DATABASE_URL": url}))


def _first_arrival(sendgrid, timeout: float) -> float:
    """time.time() when the fake SendGrid first holds an accepted request."""
    deadline = time.monotonic() + timeout
    while not sendgrid.accepted_requests():
        if time.monotonic() > deadline:
            raise AssertionError("no mail reached the fake SendGrid")
        time.sleep(0.02)
    return time.time()


def _recipients(sendgrid) -> list[str]:
    return sorted(r["email"] for r in sendgrid.accepted_recipients())


def _announce(tmp_path: Path, env: dict) -> subprocess.CompletedProcess:
    """The ops send from another process: `flask announce FILE --yes` (the store calls the web
    console's send makes, then work_queued)."""
    path = tmp_path / "notice.yaml"
    path.write_text(ANNOUNCEMENT, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "announce", str(path), "--yes"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _wait_line(lines: list[str], needle: str, timeout: float = 30, count: int = 1) -> None:
    _wait(lambda: sum(needle in line for line in lines) >= count, timeout, repr(needle))


def _stop(proc: subprocess.Popen) -> float:
    try:
        return _sigterm_and_time(proc)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_a_feed_change_is_mailed_within_seconds_not_at_the_dispatch_tick(
    tmp_path, database_url, sendgrid, feed_server
):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    store = _store(database_url)
    store.upgrade()
    for email, lang in (("ana@example.com", "en"), ("ben@example.de", "de")):
        add_subscriber(store, email, now=now, language=lang)
    first = (now - timedelta(minutes=20), "Investigating", "We are looking into it.")
    entry = {"key": "abc123def456", "title": "Delayed SMS delivery", "updates": [first]}
    url = feed_server.set("/history.atom", atom([entry]))
    env = process_env(tmp_path, database_url, sendgrid, FEED_URLS=url, POLL_INTERVAL_SECONDS="2")
    proc, lines = _start_worker({**env, **NO_TICK})
    try:
        # The baseline poll records the incident silently.
        _wait(lambda: store._scalar("SELECT COUNT(*) AS n FROM incidents") == 1, 30, "baseline")
        update = (now - timedelta(minutes=1), "Identified", "The cause is known.")
        feed_server.set("/history.atom", atom([{**entry, "updates": [first, update]}]))
        arrived = _first_arrival(sendgrid, 30)
        [change] = store._query("SELECT MAX(detected_at) AS detected_at FROM changes")
        _wait(lambda: len(sendgrid.accepted_recipients()) == 2, 10, "both mails")
        # The 202 reaches the fake before the worker records it (the sender thread hands the
        # answer to the run's thread): wait for the record, then assert it whole.
        query = "SELECT email, state FROM deliveries ORDER BY email"
        _wait(lambda: {r["state"] for r in store._query(query)} == {"sent"}, 10, "recorded")
        states = store._query(query)
    finally:
        elapsed = _stop(proc)
        store.close()
    assert arrived - change["detected_at"].timestamp() < WAKE_BOUND_SECONDS, lines
    assert _recipients(sendgrid) == ["ana@example.com", "ben@example.de"]
    assert states == [
        {"email": "ana@example.com", "state": "sent"},
        {"email": "ben@example.de", "state": "sent"},
    ]
    assert (elapsed <= BUDGET_SECONDS, proc.returncode) == (True, 0), lines


def _idle_worker_env(tmp_path, database_url, sendgrid, **extra) -> dict:
    """A worker with nothing to poll (a closed port, every 600 s) and no dispatch tick."""
    env = process_env(
        tmp_path,
        database_url,
        sendgrid,
        FEED_URLS="http://127.0.0.1:9/history.atom",
        POLL_INTERVAL_SECONDS="600",
    )
    return {**env, **NO_TICK, **extra}


def _ready_line(database_url: str) -> str:
    return "wake: watching" if database_url.startswith("sqlite") else "wake: listening"


def _seed_audience(url: str) -> None:
    store = _store(url)
    store.upgrade()
    audience_world(store, datetime.now(UTC))
    store.close()


def _assert_announced_within_the_bound(tmp_path, env, sendgrid, url, lines) -> None:
    done = _announce(tmp_path, env)
    assert done.returncode == 0, done.stderr
    arrived = _first_arrival(sendgrid, 30)
    store = _store(url)
    try:
        [notification] = store._query("SELECT created_at FROM notifications")
    finally:
        store.close()
    _wait(lambda: len(sendgrid.accepted_recipients()) == 4, 10, "every recipient")
    assert arrived - notification["created_at"].timestamp() < WAKE_BOUND_SECONDS, lines
    assert _recipients(sendgrid) == AUDIENCE


@pytest.mark.slow
def test_an_ops_send_in_another_process_wakes_the_worker(tmp_path, database_url, sendgrid):
    _seed_audience(database_url)
    env = _idle_worker_env(tmp_path, database_url, sendgrid)
    proc, lines = _start_worker(env)
    try:
        _wait_line(lines, _ready_line(database_url))
        _assert_announced_within_the_bound(tmp_path, env, sendgrid, database_url, lines)
    finally:
        elapsed = _stop(proc)
    assert (elapsed <= BUDGET_SECONDS, proc.returncode) == (True, 0), lines
    assert not [line for line in lines if "Traceback" in line], lines


@pytest.fixture
def pg_database(pg_template):
    """A fresh PostgreSQL database (from the template); its direct URL. Dropped after."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with _pg_admin() as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    yield name
    with _pg_admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _kill_listener(database: str) -> int:
    with _pg_admin() as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = %s",
            [database, LISTEN_APPLICATION],
        ).fetchall()
    return len(rows)


@pytest.mark.slow
def test_the_listener_reconnects_after_its_connection_is_killed(tmp_path, pg_database, sendgrid):
    url = _pg_url(pg_database)
    _seed_audience(url)
    env = _idle_worker_env(tmp_path, url, sendgrid)
    proc, lines = _start_worker(env)
    try:
        _wait_line(lines, "wake: listening")
        assert _kill_listener(pg_database) == 1
        _wait_line(lines, "wake: the listen connection dropped")
        _wait_line(lines, "wake: listening", count=2)
        _assert_announced_within_the_bound(tmp_path, env, sendgrid, url, lines)
    finally:
        elapsed = _stop(proc)
    assert (elapsed <= BUDGET_SECONDS, proc.returncode) == (True, 0), lines
    assert sum("wake: the listen connection dropped" in line for line in lines) == 1, lines


@pytest.mark.slow
def test_sigterm_stops_the_listener_and_the_worker_at_once(tmp_path, pg_database, sendgrid):
    url = _pg_url(pg_database)
    proc, lines = _start_worker(_idle_worker_env(tmp_path, url, sendgrid))
    try:
        _wait_line(lines, "wake: listening")
        time.sleep(0.5)
    finally:
        elapsed = _stop(proc)
    # The reader thread closes stdout at its end: every line is in `lines` then.
    _wait(lambda: proc.stdout.closed, 10, "the end of the worker's output")
    # Idle, it has nothing to wait for: well within the 25 s budget.
    assert (elapsed < 5.0, proc.returncode) == (True, 0), (elapsed, lines)
    assert lines[-1].endswith("notifier.scheduler: worker: stopped"), lines
    assert not [line for line in lines if "Traceback" in line or "dropped" in line], lines
    with _pg_admin() as conn:  # the listen session is gone with the process
        left = conn.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            [pg_database, LISTEN_APPLICATION],
        ).fetchone()[0]
    assert left == 0


POOLER_LINE = (
    "wake: NOTIFY through DATABASE_URL does not reach a LISTEN on {where} (a connection pooler "
    "in transaction mode? set DATABASE_DIRECT_URL to the database itself); dispatch runs on "
    "its tick only"
)


@pytest.mark.slow
def test_through_pgbouncer_without_a_direct_url_the_worker_says_so_once_and_sends_on_its_tick(
    tmp_path, pg_database, pg_pooler, sendgrid
):
    pooled = _pg_url(pg_database, pg_pooler)
    _seed_audience(pooled)
    env = {
        **_idle_worker_env(tmp_path, pooled, sendgrid),
        "DISPATCH_INTERVAL_SECONDS": "3",
    }
    proc, lines = _start_worker(env)
    try:
        _wait_line(lines, "wake: NOTIFY through DATABASE_URL does not reach")
        done = _announce(tmp_path, env)
        assert done.returncode == 0, done.stderr
        _first_arrival(sendgrid, 30)  # the tick sends it
        _wait(lambda: len(sendgrid.accepted_recipients()) == 4, 10, "every recipient")
    finally:
        elapsed = _stop(proc)
    info = psycopg.conninfo.conninfo_to_dict(pooled)
    where = f"{info['host']}:{info['port']}/{pg_database}"
    pooler_lines = [line for line in lines if "wake:" in line]
    assert [line.split(": ", 1)[1] for line in pooler_lines] == [POOLER_LINE.format(where=where)]
    assert _recipients(sendgrid) == AUDIENCE
    assert (elapsed <= BUDGET_SECONDS, proc.returncode) == (True, 0), lines


@pytest.mark.slow
def test_through_pgbouncer_with_a_direct_url_an_ops_send_wakes_the_worker(
    tmp_path, pg_database, pg_pooler, sendgrid
):
    pooled, direct = _pg_url(pg_database, pg_pooler), _pg_url(pg_database)
    _seed_audience(pooled)
    env = _idle_worker_env(tmp_path, pooled, sendgrid, DATABASE_DIRECT_URL=direct)
    proc, lines = _start_worker(env)
    try:
        _wait_line(lines, "wake: listening")
        # The sender notifies through the pooler (DATABASE_URL); the worker listens directly.
        _assert_announced_within_the_bound(tmp_path, env, sendgrid, pooled, lines)
    finally:
        elapsed = _stop(proc)
    assert (elapsed <= BUDGET_SECONDS, proc.returncode) == (True, 0), lines
