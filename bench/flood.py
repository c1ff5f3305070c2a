"""Flood benchmark: sign-ups at full speed through gunicorn while an incident is detected.

    .venv/bin/python bench/flood.py [--seconds 60] [--clients 4] [--workers 2]
                                    [--subscribers 400] [--incident-at 0.3]

Runs what production runs, on one SQLite file: the web process as the Procfile starts it
(gunicorn, sync workers, access log, --graceful-timeout 25) and the real `flask --app app
worker` (poller + dispatcher, DISPATCH_INTERVAL_SECONDS left at its default), sending through
a fake SendGrid in this process (50 ms per request, schema validation off so the fake's own CPU
does not count) and polling an Atom feed served by this process. Client processes post
sign-ups of new addresses as fast as the app answers (RATE_LIMIT_SUBSCRIBE raised,
FORM_MIN_FILL_SECONDS=0, each client with its form's CSRF token and session cookie, as
bench/web.py does), half in German, half in English. `--incident-at` of the way into the
flood, a new incident appears in the feed for the `--subscribers` confirmed subscribers.

Prints: detection (the worker's `changes.detected_at`) -> first and last 202 of the incident
(the fake's clock, the same machine clock), the confirmation requests and confirmations
accepted, the sign-ups done, and what was still pending when the incident was done. The goal
(issue 14): the incident accepted within 5 s of detection during the flood.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.web import _form, _seed_catalogue, _start, machine  # noqa: E402
from notifier.store.base import TS_FORMAT  # noqa: E402
from tests.fake_sendgrid import FakeSendGrid  # noqa: E402
from tests.feedgen import Incident, Page, Post, atom  # noqa: E402
from tests.servers import LocalServer  # noqa: E402

BIN = Path(sys.executable).parent
ATOM = {"Content-Type": "application/atom+xml; charset=utf-8"}
SECRET = "bench-secret-key-bench-secret-key-bench-secret"
OLD = Incident(
    key="old000000001",
    title="Resolved long ago",
    posts=(Post("resolved", datetime(2026, 1, 2, 10, tzinfo=UTC), "Fixed."),),
)


class TimedSendGrid(FakeSendGrid):
    """The fake SendGrid, noting when (time.time()) it accepted each request and for what."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.accepted_at: list[tuple[float, str, int]] = []

    def _accept(self, request) -> None:
        super()._accept(request)
        category = (request.body.get("categories") or ["?"])[0]
        with self._lock:
            self.accepted_at.append((time.time(), category, len(request.body["personalizations"])))


# --- setup ---------------------------------------------------------------------------------
def seed_subscribers(db: Path, count: int) -> None:
    """`count` confirmed subscribers to every component, half German, half English."""
    now = datetime.now(UTC).strftime(TS_FORMAT)
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO subscribers (email, language, timezone, state, link_nonce, "
            "created_at, updated_at, confirmed_at) VALUES (?, ?, ?, 'confirmed', ?, ?, ?, ?)",
            [
                (f"reader{i}@example.com", *(("de", "Europe/Berlin"), ("en", "UTC"))[i % 2],
                 f"nonce{i}", now, now, now)
                for i in range(count)
            ],
        )  # fmt: skip


