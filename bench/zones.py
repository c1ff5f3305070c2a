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
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fanout import run_workers, seed, zone_names  # noqa: E402
from tests.fake_sendgrid import FakeSendGrid  # noqa: E402


def measure(code: Path, n: int, zones: int, latency: float, tmp: Path) -> dict:
    fake = FakeSendGrid(latency_seconds=latency, schema_path=None).start()
    url = f"sqlite:///{tmp / f'zones-{time.monotonic_ns()}.db'}"
    try:
        seed(url, n, zones)
        wall, rss, _cpu = run_workers(url, 1, fake, 1000, tmp, code=code)
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
    names = zone_names(args.zones)
    print(f"# {platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"# N = {args.n:,} readers (de/en) in {len(names)} zones, batch 1000, "
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
            row = results[label] = measure(code, args.n, args.zones, args.latency, tmp)
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
