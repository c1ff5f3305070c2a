"""The worker's shutdown budget with real processes and signals (issue 16, item 2).

Heroku sends SIGKILL 30 s after SIGTERM. The worker must be gone within its budget
(SHUTDOWN_BUDGET_SECONDS, 25 s by default for Heroku) whatever the feeds and SendGrid do, must not
log "stopped" or release the poller lease while work still runs, and must never be killed
between a SendGrid 202 and the database write that records it. The process tests give the
worker a 12 s budget, so that they wait 12 s, not 25, for what the budget cuts; the cut and the
5 s reserve work the same at any budget (the unit tests below use 25 s and others).
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notifier.fetch import make_client
from notifier.poller import poll_all
from notifier.settings import load_settings
from notifier.shutdown import Shutdown
from notifier.store import open_store

from .helpers import table
from .test_crash import process_env, seed

ROOT = Path(__file__).resolve().parents[1]
BUDGET_SECONDS = 12.0  # the process tests' SHUTDOWN_BUDGET_SECONDS


class BlackHole:
    """A host that accepts connections and never answers (nor closes them)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}{path}"

    def close(self):
        self.sock.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def black_hole():
    hole = BlackHole()
    yield hole
    hole.close()


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_budget_cuts_every_step_to_what_is_left_after_a_stop():
    clock = FakeClock()
    stop = Shutdown(budget_seconds=25, reserve_seconds=5, clock=clock)
    # Before a stop: the step's own timeout, never more than the budget less the reserve (a
    # step started just before SIGTERM must still end in time), and never past `until`.
    assert (stop.timeout(10), stop.timeout(60), stop.timeout(10, until=103.5)) == (10, 20, 3.5)
    assert (stop.is_set(), stop.exit_at, stop.steps_end_at, stop.exit_in()) == (
        False, None, None, None
    )  # fmt: skip
    clock.now = 110.0
    stop.set()
    clock.now = 117.0
    stop.set()  # a second signal does not restart the budget
    assert (stop.is_set(), stop.exit_at, stop.steps_end_at, stop.exit_in()) == (
        True, 135.0, 130.0, 18.0
    )  # fmt: skip
    assert (stop.timeout(10), stop.timeout(60), stop.timeout(10, until=118.0)) == (10, 13, 1)
    clock.now = 131.0
    assert (stop.timeout(10), stop.exit_in()) == (0.0, 4.0)


def test_a_forced_exit_waits_for_a_send_being_recorded():
    stop = Shutdown()
    recorded = threading.Event()

    def send_and_record():
        with stop.critical():
            time.sleep(0.3)
            recorded.set()

    thread = threading.Thread(target=send_and_record)
    thread.start()
    time.sleep(0.05)
    assert stop.wait_critical(0.01) is False
    assert stop.wait_critical(5) is True
    assert recorded.is_set()
    thread.join()


def test_the_worker_waits_for_job_threads_only_until_the_deadline():
    from notifier.scheduler import _join_job_threads

    stop = Shutdown(budget_seconds=1.0, reserve_seconds=0.5)
    release = threading.Event()
    quick = threading.Thread(target=time.sleep, args=(0.2,), name="quick job")
    stuck = threading.Thread(target=release.wait, args=(10,), name="stuck job")
    quick.start()
    stuck.start()
    try:
        stop.set()
        started = time.monotonic()
        running = _join_job_threads(stop, margin_seconds=0.3)
        elapsed = time.monotonic() - started
        left = stop.exit_in()
    finally:
        release.set()
        stuck.join()
    # The caller then exits without logging "stopped" or releasing the lease.
    assert [t.name for t in running if t in (quick, stuck)] == ["stuck job"]
    # Not before the margin: the join's own decision, exact. After it, by the clock only the
    # gross failure (waiting for the stuck job, 10 s): 2.5 s is a starved thread on a loaded
    # 2-core machine; the old 0.3 s past the margin was not.
    assert left <= 0.3, left
    assert 0.6 <= elapsed < 1.0 + 2.5, elapsed
    assert not quick.is_alive()


def test_polling_stops_between_feeds_and_cuts_hanging_fetches_at_the_budget(
    db, clock, black_hole, caplog
):
    urls = [black_hole.url(f"/p{i}/history.atom") for i in range(6)]
    stop = Shutdown(budget_seconds=3.0, reserve_seconds=0.5)
    # SIGTERM once four fetches hang.
    threading.Thread(target=lambda: _wait_for_connections(black_hole, 4, 20) and stop.set()).start()
    started = time.monotonic()
    with make_client(30.0) as client:
        results = poll_all(db, client, urls, clock(), 65536, stop=stop)
    elapsed = time.monotonic() - started
    # Four fetches ran at once, cut at the budget less the reserve; the other two never
    # started; nothing was recorded.
    assert results == []
    assert 2.4 <= elapsed <= 5.0, elapsed
    assert len(black_hole.connections) == 4
    assert db._query("SELECT url, consecutive_failures, last_error FROM feeds ORDER BY id") == [
        {"url": u, "consecutive_failures": 0, "last_error": None} for u in urls[:4]
    ]
    messages = [r.getMessage() for r in caplog.records]
    cut = [re.match(r"poll (\S+): cut off by the shutdown", m) for m in messages]
    assert sorted(m.group(1) for m in cut if m) == urls[:4]
    assert f"poll stopped before {urls[4]}, {urls[5]}" in messages


