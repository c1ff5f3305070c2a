"""One poller among several workers: the lease, and a takeover when the poller dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from .test_processes import FEED, Output

ROOT = Path(__file__).resolve().parents[1]
TTL = timedelta(seconds=30)


def test_the_lease_is_exclusive_renewable_and_passes_on_when_it_runs_out(db, clock):
    first = db.acquire_lease("poller", "a", clock(), TTL)
    assert first == {
        "name": "poller",
        "owner": "a",
        "expires_at": clock() + TTL,
        "last_run_at": None,
    }
    assert db.acquire_lease("poller", "b", clock(), TTL) is None
    db.mark_lease_run("poller", "a", clock())

    clock.advance(seconds=10)
    renewed = db.acquire_lease("poller", "a", clock(), TTL)
    assert renewed["expires_at"] == clock() + TTL
    assert renewed["last_run_at"] == clock() - timedelta(seconds=10)

    clock.advance(seconds=29)
    assert db.acquire_lease("poller", "b", clock(), TTL) is None
    clock.advance(seconds=1)
    taken = db.acquire_lease("poller", "b", clock(), TTL)
    # The last poll's time survives the handover: the new poller waits for the interval since
    # the last poll by anyone instead of polling at once (issue 16).
    last_run = clock() - timedelta(seconds=40)
    assert taken == {
        "name": "poller",
        "owner": "b",
        "expires_at": clock() + TTL,
        "last_run_at": last_run,
    }
    assert db.release_lease("poller", "a", clock()) == 0
    assert db.release_lease("poller", "b", clock()) == 1
    # Released = expired now; the row, and with it last_run_at, stays.
    assert db._query("SELECT * FROM leases") == [
        {"name": "poller", "owner": "b", "expires_at": clock(), "last_run_at": last_run}
    ]
    assert db.release_lease("poller", "b", clock()) == 0
    assert db.acquire_lease("poller", "a", clock(), TTL) == {
        "name": "poller",
        "owner": "a",
        "expires_at": clock() + TTL,
        "last_run_at": last_run,
    }


def _worker(
    tmp_path: Path, database_url: str, feed_url: str, name: str, interval: int = 4
) -> tuple:
    """A real `flask worker` process polling `feed_url` every `interval` s; (proc, Output)."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "INSTANCE_PATH": str(tmp_path / name),
        "DATABASE_URL": database_url,
        "FEED_URLS": feed_url,
        "POLL_INTERVAL_SECONDS": str(interval),
        "DISPATCH_INTERVAL_SECONDS": "60",
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, Output(proc)


@pytest.mark.slow
def test_two_workers_poll_as_one_and_the_survivor_takes_over_within_an_interval(
    tmp_path, settings, feed_server
):
    feed_url = feed_server.set("/history.atom", FEED)
    a, out_a = _worker(tmp_path, settings.database_url, feed_url, "a")
    b, out_b = _worker(tmp_path, settings.database_url, feed_url, "b")
    try:
        out_a.wait_for("worker: started")
        out_b.wait_for("worker: started")
        time.sleep(9)
        pollers = [
            (proc, out)
            for proc, out in ((a, out_a), (b, out_b))
            if any("is now the poller" in line for line in out.lines)
        ]
        assert len(pollers) == 1, out_a.lines + out_b.lines
        poller, poller_out = pollers[0]
        other_out = out_b if poller is a else out_a
        polls = [line for line in poller_out.lines if f"poll {feed_url}:" in line]
        assert 2 <= len(polls) <= 4  # one poll per 4 s interval, not one per worker
        assert not [line for line in other_out.lines if f"poll {feed_url}:" in line]

        os.kill(poller.pid, signal.SIGKILL)
        killed = time.monotonic()
        other_out.wait_for("is now the poller", timeout=10)
        took_over = time.monotonic() - killed
        other_out.wait_for(f"poll {feed_url}:", timeout=5)
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    assert took_over < 4  # within one poll interval


@pytest.mark.slow
def test_a_stopping_worker_hands_the_poller_lease_over_at_once(tmp_path, settings, feed_server, db):
    feed_url = feed_server.set("/history.atom", FEED)
    proc, out = _worker(tmp_path, settings.database_url, feed_url, "a")
    try:
        out.wait_for("is now the poller")
        assert [r["name"] for r in db._query("SELECT name FROM leases")] == ["poller"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    out.wait_for("worker: stopped", timeout=5)
    # Expired at once (no waiting for the ttl), the row and the last poll's time kept.
    (lease,) = db._query("SELECT * FROM leases")
    assert lease["expires_at"] <= datetime.now(UTC)
    assert lease["last_run_at"] is not None