def env_for(instance: Path, **extra: str) -> dict:
    env = dict(os.environ)
    env.update(
        INSTANCE_PATH=str(instance),
        DATABASE_URL=f"sqlite:///{instance / 'notifier.db'}",
        SECRET_KEY=SECRET,
        PUBLIC_BASE_URL="https://status-notify.example.com",
        RATE_LIMIT_SUBSCRIBE="100000000 per minute",
        FORM_MIN_FILL_SECONDS="0",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def start_web(env: dict, workers: int, log: Path) -> tuple[subprocess.Popen, int]:
    """gunicorn as the Procfile's web line runs it (bench/web.py's starter; a minute to start:
    the worker and clients load the machine)."""
    return _start("app:create_app()", workers, env, log, wait_seconds=60)


def start_worker(env: dict, log: Path) -> subprocess.Popen:
    """`flask --app app worker`, the Procfile's worker line."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(BIN / "flask"), "--app", "app", "worker"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def wait_for(predicate, timeout: float, what: str, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")


def query(db: Path, sql: str, params=()) -> list[tuple]:
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute(sql, params).fetchall()


def db_time(text: str) -> float:
    return datetime.strptime(text, TS_FORMAT).replace(tzinfo=UTC).timestamp()


# --- load ----------------------------------------------------------------------------------
def client(port: int, client_id: int, start: float, end: float, results) -> None:
    """Sign up new addresses back to back until `end`; puts (done, errors, latencies)."""
    cookie, fields = _form(port)
    language, zone = (("de", "Europe/Berlin"), ("en", "UTC"))[client_id % 2]
    done, errors, i, latencies = 0, 0, 0, []
    while time.monotonic() < start:
        time.sleep(0.001)
    while (t0 := time.monotonic()) < end:
        i += 1
        body = urlencode(
            {**fields, "email": f"flood-{client_id}-{i}@example.com", "language": language,
             "timezone": zone, "scope": "all", "notify_incidents": "y",
             "notify_maintenance": "y"}
        )  # fmt: skip
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/subscribe", body, headers)
            response = conn.getresponse()
            response.read()
            conn.close()
            ok = response.status == 303
        except OSError:
            ok = False
        done += ok
        errors += not ok
        latencies.append(time.monotonic() - t0)
    results.put((done, errors, latencies))


# --- the run -------------------------------------------------------------------------------
def run(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        instance = Path(tmp) / "instance"
        instance.mkdir()
        db = instance / "notifier.db"
        _seed_catalogue(instance)  # the form as big as in real use; creates the schema
        seed_subscribers(db, args.subscribers)
        feed = LocalServer().start()
        page = Page(url=feed.base_url)  # the JSON API enrichment asks here too: a quick 404
        feed_url = feed.set("/history.atom", atom(page, [OLD]), headers=ATOM)
        fake = TimedSendGrid(latency_seconds=args.latency, schema_path=None).start()
        env = env_for(
            instance,
            FEED_URLS=feed_url,
            POLL_INTERVAL_SECONDS=str(args.poll_interval),
            EMAIL_BACKEND="sendgrid",
            SENDGRID_API_KEY=fake.api_key,
            SENDGRID_API_HOST=fake.base_url,
        )
        web, port = start_web(env, args.workers, Path(tmp) / "web.log")
        worker = start_worker(env, Path(tmp) / "worker.log")
        try:
            wait_for(
                lambda: query(db, "SELECT 1 FROM feeds WHERE url = ? AND baseline_at IS NOT NULL",
                              [feed_url]),
                60, "the worker's baseline poll",
            )  # fmt: skip
            results = multiprocessing.Queue()
            start = time.monotonic() + 1.0
            end = start + args.seconds
            procs = [
                multiprocessing.Process(target=client, args=(port, n, start, end, results))
                for n in range(args.clients)
            ]
            for p in procs:
                p.start()
            flood_started = time.time() + 1.0
            time.sleep(1.0 + args.seconds * args.incident_at)
            posted = datetime.now(UTC)
            new = Incident(
                key="flood0000001",
                title="Delayed SMS delivery",
                posts=(Post("investigating", posted, "We are looking into it."),),
            )
            feed.set("/history.atom", atom(page, [new, OLD]), headers=ATOM)
            published = time.time()
            done, errors, latencies = 0, 0, []
            for _ in procs:
                d, e, lat = results.get()
                done, errors, latencies = done + d, errors + e, latencies + lat
            for p in procs:
                p.join()
            flood_ended = time.time()

            def incident_done():
                rows = query(
                    db,
                    "SELECT COUNT(*), SUM(d.state IN ('pending', 'sending')) FROM deliveries d "
                    "JOIN notifications n ON n.id = d.notification_id WHERE n.kind = 'incident'",
                )
                return rows[0][0] == args.subscribers and rows[0][1] == 0

            wait_for(incident_done, args.wait, "the incident's deliveries")
            pending = query(
                db,
                "SELECT n.kind, COUNT(*) FROM deliveries d JOIN notifications n "
                "ON n.id = d.notification_id WHERE d.state IN ('pending', 'sending') "
                "GROUP BY n.kind",
            )
            [(detected,)] = query(
                db,
                "SELECT c.detected_at FROM changes c JOIN incidents i ON i.id = c.incident_id "
                "WHERE i.key = ?",
                [new.key],
            )
            signups = query(db, "SELECT COUNT(*) FROM subscribers WHERE state = 'pending'")[0][0]
        finally:
            for process in (web, worker):
                process.terminate()
            for process in (web, worker):
                try:
                    process.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    process.kill()
            fake.stop()
            feed.stop()
        detected_at = db_time(detected)
        incident = [t for t, c, _n in fake.accepted_at if c == "incident"]
        during = [
            (t, n) for t, c, n in fake.accepted_at if c == "confirmation" and t <= flood_ended
        ]
        before_incident = [
            (t, n) for t, c, n in fake.accepted_at if c == "confirmation" and t <= max(incident)
        ]
        return {
            "signups": done,
            "signup_errors": errors,
            "signups_stored": signups,
            "signup_p50_ms": statistics.median(latencies) * 1000 if latencies else 0,
            "published_to_detected_s": detected_at - published,
            "detected_to_first_202_s": min(incident) - detected_at,
            "detected_to_last_202_s": max(incident) - detected_at,
            "incident_requests": len(incident),
            "confirmation_requests_during_flood": len(during),
            "confirmations_sent_during_flood": sum(n for _t, n in during),
            "confirmation_requests_before_last_incident_202": len(before_incident),
            "pending_when_incident_done": dict(pending),
            "flood_seconds": flood_ended - flood_started,
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the flood")
    parser.add_argument("--clients", type=int, default=4, help="sign-up client processes")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", 2)))
    parser.add_argument("--subscribers", type=int, default=400, help="the incident's readers")
    parser.add_argument("--incident-at", type=float, default=0.3, help="fraction of the flood")
    parser.add_argument("--poll-interval", type=int, default=4, help="POLL_INTERVAL_SECONDS")
    parser.add_argument("--latency", type=float, default=0.05, help="fake SendGrid s/request")
    parser.add_argument("--wait", type=float, default=600, help="max s to wait for the incident")
    args = parser.parse_args(argv)
    command = "python bench/flood.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    print(f"# {command.strip()}  ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
    print(f"# machine: {machine()}")
    print(
        f"# {args.clients} sign-up clients for {args.seconds:g} s against gunicorn "
        f"--workers {args.workers}; 1 worker; fake SendGrid {args.latency * 1000:.0f} ms/request; "
        f"incident for {args.subscribers} subscribers at {args.incident_at:.0%} of the flood"
    )
    r = run(args)
    print(f"sign-ups done:                      {r['signups']:,} in {r['flood_seconds']:.1f} s "
          f"({r['signups'] / r['flood_seconds']:.0f}/s, p50 {r['signup_p50_ms']:.0f} ms, "
          f"{r['signup_errors']} errors; {r['signups_stored']:,} pending rows stored)")  # fmt: skip
    print(f"feed change -> detection:           {r['published_to_detected_s']:.2f} s")
    print(f"detection -> first 202 of incident: {r['detected_to_first_202_s']:.2f} s")
    print(f"detection -> last 202 of incident:  {r['detected_to_last_202_s']:.2f} s "
          f"({r['incident_requests']} request(s); goal <= 5 s)")  # fmt: skip
    requests, sent = r["confirmation_requests_during_flood"], r["confirmations_sent_during_flood"]
    print(f"confirmation requests (flood):      {requests:,} carrying {sent:,} confirmations "
          f"({sent / max(1, requests):.0f} per request)")  # fmt: skip
    print(f"confirmation requests before the incident's last 202: "
          f"{r['confirmation_requests_before_last_incident_202']:,}")  # fmt: skip
    print(f"still pending when the incident was done: {r['pending_when_incident_done']}")


if __name__ == "__main__":
    main()