def test_a_poll_past_its_time_limit_records_the_silent_feed_as_timed_out(
    db, clock, black_hole, feed_server
):
    from .test_processes import FEED

    good = feed_server.set("/history.atom", FEED)
    silent = black_hole.url("/history.atom")
    started = time.monotonic()
    with make_client(30.0) as client:
        results = poll_all(db, client, [silent, good], clock(), 65536, until=started + 1.0)
    # Waiting for the silent feed would take the client's 30 s; the cut comes at the 1 s limit.
    # 2.5 s past it is a starved thread on a loaded 2-core machine (was 1.5 s).
    assert 0.9 <= time.monotonic() - started <= 1.0 + 2.5
    error = f"timed out fetching {silent} (ReadTimeout)"  # its timeout was cut to the limit
    assert [(r.url, r.outcome, r.error) for r in results] == [
        (silent, "error", error),
        (good, "baseline", None),
    ]
    rows = db._query("SELECT url, consecutive_failures, last_error FROM feeds ORDER BY id")
    assert rows == [
        {"url": silent, "consecutive_failures": 1, "last_error": error},
        {"url": good, "consecutive_failures": 0, "last_error": None},
    ]


def _wait_for_connections(hole: BlackHole, count: int, timeout: float = 2.0) -> int:
    deadline = time.monotonic() + timeout
    while len(hole.connections) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
    return len(hole.connections)


def _start_worker(env: dict) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []

    def read():
        with proc.stdout:
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def _stopping_seconds(lines: list[str]) -> float:
    """Seconds from the worker's "SIGTERM received" line to its "worker: stopped" line, by its
    own log clock: the span the budget governs. Raises AssertionError when either is missing."""
    stamps = {}
    for line in lines:
        for key in ("worker: SIGTERM received, stopping", "worker: stopped"):
            if line.endswith(key):
                stamps[key] = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    assert len(stamps) == 2, lines
    return (
        stamps["worker: stopped"] - stamps["worker: SIGTERM received, stopping"]
    ).total_seconds()


def _sigterm_and_time(proc: subprocess.Popen) -> float:
    """SIGTERM; seconds until the process exited (SIGKILL at 30 s, as Heroku does)."""
    started = time.monotonic()
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return time.monotonic() - started


def _assert_stopped_within_the_budget(elapsed: float, lines: list[str]) -> None:
    """The budget's promise, from the worker's signal handler to its "stopped" line by the
    worker's own clock; and Heroku's, from SIGTERM to the process's end by the test's clock.

    The test's clock also counts the signal's wait for the main thread and the interpreter's
    exit after "stopped", which no budget can cut; on a loaded CI machine one run took 13.5 s
    against the 12 s budget by that clock. Such seconds are what the default budget's 5 s
    below Heroku's 30 s SIGKILL are for; the process tests' 12 s budget leaves 18 s.

    The worker's log clock is the wall clock, which the machine may step: one run logged
    17.5 s between the two lines while the whole process, SIGTERM to exit, took 6.75 s by the
    test's monotonic clock. The true span is at most either figure, so the smaller one is held
    to the budget: a real overrun shows in both.
    """
    span = min(_stopping_seconds(lines), elapsed)
    assert span <= BUDGET_SECONDS, (span, elapsed, lines)
    assert elapsed < 30.0, (elapsed, lines)  # _sigterm_and_time sends SIGKILL at 30 s


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _store(database_url: str):
    return open_store(load_settings({"DATABASE_URL": database_url}))


