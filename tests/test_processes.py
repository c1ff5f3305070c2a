"""Real processes: honcho runs the Procfile (gunicorn web + worker); the worker stops on SIGTERM."""

from __future__ import annotations

import html
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow

FEED = """<?xml version="1.0" encoding="UTF-8"?>
<feed xml:lang="en-US" xmlns="http://www.w3.org/2005/Atom">
  <id>tag:status.example.com,2005:/history</id>
  <title>Example Status - Incident History</title>
  <updated>2026-11-26T10:05:00Z</updated>
  <entry>
    <id>tag:status.example.com,2005:Incident/1</id>
    <published>2026-11-26T10:05:00Z</published>
    <updated>2026-11-26T10:05:00Z</updated>
    <link rel="alternate" type="text/html" href="https://status.example.com/incidents/abc123def456"/>
    <title>Delayed SMS delivery</title>
    <content type="html">{content}</content>
  </entry>
</feed>
""".format(
    content=html.escape(
        "<p><small>Nov <var data-var='date'>26</var>, <var data-var='time'>10:05</var> UTC"
        "</small><br><strong>Investigating</strong> - We are looking into it.</p>",
        quote=False,
    )
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(tmp_path: Path, **extra: str) -> dict:
    return {
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'instance' / 'notifier.db'}",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


class Output:
    """Collects a process's output lines on a thread so the test can wait for a line."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc):
        with proc.stdout:
            for line in proc.stdout:
                self.lines.append(line.rstrip("\n"))

    def ended(self, timeout: float = 30) -> None:
        """Wait for the end of the output (the process and every holder of its pipe exited):
        then `lines` is complete, however late the reader thread was scheduled."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the output did not end"

    def wait_for(self, needle: str, timeout: float = 30, count: int = 1) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if needle in line]
            if len(found) >= count:
                return found
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} x{count} not seen; output:\n" + "\n".join(self.lines))


def start(cmd: list[str], env: dict) -> tuple[subprocess.Popen, Output]:
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return proc, Output(proc)


def stop(proc: subprocess.Popen, timeout: float = 30) -> int:
    """SIGTERM to the parent only, as Heroku/honcho do; it forwards to its children."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def test_honcho_runs_web_and_worker_from_the_procfile(tmp_path, feed_server):
    feed_url = feed_server.set("/history.atom", FEED)
    port = free_port()
    env = env_for(tmp_path, PORT=str(port), FEED_URLS=feed_url, POLL_INTERVAL_SECONDS="2")
    proc, out = start([str(BIN / "honcho"), "start", "web", "worker"], env)
    try:
        out.wait_for("worker: started")
        polls = out.wait_for(f"poll {feed_url}:", count=2)
        assert "baseline recorded (1 entries, nothing sent)" in polls[0]
        assert "body unchanged since last poll" in polls[1]
        deadline = time.monotonic() + 20
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        # Signed tokens in link paths never reach the access log (Procfile's logger class).
        httpx.get(f"http://127.0.0.1:{port}/preferences/SECRET.TOKEN.VALUE", timeout=5)
        access = out.wait_for('"GET /preferences/… HTTP/1.1" 404')
        assert not [line for line in out.lines if "SECRET.TOKEN.VALUE" in line], access
        # gunicorn.conf.py's post_worker_init ran in each of the Procfile's 2 web workers.
        out.wait_for("garbage collector: froze", count=2, timeout=60)
        body = health.json()
        assert health.status_code == 200
        assert body["database"] == "ok"
        assert [f["feed"] for f in body["feeds"]] == ["feed-1"]  # URLs only for ops users
        assert body["feeds"][0]["consecutive_failures"] == 0
        assert 0 <= body["feeds"][0]["last_success_age_seconds"] < 30
    finally:
        stop(proc)
    # honcho itself exits 128+SIGTERM; what matters is that both children shut down cleanly.
    out.ended()
    out.wait_for("web.1 stopped (rc=0)", timeout=5)
    out.wait_for("worker.1 stopped (rc=0)", timeout=5)
    assert not [line for line in out.lines if "Traceback" in line], "\n".join(out.lines)


def test_offline_worker_logs_one_clear_error_per_poll_and_keeps_going(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/history.atom"  # nothing listens there
    env = env_for(tmp_path, FEED_URLS=dead, POLL_INTERVAL_SECONDS="1")
    proc, out = start([str(BIN / "flask"), "--app", "app", "worker"], env)
    try:
        errors = out.wait_for("poll failed:", count=3)
    finally:
        stop(proc)
    out.ended()
    assert all(f"cannot connect to {dead}" in line for line in errors)
    assert not [line for line in out.lines if "Traceback" in line]
    db = sqlite3.connect(tmp_path / "instance" / "notifier.db")
    failures, error = db.execute(
        "SELECT consecutive_failures, last_error FROM feeds WHERE url = ?", [dead]
    ).fetchone()
    assert failures >= 3
    assert error.startswith(f"cannot connect to {dead}")


def test_worker_stops_within_25_seconds_of_sigterm_during_a_slow_poll(tmp_path, feed_server):
    feed_url = feed_server.set("/history.atom", FEED, delay_seconds=4)
    env = env_for(
        tmp_path, FEED_URLS=feed_url, POLL_INTERVAL_SECONDS="60", FEED_TIMEOUT_SECONDS="8"
    )
    proc, out = start([str(BIN / "flask"), "--app", "app", "worker"], env)
    try:
        out.wait_for("worker: started")
        deadline = time.monotonic() + 10
        while not feed_server.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert feed_server.requests, "the worker never polled"
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(30)
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 0
    assert elapsed < 25
    out.ended()
    out.wait_for("worker: stopped", timeout=2)
    # The poll in flight finished and was recorded, not cut off half-way.
    out.wait_for(f"poll {feed_url}: baseline recorded", timeout=2)


def test_many_processes_starting_at_once_on_a_fresh_database_all_succeed(tmp_path):
    env = env_for(tmp_path)
    procs = [
        subprocess.Popen(
            [str(BIN / "flask"), "--app", "app", "db", "upgrade"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(6)
    ]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, outputs
    db = sqlite3.connect(tmp_path / "instance" / "notifier.db")
    applied = [r[0] for r in db.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    assert applied == sorted(set(applied))
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
