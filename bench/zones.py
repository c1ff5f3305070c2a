"""Requests per fan-out when readers are spread over many time zones (issue 14, item 2).

    .venv/bin/python bench/zones.py                     # 100,000 readers in 400 zones, SQLite
    .venv/bin/python bench/zones.py --base /tmp/base    # also a checkout of the code before

One real `flask --app app dispatch-once` worker per run against a fake SendGrid in this process
(50 ms per request, schema validation off), SEND_BATCH_SIZE=1000. Readers are half German, half
English, spread evenly over the zones, all first-time readers of one incident notification.
Prints requests, wall time and peak RSS per code tree, and the ratios within this run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import available_timezones

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from notifier.settings import load_settings  # noqa: E402
from notifier.store import open_store  # noqa: E402
from tests.fake_sendgrid import FakeSendGrid  # noqa: E402
from tests.test_dispatch import CONTENT  # noqa: E402


def zones(count: int) -> list[str]:
    """`count` region zones spread evenly over the tz database's sorted list."""
    names = sorted(
        z for z in available_timezones()
        if "/" in z and not z.startswith(("Etc/", "SystemV/", "posix/", "right/", "US/"))
    )  # fmt: skip
    step = len(names) / count
    return [names[int(i * step)] for i in range(count)]


def seed(database_url: str, n: int, zone_names: list[str]) -> None:
    store = open_store(load_settings({"DATABASE_URL": database_url}))
    store.upgrade()
    now = datetime.now(UTC)
    rows = [
        [f"user{i:06d}@example.com", "de" if i % 2 else "en",
         zone_names[(i // 2) % len(zone_names)], f"nonce{i}", now, now, now]
        for i in range(n)
    ]  # fmt: skip
    with store.write():
        store._executemany(
            "INSERT INTO subscribers (email, language, timezone, all_components, state, "
            "link_nonce, created_at, updated_at, confirmed_at) "
            "VALUES (?, ?, ?, 1, 'confirmed', ?, ?, ?, ?)",
            rows,
        )
    nid = store.create_notification("incident", CONTENT, now, now + timedelta(hours=2))
    assert store.fan_out(nid, now) == n
    store.close()


def run_worker(code: Path, database_url: str, fake: FakeSendGrid, tmp: Path) -> tuple[float, float]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp),
        "INSTANCE_PATH": str(tmp / "instance"),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
        "EMAIL_BACKEND": "sendgrid",
        "SENDGRID_API_KEY": fake.api_key,
        "SENDGRID_API_HOST": fake.base_url,
        "SEND_BATCH_SIZE": "1000",
        "PUBLIC_BASE_URL": "https://status-notify.example.com",
        "LOG_LEVEL": "WARNING",
    }
    cmd = [
        sys.executable, "-c",
        "import sys; from flask.cli import main; sys.argv = ['flask', '--app', 'app', "
        "'dispatch-once'];\ntry:\n    main()\nfinally:\n    print('maxrss_kb', [l.split()[1] "
        "for l in open('/proc/self/status') if l.startswith('VmHWM')][0], file=sys.stderr)",
    ]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"worker failed:\n{proc.stderr}")
    rss = [int(x.split()[1]) for x in proc.stderr.splitlines() if x.startswith("maxrss_kb")]
    return wall, max(rss) / 1024


def measure(code: Path, n: int, zone_names: list[str], latency: float, tmp: Path) -> dict:
    fake = FakeSendGrid(latency_seconds=latency, schema_path=None).start()
    url = f"sqlite:///{tmp / f'zones-{time.monotonic_ns()}.db'}"
    try:
        seed(url, n, zone_names)
        wall, rss = run_worker(code, url, fake, tmp)
    finally:
        fake.stop()
    accepted = len(fake.accepted_recipients())
    assert accepted == n, (accepted, n)
    return {"requests": len(fake.requests), "wall_s": wall, "rss_mb": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=100_000, help="readers (default 100000)")
    parser.add_argument("--zones", type=int, default=400, help="zones (default 400)")
    parser.add_argument("--latency", type=float, default=0.05, help="fake SendGrid latency (s)")
    parser.add_argument("--base", type=Path, help="a checkout of the code to compare with")
    args = parser.parse_args()
    zone_names = zones(args.zones)
    print(f"# {platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"# N = {args.n:,} readers (de/en) in {len(zone_names)} zones, batch 1000, "
          f"fake SendGrid {args.latency * 1000:.0f} ms/request, SQLite, 1 worker")  # fmt: skip
    print(f"# command: {' '.join(sys.argv)}")
    print("| code | requests | wall s | peak RSS MB |")
    print("|---|---|---|---|")
    tmp = Path(tempfile.mkdtemp(prefix="bench-zones-"))
    results = {}
    try:
        for label, code in [("this tree", ROOT), ("base", args.base)]:
            if code is None:
                continue
            row = results[label] = measure(code, args.n, zone_names, args.latency, tmp)
            print(f"| {label} | {row['requests']:,} | {row['wall_s']:.1f} | {row['rss_mb']:.0f} |",
                  flush=True)  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if len(results) == 2:
        this, base = results["this tree"], results["base"]
        print(f"# base / this tree: requests {base['requests'] / this['requests']:.1f}x, "
              f"wall {base['wall_s'] / this['wall_s']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