@pytest.mark.slow
def test_sigterm_while_four_feeds_hang_exits_in_time_and_releases_the_lease_last(
    tmp_path, database_url, sendgrid, black_hole
):
    urls = [black_hole.url(f"/page{i}/history.atom") for i in range(4)]
    env = process_env(
        tmp_path,
        database_url,
        sendgrid,
        FEED_URLS=",".join(urls),
        POLL_INTERVAL_SECONDS="600",
        FEED_TIMEOUT_SECONDS="60",  # longer than the whole budget: the budget must cut it
        SHUTDOWN_BUDGET_SECONDS=str(int(BUDGET_SECONDS)),
    )
    proc, lines = _start_worker(env)
    try:
        _wait(lambda: len(black_hole.connections) >= 4, 30, "four hanging fetches")
        time.sleep(0.5)
        elapsed = _sigterm_and_time(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.2)  # the reader thread takes the last lines
    assert proc.returncode == 0, lines
    assert lines[-1].endswith("notifier.scheduler: worker: stopped"), lines
    _assert_stopped_within_the_budget(elapsed, lines)
    cut = [line for line in lines if "cut off by the shutdown" in line]
    assert sorted(url for url in urls for line in cut if f"poll {url}:" in line) == sorted(urls)
    assert not [line for line in lines if "Traceback" in line], lines

    store = _store(database_url)
    try:
        lease = table(store, "leases", "name")
        feeds = store._query("SELECT url, consecutive_failures, last_error FROM feeds ORDER BY id")
    finally:
        store.close()
    now = datetime.now(UTC)
    # Released (expired now, so another worker takes it at its next tick), and the last poll's
    # time kept: the next poller waits for the interval instead of polling at once.
    assert [(r["name"], r["expires_at"] <= now, r["last_run_at"] is not None) for r in lease] == [
        ("poller", True, True)
    ]
    # A fetch cut off by the shutdown is not the feed's failure.
    assert feeds == [{"url": u, "consecutive_failures": 0, "last_error": None} for u in urls]


@pytest.mark.slow
# SIGTERM comes 1 s into the request. Every request's timeout is capped at the budget less the
# 5 s reserve from its start (7 s at a 12 s budget): the 202 comes 3.5 s in, well before that
# cut, or only after the whole budget.
@pytest.mark.parametrize("answer_after", [3.5, 14.0], ids=["202-in-budget", "202-too-late"])
def test_sigterm_mid_send_exits_in_time_and_sends_nothing_twice_unflagged(
    tmp_path, database_url, sendgrid, answer_after
):
    emails = seed(database_url, 30)
    sendgrid.latency_seconds = answer_after
    env = process_env(
        tmp_path,
        database_url,
        sendgrid,
        SEND_BATCH_SIZE="10",
        SENDGRID_TIMEOUT_SECONDS="60",  # longer than the budget: the budget must cut it
        SHUTDOWN_BUDGET_SECONDS=str(int(BUDGET_SECONDS)),
        FEED_URLS="http://127.0.0.1:9/history.atom",
        POLL_INTERVAL_SECONDS="600",
    )
    started: list[float] = []  # every request the fake began to answer
    answer = sendgrid._wait

    def record_and_wait(seconds: float) -> None:
        started.append(time.monotonic())
        answer(seconds)

    sendgrid._wait = record_and_wait
    proc, lines = _start_worker(env)
    try:
        _wait(lambda: started, 30, "a send")
        time.sleep(1.0)
        elapsed = _sigterm_and_time(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    sendgrid.latency_seconds = 0.0
    assert proc.returncode == 0, lines
    time.sleep(0.2)
    assert lines[-1].endswith("notifier.scheduler: worker: stopped"), lines
    _assert_stopped_within_the_budget(elapsed, lines)

    store = _store(database_url)
    rows = table(store, "deliveries")
    store.close()
    answered = [r for r in rows if r["state"] == "sent"]
    if answer_after < BUDGET_SECONDS - 5:
        # The 202 came within the budget: its rows were written as sent before the exit.
        assert [(r["state"], r["attempts"], r["possible_duplicate"]) for r in answered] == [
            ("sent", 1, 0)
        ] * 10
    else:
        # The answer did not come in time: the request may have been taken, so its rows are
        # flagged and will be sent again (at least once), never silently twice.
        assert answered == []
        flagged = sorted(r["email"] for r in rows if r["possible_duplicate"])
        assert len(flagged) == 10, rows
    assert len(started) == 1  # nothing new was started after SIGTERM

    # A restarted worker sends the rest; whoever gets the mail twice carries the flag.
    _wait(lambda: len(sendgrid.accepted_requests()) >= 1, 40, "the slow request to land")
    proc, lines = _start_worker(env)
    try:
        _wait(lambda: _all_sent(database_url), 60, f"every row sent: {lines}")
    finally:
        _sigterm_and_time(proc)
    store = _store(database_url)
    rows = {r["email"]: r for r in table(store, "deliveries")}
    store.close()
    got = Counter(r["email"] for r in sendgrid.accepted_recipients())
    assert set(got) == set(emails)
    assert {r["state"] for r in rows.values()} == {"sent"}
    twice = {e for e, n in got.items() if n > 1}
    assert twice <= {e for e, r in rows.items() if r["possible_duplicate"]}
    if answer_after < BUDGET_SECONDS - 5:
        assert twice == set()
    else:
        assert len(twice) == 10


def _all_sent(database_url: str) -> bool:
    store = _store(database_url)
    try:
        return store._scalar("SELECT COUNT(*) AS n FROM deliveries WHERE state <> 'sent'") == 0
    finally:
        store.close()
