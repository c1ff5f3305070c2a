"""Latency benchmark: a change the worker detects -> the first 202 at SendGrid.

    .venv/bin/python bench/latency.py                        # SQLite, 7 trials
    .venv/bin/python bench/latency.py --database postgres    # needs TEST_DATABASE_URL (admin)
    .venv/bin/python bench/latency.py --compare e9ed507      # before/after in one run

One real `flask --app app worker` process with the product's settings (DISPATCH_INTERVAL_SECONDS
5 unless --dispatch-interval says otherwise), a Statuspage-shaped feed served over local HTTP
and the fake SendGrid (tests/fake_sendgrid.py, the official library talks to it) in this
process, which stamps each accepted request's arrival. At a random moment (0-3 s after the
previous trial's mail) the feed gains a new incident. Per trial: detection (the `changes` row's
detected_at, the worker's clock reading for the poll that saw it) -> the first 202, and the feed
edit -> the first 202 (adds the wait for the next poll). Prints every trial, median and max;
with --compare REV, first the same trials against the worker of REV (exported with git
archive; same database schema assumed) and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fanout import Database, _cpu, worker_env  # noqa: E402
from notifier.settings import load_settings  # noqa: E402
from notifier.store import open_store  # noqa: E402
from tests.fake_sendgrid import FakeSendGrid  # noqa: E402
from tests.helpers import add_subscriber, atom  # noqa: E402
from tests.servers import LocalServer  # noqa: E402


class StampingSendGrid(FakeSendGrid):
    """The fake SendGrid, recording time.time() of every accepted request (its 202 follows)."""

    def __init__(self, **options):
        super().__init__(**options)
        self.accepted_at: list[float] = []

    def _accept(self, request) -> None:
        super()._accept(request)
        with self._lock:
            self.accepted_at.append(time.time())


def _entry(key: str, when: datetime) -> dict:
    return {
        "key": key,
        "title": f"Delayed SMS delivery ({key})",
        "updates": [(when, "Investigating", "We are looking into it.")],
    }


def seed(url: str, subscribers: int) -> None:
    store = open_store(load_settings({"DATABASE_URL": url}))
    store.upgrade()
    now = datetime.now(UTC)
    with store.write():
        for i in range(subscribers):
            add_subscriber(
                store, f"reader{i:03d}@example.com", now=now, language="de" if i % 2 else "en"
            )
    store.close()


def detected_at(store, key: str) -> datetime | None:
    row = store._query_one(
        "SELECT c.detected_at FROM changes c JOIN incidents i ON i.id = c.incident_id "
        "WHERE i.key = ?",
        [key],
    )
    return row["detected_at"] if row else None


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.005)


def run(args, tmp: Path, admin_url: str | None, code: Path = ROOT) -> list[dict]:
    """The trials against a worker running the checkout at `code`."""
    fake = StampingSendGrid(schema_path=None).start()
    feeds = LocalServer().start()
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    entries = [_entry("baseline0001", base)]
    feed_url = feeds.set("/history.atom", atom(entries))
    trials = []
    with Database(args.database, tmp, admin_url) as url:
        seed(url, args.subscribers)
        env = {
            "PATH": os.environ["PATH"],
            **worker_env(tmp, url, fake),
            "FEED_URLS": feed_url,
            "POLL_INTERVAL_SECONDS": str(args.poll_interval),
            "DISPATCH_INTERVAL_SECONDS": str(args.dispatch_interval),
            "PYTHONUNBUFFERED": "1",
        }
        log = (tmp / "worker.log").open("w")
        worker = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "worker"],
            cwd=code,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        store = open_store(load_settings({"DATABASE_URL": url}))
        rng = random.Random(args.seed)
        try:
            _wait(
                lambda: detected_at(store, "baseline0001") is None and _polled(store),
                60,
                "baseline",
            )
            for n in range(args.trials):
                time.sleep(rng.uniform(0, 3))
                key = f"trial{n:03d}{uuid.uuid4().hex[:6]}"
                before = len(fake.accepted_at)
                entries.insert(0, _entry(key, datetime.now(UTC).replace(second=0, microsecond=0)))
                edited = time.time()
                feeds.set("/history.atom", atom(entries))
                _wait(lambda before=before: len(fake.accepted_at) > before, 60, f"trial {n}")
                first = fake.accepted_at[before]
                detected = _wait(lambda key=key: detected_at(store, key), 10, "the change row")
                _wait(
                    lambda want=args.subscribers * (n + 1): len(fake.accepted_recipients()) >= want,
                    60,
                    "every mail of the trial",
                )
                trials.append(
                    {"detect_to_202": first - detected.timestamp(), "edit_to_202": first - edited}
                )
                print(
                    f"trial {n + 1}: detection -> first 202 {trials[-1]['detect_to_202']:.3f} s"
                    f" (feed edit -> first 202 {trials[-1]['edit_to_202']:.3f} s)",
                    flush=True,
                )
        finally:
            worker.terminate()
            worker.wait(30)
            log.close()
            store.close()
            fake.stop()
            feeds.stop()
    return trials


def _polled(store) -> bool:
    return bool(store._scalar("SELECT COUNT(*) AS n FROM incidents"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--trials", type=int, default=7, help="trials (at least 5)")
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--poll-interval", type=int, default=2, help="POLL_INTERVAL_SECONDS")
    parser.add_argument(
        "--dispatch-interval", type=int, default=5, help="DISPATCH_INTERVAL_SECONDS"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed for the moments")
    parser.add_argument(
        "--compare", metavar="REV", help="first run the same trials with the worker of REV"
    )
    args = parser.parse_args()
    if args.trials < 5:
        parser.error("--trials: at least 5")
    admin_url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("BENCH_DATABASE_URL")
    if args.database == "postgres" and not admin_url:
        raise SystemExit("--database postgres needs TEST_DATABASE_URL (an admin URL)")
    print(
        f"# {platform.node()}: {os.cpu_count()} cores, {_cpu()}, Python {platform.python_version()}"
    )
    print(f"# command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"# database {args.database}; POLL_INTERVAL_SECONDS={args.poll_interval} "
        f"DISPATCH_INTERVAL_SECONDS={args.dispatch_interval}; {args.subscribers} subscribers; "
        f"{args.trials} trials"
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    results = {}
    try:
        if args.compare:
            code = _export(args.compare, tmp / "compare")
            print(f"## worker from {args.compare} (git archive)", flush=True)
            results[args.compare] = run(args, tmp, admin_url, code)
            print(f"## worker from this checkout ({_head()})", flush=True)
        results["this checkout"] = run(args, tmp, admin_url)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    medians = {}
    for label, trials in results.items():
        for name, what in (("detect_to_202", "detection"), ("edit_to_202", "feed edit")):
            values = [t[name] for t in trials]
            medians[label, name] = statistics.median(values)
            print(
                f"{label}: {what} -> first 202: median {statistics.median(values):.3f} s, "
                f"max {max(values):.3f} s ({', '.join(f'{v:.2f}' for v in values)})"
            )
    if args.compare:
        ratio = medians[args.compare, "detect_to_202"] / medians["this checkout", "detect_to_202"]
        print(
            f"ratio of medians, detection -> first 202, {args.compare} / this checkout: {ratio:.1f}"
        )


def _export(rev: str, into: Path) -> Path:
    """`rev` of this repository as plain files (git archive), for a before/after run."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _head() -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return out.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
