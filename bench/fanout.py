"""Fan-out benchmark: one incident update to N confirmed subscribers through the fake SendGrid.

    .venv/bin/python bench/fanout.py                         # SQLite, 100,000 recipients
    .venv/bin/python bench/fanout.py --zones 400             # + readers spread over 400 zones
    .venv/bin/python bench/fanout.py --database postgres     # + PostgreSQL with 1 and 2 workers
    .venv/bin/python bench/fanout.py --recipients 20000      # quicker

Each dispatch worker is a real `flask --app app dispatch-once` process (SEND_CONCURRENCY at its
default unless --concurrency) talking to a fake SendGrid server in this process (50 ms latency
per request, schema validation off so the fake's own CPU does not count). Reports wall time
until every delivery is accepted, requests, recipients per second and the workers' peak RSS;
then the same for one request per recipient on a smaller N, extrapolated linearly to N.

The reference floor, in the same run against the same fake: the official `sendgrid` library
alone (`SendGridAPIClient.send`, one client per thread, in its own process like the worker)
sending the same number of requests of the same size (1000 personalizations shaped like the
product's: To, two substitutions, List-Unsubscribe, custom_args), built before the clock starts,
with 1 and with 8 requests in flight. The product's wall time over the 8-in-flight reference is
the ratio issue 14 sets a goal for (<= 2.5). With --repeat K the SQLite run and the 8-in-flight
reference take turns K times; each round's ratio compares the two under the same load, and
the median of the rounds is the figure. "worker CPU s" is the worker processes' user + system
time: with one worker, how much of its wall time it computed rather than waited.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zoneinfo
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from notifier.settings import load_settings  # noqa: E402
from notifier.store import open_store  # noqa: E402
from tests.fake_sendgrid import FakeSendGrid  # noqa: E402
from tests.test_dispatch import CONTENT  # noqa: E402


def zone_names(count: int) -> list[str]:
    """`count` distinct IANA zones; 2 is today's default mix (Europe/Berlin and UTC)."""
    if count == 2:
        return ["UTC", "Europe/Berlin"]
    names = sorted(z for z in zoneinfo.available_timezones() if "/" in z and "Etc" not in z)
    if count > len(names):
        raise SystemExit(f"--zones: at most {len(names)} zones available")
    return names[:: len(names) // count][:count]


def seed(database_url: str, n: int, zones: int = 2) -> float:
    """N confirmed subscribers, half German, spread evenly over `zones` zones (each zone gets
    both languages), and one fanned-out notification; returns the fan-out seconds."""
    store = open_store(load_settings({"DATABASE_URL": database_url}))
    store.upgrade()
    now = datetime.now(UTC)
    names = zone_names(zones)
    rows = [
        [f"user{i:06d}@example.com", "de" if i % 2 else "en",
         names[(i // 2) % len(names)], f"nonce{i}", now, now, now]
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
    started = time.perf_counter()
    created = store.fan_out(nid, now)
    elapsed = time.perf_counter() - started
    assert created == n, (created, n)
    store.close()
    return elapsed


def worker_env(tmp: Path, database_url: str, fake) -> dict[str, str]:
    """The settings every benchmark's worker gets: its own HOME and instance path under
    `tmp`, the database, a fixed secret key, and SendGrid pointed at the fake `fake`."""
    return {
        "HOME": str(tmp),
        "INSTANCE_PATH": str(tmp / "instance"),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
        "EMAIL_BACKEND": "sendgrid",
        "SENDGRID_API_KEY": fake.api_key,
        "SENDGRID_API_HOST": fake.base_url,
        "PUBLIC_BASE_URL": "https://status-notify.example.com",
    }


def run_workers(
    database_url: str,
    workers: int,
    fake: FakeSendGrid,
    batch: int,
    tmp: Path,
    concurrency=None,
    code: Path = ROOT,
):
    """Run `workers` dispatch-once processes of the code tree `code` (default: this one) until
    they exit; (wall seconds, the workers' peak RSS in MB, their CPU seconds: user + system)."""
    env = {
        "PATH": os.environ["PATH"],
        **worker_env(tmp, database_url, fake),
        "SEND_BATCH_SIZE": str(batch),
        "LOG_LEVEL": "WARNING",
        **({"SEND_CONCURRENCY": str(concurrency)} if concurrency else {}),
    }
    # Peak RSS from /proc/self/status VmHWM: ru_maxrss would also count the pages of this
    # (large) benchmark process that the child shares between fork and exec.
    cmd = [
        sys.executable, "-c",
        "import sys; from flask.cli import main; sys.argv = ['flask', '--app', 'app', "
        "'dispatch-once'];\ntry:\n    main()\nfinally:\n    print('maxrss_kb', [l.split()[1] "
        "for l in open('/proc/self/status') if l.startswith('VmHWM')][0], file=sys.stderr)",
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    procs = [
        subprocess.Popen(cmd, cwd=code, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
        for _ in range(workers)
    ]  # fmt: skip
    rss = []
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"worker failed:\n{err}")
        rss += [int(line.split()[1]) for line in err.splitlines() if line.startswith("maxrss_kb")]
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, max(rss) / 1024, cpu


def pending(database_url: str) -> int:
    store = open_store(load_settings({"DATABASE_URL": database_url}))
    n = store._scalar("SELECT COUNT(*) AS n FROM deliveries WHERE state <> 'sent'")
    store.close()
    return n


class Database:
    """A fresh database per run: a SQLite file, or a PostgreSQL database created and dropped."""

    def __init__(self, kind: str, tmp: Path, admin_url: str | None):
        self.kind, self.tmp, self.admin_url = kind, tmp, admin_url
        self.name = f"bench_{uuid.uuid4().hex[:10]}"

    def __enter__(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.tmp / (self.name + '.db')}"
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.name}")
        info = psycopg.conninfo.conninfo_to_dict(self.admin_url)
        info["dbname"] = self.name
        return psycopg.conninfo.make_conninfo(**info).join(["postgresql://?", ""]).replace(" ", "&")

    def __exit__(self, *exc):
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def measure(kind, workers, n, batch, tmp, admin_url, latency, zones=2, concurrency=None) -> dict:
    fake = FakeSendGrid(latency_seconds=latency, schema_path=None).start()
    try:
        with Database(kind, tmp, admin_url) as url:
            fan_out = seed(url, n, zones)
            wall, rss, cpu = run_workers(url, workers, fake, batch, tmp, concurrency)
            left = pending(url)
    finally:
        fake.stop()
    accepted = len(fake.accepted_recipients())
    assert left == 0 and accepted >= n, (left, accepted)
    return {
        "database": kind, "workers": workers, "zones": zones, "n": n, "batch": batch,
        "fan_out_s": fan_out, "wall_s": wall, "requests": len(fake.requests), "per_s": n / wall,
        "rss_mb": rss, "in_flight": fake.max_in_flight, "cpu_s": cpu,
    }  # fmt: skip


# The reference: the library alone, in a process of its own like the worker. Argv: host,
# api key, requests, personalizations per request, requests in flight. Prints the seconds.
REFERENCE = """
import sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from sendgrid import SendGridAPIClient

host, key, requests, size, in_flight = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
base = "https://status-notify.example.com"
bodies = [{
    "personalizations": [{
        "to": [{"email": f"user{r:03d}{i:04d}@example.com"}],
        "substitutions": {"-preferences_url-": f"{base}/preferences/{'t' * 80}{i}",
                          "-unsubscribe_url-": f"{base}/unsubscribe/{'t' * 80}{i}"},
        "headers": {"List-Unsubscribe": f"<{base}/unsubscribe/one-click/{'t' * 80}{i}>"},
        "custom_args": {"delivery_id": str(r * size + i), "notification_id": "1"},
    } for i in range(size)],
    "from": {"email": "status@example.com", "name": "Status"},
    "subject": "[Sinch] Delayed SMS delivery: identified",
    "content": [{"type": "text/plain", "value": "x" * 2000},
                {"type": "text/html", "value": "<p>" + "x" * 6000 + "</p>"}],
    "categories": ["incident"],
    "headers": {"List-Id": "Status <status.example.com>"},
} for r in range(requests)]
local = threading.local()

def send(body):
    sg = getattr(local, "sg", None) or SendGridAPIClient(key, host=host)
    local.sg = sg
    assert sg.send(body).status_code == 202

started = time.perf_counter()
with ThreadPoolExecutor(in_flight) as pool:
    list(pool.map(send, bodies))
print(time.perf_counter() - started)
"""


def reference(requests: int, size: int, in_flight: int, latency: float) -> float:
    """Seconds the library alone takes for `requests` requests of `size`, `in_flight` at once."""
    fake = FakeSendGrid(latency_seconds=latency, schema_path=None).start()
    try:
        args = [fake.base_url, fake.api_key, str(requests), str(size), str(in_flight)]
        out = subprocess.run(
            [sys.executable, "-c", REFERENCE, *args], capture_output=True, text=True, check=True
        ).stdout
    finally:
        fake.stop()
    assert len(fake.accepted_recipients()) == requests * size
    return float(out.split()[-1])


def report(row: dict, runs: list[dict] | None = None, extrapolate_to: int | None = None) -> str:
    line = (
        f"| {row['database']} | {row['workers']} | {row['zones']} | {row['n']:,} | "
        f"{row['batch']} | {row['in_flight']} | "
        f"{row['fan_out_s']:.2f} | {row['wall_s']:.1f} | {row['requests']:,} | "
        f"{row['per_s']:,.0f} | {row['rss_mb']:.0f} | {row['cpu_s']:.1f} |"
    )
    if runs and len(runs) > 1:
        line += f" median of {len(runs)}: " + ", ".join(f"{r['wall_s']:.1f}" for r in runs) + " s"
    if extrapolate_to:
        line += f" ≈ {extrapolate_to / row['per_s']:,.0f} s for {extrapolate_to:,} (extrapolated)"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "-n",
        "--recipients",
        dest="n",
        type=int,
        default=100_000,
        help="recipients (default 100000)",
    )
    parser.add_argument(
        "--zones", type=int, default=None, help="also a run with readers over this many zones"
    )
    parser.add_argument(
        "--concurrency", type=int, default=None, help="SEND_CONCURRENCY (default: the setting's)"
    )
    parser.add_argument("--single-n", type=int, default=1_000, help="N for 1 request/recipient")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--latency", type=float, default=0.05, help="fake SendGrid latency (s)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration")
    args = parser.parse_args()
    admin_url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("BENCH_DATABASE_URL")
    if args.database == "postgres" and not admin_url:
        raise SystemExit("--database postgres needs TEST_DATABASE_URL (an admin URL)")
    configs = [("sqlite", 1)]
    if args.database == "postgres":
        configs += [("postgres", 1), ("postgres", 2)]
    print(
        f"# {platform.node()}: {os.cpu_count()} cores, {_cpu()}, Python {platform.python_version()}"
    )
    print(f"# fake SendGrid latency {args.latency * 1000:.0f} ms/request, N = {args.n:,}")
    print(
        "| database | workers | zones | N | batch | max in flight | fan-out s | wall s | "
        "requests | recipients/s | peak RSS MB | worker CPU s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    tmp = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    latency, conc = args.latency, args.concurrency
    requests = -(-args.n // 1000)
    try:
        product, rounds = None, []
        for kind, workers in configs:
            runs = []
            for _ in range(args.repeat):
                runs.append(measure(kind, workers, args.n, 1000, tmp, admin_url, latency, 2, conc))
                if product is None:  # the first config (SQLite, 1 worker): the ratio's rounds
                    # The floor right after each run: the ratio of a round compares the two
                    # under the same load, and the median of rounds is the figure (bench/web.py).
                    rounds.append((runs[-1]["wall_s"], reference(requests, 1000, 8, latency)))
            runs.sort(key=lambda r: r["wall_s"])
            median = runs[(len(runs) - 1) // 2]  # the run with the median wall time
            product = product or median
            print(report(median, runs), flush=True)
        if args.zones:
            zoned = measure("sqlite", 1, args.n, 1000, tmp, admin_url, latency, args.zones, conc)
            print(report(zoned), flush=True)
        single = measure("sqlite", 1, args.single_n, 1, tmp, admin_url, latency, 2, conc)
        print(report(single, extrapolate_to=args.n), flush=True)
        print(f"\nReference: the `sendgrid` library alone, {requests} requests x 1000 "
              "personalizations, same fake")  # fmt: skip
        floor = {1: reference(requests, 1000, 1, latency), 8: [r for _, r in rounds]}
        print("| requests in flight | wall s |\n|---|---|")
        print(f"| 1 | {floor[1]:.2f} |")
        print(f"| 8 | {statistics.median(floor[8]):.2f} (rounds: "
              + ", ".join(f"{r:.2f}" for r in floor[8]) + ") |")  # fmt: skip
        ratios = [wall / ref for wall, ref in rounds]
        print(
            "\nRatio: product / reference with 8 in flight (sqlite, 1 worker), per round: "
            + ", ".join(f"{wall:.2f} / {ref:.2f} = {wall / ref:.2f}" for wall, ref in rounds)
            + f"; median {statistics.median(ratios):.2f} (goal <= 2.5)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
