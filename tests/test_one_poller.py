"""One poller among three worker processes when the feed is slow (issue 16, item 3).

The poller lease used to last half an interval and was renewed only by the next tick, which
APScheduler skips while a slow poll runs: another worker took the lease mid-poll and fetched at
once, so two fetches were in flight exactly when the status page was struggling.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path

import pytest

from notifier.store import open_store

from .test_poller_lease import _worker as lease_worker
from .test_processes import FEED

ROOT = Path(__file__).resolve().parents[1]
# Seconds; 6 intervals take 24 s. Not less: the worker ticks every max(1 s, interval / 4),
# while poller_timing's early margin assumes interval / 4, so below 4 s a tick late by a
# fraction of a second on a loaded host would already break the 1.4 x bound (review).
INTERVAL = 4.0
# Intervals watched (was 10). The bug this guards (another worker takes the lease mid-poll)
# shows in every interval of a slow feed: SLOW > the old half-interval lease; six intervals
# still include five handover chances after the first poll, and five gaps.
INTERVALS = 6
SLOW = 0.75 * INTERVAL  # the feed answers after three quarters of an interval

pytestmark = pytest.mark.slow


class _SlowFeed(BaseHTTPRequestHandler):
    server: SlowFeedServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        started = time.monotonic()
        if self.path != "/history.atom":  # the JSON API (enrichment): not a feed fetch
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        # The poll this fetch belongs to, by the product's own record: poll_tick marks the
        # lease's last_run_at (its clock) before it polls.
        mark = self.server.poll_mark()
        time.sleep(self.server.delay_seconds)
        body = FEED.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/atom+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        with self.server.lock:
            self.server.fetches.append((started, time.monotonic()))
            self.server.marks.append((started, mark))


class SlowFeedServer(ThreadingHTTPServer):
    """Serves the feed after `delay_seconds`; records (start, end) of every feed fetch, and
    (start, the poller lease's last_run_at) when given the workers' settings."""

    daemon_threads = True

    def __init__(self, delay_seconds: float = SLOW, settings=None):
        super().__init__(("127.0.0.1", 0), _SlowFeed)
        self.delay_seconds = delay_seconds
        self.settings = settings
        self.lock = threading.Lock()
        self.fetches: list[tuple[float, float]] = []
        self.marks: list[tuple[float, datetime | None]] = []
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/history.atom"

    def snapshot(self) -> list[tuple[float, float]]:
        with self.lock:
            return sorted(self.fetches)

    def poll_mark(self) -> datetime | None:
        """The poller lease's last_run_at now; None without settings."""
        if self.settings is None:
            return None
        store = open_store(self.settings)
        try:
            row = store._query_one("SELECT last_run_at FROM leases WHERE name = 'poller'")
        finally:
            store.close_thread_connection()
        return row and row["last_run_at"]

    def poll_marks(self) -> list[datetime | None]:
        with self.lock:
            return [mark for _, mark in sorted(self.marks, key=lambda m: m[0])]

    def close(self):
        self.shutdown()
        self.server_close()


def _worker(tmp_path: Path, database_url: str, feed_url: str, name: str):
    return lease_worker(tmp_path, database_url, feed_url, name, interval=int(INTERVAL))


def test_three_workers_and_a_slow_feed_fetch_exactly_once_per_interval(tmp_path, settings):
    server = SlowFeedServer(settings=settings)
    workers = [_worker(tmp_path, settings.database_url, server.url, n) for n in "abc"]
    try:
        for _, out in workers:
            out.wait_for("worker: started", timeout=60)
        # INTERVALS polls (the start-up one is the first), each answered: waited for by the
        # feed's own count, not a computed time, so a loaded machine is slower, not wrong.
        # Then one slow answer more, so a fetch overlapping the last one would be recorded.
        deadline = time.monotonic() + 60 + 2 * INTERVALS * INTERVAL
        while len(server.snapshot()) < INTERVALS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(server.snapshot()) >= INTERVALS, ("too few polls", server.snapshot())
        first = server.snapshot()[0][0]
        time.sleep(SLOW + 0.5)
        fetches = server.snapshot()
        marks = server.poll_marks()
    finally:
        for proc, _ in workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in workers:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.close()
    lines = [line for _, out in workers for line in out.lines]
    starts = [start - first for start, _ in fetches]
    # Never two fetches at once: each starts after the previous one was answered.
    overlaps = [(a, b) for a, b in pairwise(fetches) if b[0] < a[1]]
    assert overlaps == [], (starts, lines)
    # Each fetch belongs to a poll of its own: the poller marked a new last_run_at before it.
    assert len(marks) == len(fetches) and None not in marks, (marks, starts, lines)
    assert len(set(marks)) == len(marks), (marks, starts, lines)
    # One poll per interval, by the times the poller decided to poll (its marks). The fetches'
    # arrival times were the measure before; on a loaded machine they lag the decision by
    # seconds when a fresh worker fetches for the first time.
    since = [(mark - marks[0]).total_seconds() for mark in marks]
    gaps = [b - a for a, b in pairwise(since)]
    assert len(gaps) >= INTERVALS - 1, (since, starts, lines)
    # Never early: poll_tick's own rule, a poll is due half a tick (INTERVAL / 8) before the
    # interval has passed, exactly (the marks are the poller's clock).
    assert all(gap >= 0.875 * INTERVAL for gap in gaps), (gaps, lines)
    # Never late: the interval, a tick's wait, and 0.6 s for a late tick. Counting the interval
    # from a slow poll's end instead would give 1.75 x. Not the first gap: a fresh worker's
    # first poll (imports, first connections, the baseline) can itself outlast the interval
    # on a loaded machine (6.0 s measured under load 11), and no poll starts while one runs.
    assert all(gap <= 1.4 * INTERVAL for gap in gaps[1:]), (gaps, lines)
    pollers = [line for line in lines if "is now the poller" in line]
    assert len(pollers) == 1, lines  # nobody took the lease over mid-poll
    assert not [line for line in lines if "Traceback" in line], lines


def test_a_new_poller_after_a_handover_waits_for_the_interval_since_the_last_poll(
    tmp_path, settings
):
    server = SlowFeedServer(delay_seconds=0.2)  # quick: a poll at once would show
    a, out_a = _worker(tmp_path, settings.database_url, server.url, "a")
    b = None
    try:
        out_a.wait_for("is now the poller", timeout=60)
        deadline = time.monotonic() + 30
        while len(server.snapshot()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        b, out_b = _worker(tmp_path, settings.database_url, server.url, "b")
        out_b.wait_for("worker: started", timeout=60)
        # Stop the poller just after a fetch was answered: it hands the lease over at once.
        count = len(server.snapshot())
        while len(server.snapshot()) == count and time.monotonic() < deadline + 30:
            time.sleep(0.02)
        a.send_signal(signal.SIGTERM)
        assert a.wait(30) == 0
        out_b.wait_for("is now the poller", timeout=2 * INTERVAL)
        while len(server.snapshot()) < count + 2 and time.monotonic() < deadline + 60:
            time.sleep(0.05)
    finally:
        for proc in (p for p in (a, b) if p is not None):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        server.close()
    starts = [start for start, _ in server.snapshot()]
    last_by_a, first_by_b = starts[count], starts[count + 1]
    # Not at once on taking over: one interval after the last poll (by the other worker).
    assert 0.85 * INTERVAL <= first_by_b - last_by_a <= 1.4 * INTERVAL, (starts, out_b.lines)
