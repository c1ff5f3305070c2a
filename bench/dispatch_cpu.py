"""Where one dispatch run's time goes, in-process: the CPU of the run's thread and of every
SQLite statement (by its first words), per 1000 recipients; then the cost of one token.

    .venv/bin/python bench/dispatch_cpu.py                  # 20,000 recipients, this tree
    .venv/bin/python bench/dispatch_cpu.py --recipients 5000

Seeds N confirmed subscribers and one fanned-out incident into a fresh SQLite file
(bench/fanout.py's seed), then runs `jobs.dispatch` once in this process against the fake
SendGrid (50 ms per request, schema validation off). Statement CPU is the calling thread's
`time.thread_time` around `execute`/`executemany` (SQLite runs in the calling thread), so the
recorder thread's statements count too; the run's thread CPU is `thread_time` over the whole
run. `make_token` is then timed over 20,000 calls (perf_counter). Figures for issue 14's third
pass in BENCHMARKS.md ("Fan-out").
"""

from __future__ import annotations

import argparse
import collections
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import fanout  # noqa: E402

from tests.fake_sendgrid import FakeSendGrid  # noqa: E402

TIMES: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])


class _TimedConnection(sqlite3.Connection):
    def execute(self, sql, *args):
        started = time.thread_time()
        try:
            return super().execute(sql, *args)
        finally:
            _count(sql, time.thread_time() - started)

    def executemany(self, sql, *args):
        started = time.thread_time()
        try:
            return super().executemany(sql, *args)
        finally:
            _count(sql, time.thread_time() - started)


def _count(sql: str, seconds: float) -> None:
    entry = TIMES[" ".join(sql.split()[:6])[:70]]
    entry[0] += 1
    entry[1] += seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    args = parser.parse_args()
    n = args.recipients
    tmp = Path(tempfile.mkdtemp())
    url = f"sqlite:///{tmp / 'bench.db'}"
    fake = FakeSendGrid(latency_seconds=0.05, schema_path=None).start()
    try:
        fanout.seed(url, n, 2)
        os.environ.update({**fanout.worker_env(tmp, url, fake), "LOG_LEVEL": "WARNING"})
        connect = sqlite3.connect
        sqlite3.connect = lambda *a, **k: connect(*a, factory=_TimedConnection, **k)
        from app import create_app
        from notifier import jobs

        app = create_app()
        started, cpu = time.perf_counter(), time.thread_time()
        stats = jobs.dispatch(app)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - started
    finally:
        fake.stop()
    per = n / 1000
    print(f"{stats.summary()}")
    print(f"run's thread: {cpu:.2f} s CPU, {wall:.2f} s wall, {cpu * 1000 / per:.1f} ms per 1000")
    for sql, (count, seconds) in sorted(TIMES.items(), key=lambda item: -item[1][1])[:8]:
        print(f"{seconds * 1000 / per:8.1f} ms/1000 {count:6d}x  {sql}")

    from notifier import tokens

    calls = 20_000
    started = time.perf_counter()
    for i in range(calls):
        tokens.make_token("k" * 40, tokens.MANAGE, i, "AbCdEfGhIjKlMnOpQrStUv")
    print(f"make_token: {(time.perf_counter() - started) / calls * 1e6:.1f} µs per token")


if __name__ == "__main__":
    main()
