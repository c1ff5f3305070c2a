"""Import benchmark: a 10,000-row subscriber file through the real CLI on a SQLite file.

    .venv/bin/python bench/import.py                    # consent policy, 10,000 rows
    .venv/bin/python bench/import.py --reconfirm        # + 10,000 confirmation mails queued
    .venv/bin/python bench/import.py --rows 2000        # quicker

Each run starts from a fresh database (migrated, a Statuspage-shaped catalogue), writes the
file (half German, zones from a list of 40, a third with chosen components by name, a third
by id), then times the real command as a process, `flask --app app subscribers import FILE
...`: the dry run, the import, and the same import again (every row unchanged). Wall time per
step includes starting the app; median of 3 runs per step. Issue 15's goal: the import of
10,000 rows in under 10 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zoneinfo
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.web import machine  # noqa: E402
from notifier.store.sqlite import SQLiteStore  # noqa: E402
from tests.test_subscribe_helpers import seed_catalogue  # noqa: E402

RUNS = 3
COMPONENTS = ("SMS (EU)", "voice;sms-us", "Sinch Engage", "sms-eu|Voice", "")


def write_file(path: Path, rows: int) -> None:
    zones = sorted(z for z in zoneinfo.available_timezones() if z.startswith("Europe/"))[:40]
    lines = ["email,language,timezone,components"]
    for n in range(rows):
        language = "de" if n % 2 else "en"
        lines.append(
            f"Person.{n:05d}@Example{n % 97}.com,{language},{zones[n % len(zones)]},"
            f'"{COMPONENTS[n % len(COMPONENTS)]}"'
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def fresh_database(instance: Path) -> None:
    for name in ("notifier.db", "notifier.db-wal", "notifier.db-shm"):
        (instance / name).unlink(missing_ok=True)
    store = SQLiteStore(instance / "notifier.db")
    store.upgrade()
    seed_catalogue(store, datetime.now(UTC))
    store.close()


def timed(command: list[str], env: dict) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr}")
    return elapsed, result.stdout.splitlines()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--reconfirm", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        instance = Path(tmp) / "instance"
        instance.mkdir()
        csv_path = Path(tmp) / "subscribers.csv"
        write_file(csv_path, args.rows)
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{instance / 'notifier.db'}",
            "INSTANCE_PATH": str(instance),
            "FEED_URLS": "",
        }
        policy = (
            ["--reconfirm"]
            if args.reconfirm
            else ["--consent-source", "bench: old status page", "--consented-at", "2025-03-01"]
        )
        command = [sys.executable, "-m", "flask", "--app", "app", "subscribers", "import",
                   str(csv_path), *policy]  # fmt: skip
        times: dict[str, list[float]] = {"dry run": [], "import": [], "again": []}
        summary = {}
        for _ in range(RUNS):
            fresh_database(instance)
            for step, extra in (("dry run", ["--dry-run"]), ("import", []), ("again", [])):
                seconds, first_line = timed([*command, *extra], env)
                times[step].append(seconds)
                summary[step] = first_line
    print(f"# machine: {machine()}")
    print(f"# command: flask --app app subscribers import FILE.csv {' '.join(policy)}")
    print(f"# {args.rows} rows, SQLite file, median of {RUNS} fresh runs (process wall time)")
    for step, values in times.items():
        print(f"{step:8s} {statistics.median(values):6.2f} s   {summary[step]}")


if __name__ == "__main__":
    main()
