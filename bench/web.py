"""Web benchmark: GET / and POST /subscribe under gunicorn, against a Flask hello-world app on
the same gunicorn settings, in one run; results go into the "Web" section of BENCHMARKS.md.

    .venv/bin/python bench/web.py [--seconds 5] [--rounds 3] [--clients 4] [--workers 2]
                                  [--no-write]

Both apps run as the Procfile runs the web process (sync workers, --graceful-timeout 25,
access log on through notifier.accesslog.RedactingLogger), from the repository root, so
gunicorn reads gunicorn.conf.py for both: the hello world's workers get the same garbage-
collector set-up (post_worker_init) as the app's. The load comes from separate client
processes on the same machine, one new connection per request (gunicorn's sync workers close
every connection). App and hello world take turns, round by round, so a neighbour's load on
a shared machine falls on both alike; each ratio is the median over the rounds of that
round's app/hello ratio. The app runs with RATE_LIMIT_SUBSCRIBE raised and
FORM_MIN_FILL_SECONDS=0 so the numbers measure the sign-up path (validation, database writes,
queued confirmation mail, the rate-limit counter write), not 429 answers or silently dropped
"too fast" posts. Each round also reads the gunicorn workers' utime+stime from /proc and
reports CPU milliseconds per request: on a shared machine the req/s ratio swings with the
neighbours' load, the CPU a request costs much less.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import platform
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WARMUP_SECONDS = 1.0
SECTION = "## Web"


# --- the reference app -------------------------------------------------------------------
def hello_app():
    """Flask hello world with the same two routes (gunicorn "bench.web:hello_app()")."""
    from flask import Flask, redirect

    app = Flask("hello")

    @app.get("/")
    def index():
        # The same hidden fields as the real form, so the client code is identical.
        return (
            '<!doctype html><title>Hello</title><input type="hidden" name="csrf_token" '
            'value="x"><input type="hidden" name="started" value="y">Hello, World!'
        )

    @app.post("/subscribe")
    def subscribe():
        return redirect("/subscribe/check-inbox", 303)

    return app


def floor_app():
    """The libraries' floor for a sign-up (gunicorn "bench.web:floor_app()", --floor): what
    the libraries this project must use cost by themselves, with none of its own code.

    GET / renders a Flask-WTF form (CSRF token in the session cookie); POST /subscribe is
    CSRFProtect's check, Flask-Limiter with its in-memory storage (cheaper than any storage
    several dynos can share), WTForms validation of the same fields (email-validator behind
    wtforms' Email) and one durable row: INSERT and COMMIT in SQLite (WAL,
    synchronous=NORMAL, as the app's store). If this app's POST is below issue
    14's 0.6 x hello world, no sign-up built on these libraries can reach it."""
    import zoneinfo

    from flask import Flask, redirect
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address
    from flask_wtf import FlaskForm
    from flask_wtf.csrf import CSRFProtect, generate_csrf
    from wtforms import BooleanField, HiddenField, RadioField, SelectField, StringField
    from wtforms.validators import AnyOf, DataRequired, Email

    app = Flask("floor")
    app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
    CSRFProtect(app)
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://")
    zones = frozenset(zoneinfo.available_timezones())

    class SignUp(FlaskForm):
        # The zone as text checked against a set, not a SelectField of ~600 choices (which
        # WTForms builds and walks per request): the floor is the cheapest use of the library.
        email = StringField(validators=[DataRequired(), Email()])
        language = SelectField(choices=[("de", "Deutsch"), ("en", "English")])
        timezone = StringField(validators=[AnyOf(zones)])
        scope = RadioField(choices=[("all", "all"), ("some", "some")])
        notify_incidents = BooleanField()
        notify_maintenance = BooleanField()
        started = HiddenField()

    insert = _signup_table()
    page = (
        '<!doctype html><title>Sign up</title><form method="post" action="/subscribe">'
        '<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">'
        '<input type="hidden" name="started" value="0">{{ form.email() }}'
        "{{ form.language() }}{{ form.timezone() }}{{ form.scope() }}</form>"
    )

    # Compiled once (render_template_string compiles on every call).
    template = app.jinja_env.from_string(page)

    @app.get("/")
    def index():
        return template.render(form=SignUp(), csrf_token=generate_csrf)

    @app.post("/subscribe")
    @limiter.limit(lambda: os.environ.get("RATE_LIMIT_SUBSCRIBE", "5 per minute"))
    def subscribe():
        form = SignUp()
        if not form.validate_on_submit():
            return "invalid", 400
        insert(form.email.data, form.language.data, form.timezone.data)
        return redirect("/subscribe/check-inbox", 303)

    return app


def write_floor_app():
    """The hello world plus one durable row per POST (gunicorn "bench.web:write_floor_app()",
    --floor): no CSRF, no rate limit, no validation; the INSERT and COMMIT floor_app does.
    What any sign-up that stores its subscriber before answering costs at least."""
    app = hello_app()
    insert = _signup_table()

    def subscribe():
        from flask import redirect, request

        insert(request.form.get("email"), request.form.get("language"), "UTC")
        return redirect("/subscribe/check-inbox", 303)

    app.view_functions["subscribe"] = subscribe
    return app


def _signup_table():
    """An INSERT of one sign-up into a SQLite file in INSTANCE_PATH (WAL, synchronous=NORMAL,
    as the app's store; each gunicorn worker its own connection), autocommitted."""
    import sqlite3

    db = sqlite3.connect(
        Path(os.environ["INSTANCE_PATH"]) / "floor.db", isolation_level=None, timeout=10
    )
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS signups (id INTEGER PRIMARY KEY, email TEXT UNIQUE, "
        "language TEXT, timezone TEXT, created_at TEXT DEFAULT CURRENT_TIMESTAMP)"
    )

    def insert(email: str, language: str, timezone: str) -> None:
        db.execute(
            "INSERT INTO signups (email, language, timezone) VALUES (?, ?, ?) "
            "ON CONFLICT (email) DO NOTHING",
            (email, language, timezone),
        )

    return insert


# Reference apps besides the hello world (--floor): name -> (gunicorn target, what it is).
FLOORS = {
    "floor": (
        "bench.web:floor_app()",
        "the libraries' floor: CSRFProtect, Flask-Limiter in memory, WTForms with "
        "email-validator, one SQLite INSERT; none of this project's code",
    ),
    "write": ("bench.web:write_floor_app()", "hello world + one SQLite INSERT per POST"),
}


# --- servers -----------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seed_catalogue(instance: Path) -> None:
    """A Statuspage-sized catalogue (10 groups of 8), so the form is as big as in real use."""
    sys.path.insert(0, str(ROOT))
    from notifier.store import SQLiteStore

    store = SQLiteStore(instance / "notifier.db")
    store.upgrade()
    now = datetime.now(UTC)
    feed = store.ensure_feed("http://127.0.0.1:9/never-polled.atom", now)
    components = []
    for g in range(10):
        group = {"id": f"g{g}", "name": f"Product {g}", "group": True, "position": g * 10}
        components.append(group)
        components += [
            {"id": f"g{g}c{c}", "name": f"Region {c}", "group_id": f"g{g}", "position": g * 10 + c}
            for c in range(1, 9)
        ]
    store.replace_components(feed["id"], components, now)
    store.close()


def _start(
    target: str, workers: int, env: dict, log: Path, *, wait_seconds: float = 30
) -> tuple[subprocess.Popen, int]:
    """gunicorn serving `target` as the Procfile's web line runs it; (process, port) once it
    answers GET /, or SystemExit after `wait_seconds`."""
    port = _free_port()
    command = [
        str(BIN / "gunicorn"),
        target,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--access-logfile",
        "-",
        "--graceful-timeout",
        "25",
        "--logger-class",
        "notifier.accesslog.RedactingLogger",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()
            return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{target} did not start; see {log}")


def _app_env(instance: Path) -> dict:
    env = dict(os.environ)
    env.update(
        INSTANCE_PATH=str(instance),
        DATABASE_URL=f"sqlite:///{instance / 'notifier.db'}",
        EMAIL_BACKEND="outbox",
        SECRET_KEY="bench-secret-key-bench-secret-key-bench-secret",
        FEED_URLS="http://127.0.0.1:9/never-polled.atom",
        RATE_LIMIT_SUBSCRIBE="100000000 per minute",
        FORM_MIN_FILL_SECONDS="0",
        LOG_LEVEL="WARNING",
    )
    return env


# --- load --------------------------------------------------------------------------------
def _form(port: int) -> tuple[str, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/")
    response = conn.getresponse()
    html = response.read().decode()
    cookie = (response.getheader("Set-Cookie") or "").split(";")[0]
    conn.close()
    fields = {
        n: re.search(rf'name="{n}" value="([^"]*)"', html).group(1)
        for n in ("csrf_token", "started")
    }
    return cookie, fields


def _client(port: int, kind: str, client_id: int, start: float, end: float, results) -> None:
    latencies, errors, i, size, sent = [], 0, 0, 0, 0
    if kind == "POST":
        cookie, fields = _form(port)
    while time.monotonic() < start:  # every client begins at the same moment
        time.sleep(0.001)
    while (t0 := time.monotonic()) < end:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        if kind == "GET":
            conn.request("GET", "/")
            expected = 200
        else:
            i += 1
            body = urlencode(
                {
                    **fields,
                    "email": f"bench-{client_id}-{i}@example.com",
                    "language": "de",
                    "timezone": "Europe/Berlin",
                    "scope": "all",
                    "notify_incidents": "y",
                    "notify_maintenance": "y",
                }
            )
            headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
            conn.request("POST", "/subscribe", body, headers)
            expected = 303
        response = conn.getresponse()
        size = len(response.read())
        conn.close()
        sent += 1
        t1 = time.monotonic()
        if t0 >= start + WARMUP_SECONDS:
            latencies.append(t1 - t0)
            errors += response.status != expected
    results.put((latencies, errors, size, sent))


def _worker_pids(master: int) -> list[int]:
    """gunicorn's worker processes: the master's children (Linux /proc)."""
    path = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


def _cpu_seconds(pids: list[int]) -> float:
    """utime + stime of `pids` (proc(5): fields 14 and 15, in clock ticks)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def measure(port: int, kind: str, clients: int, seconds: float, master: int = 0) -> dict:
    """One round against one server: throughput and latencies after the warm-up, and the
    gunicorn workers' CPU per request over the whole round (warm-up included, every
    request counted), the figure that stays comparable on a loaded machine."""
    workers = _worker_pids(master) if master else []
    cpu_before = _cpu_seconds(workers)
    results = multiprocessing.Queue()
    start = time.monotonic() + 1.0
    end = start + WARMUP_SECONDS + seconds
    procs = [
        multiprocessing.Process(target=_client, args=(port, kind, n, start, end, results))
        for n in range(clients)
    ]
    for p in procs:
        p.start()
    latencies, errors, sent = [], 0, 0
    for _ in procs:
        lat, err, size, count = results.get()
        latencies += lat
        errors += err
        sent += count
    for p in procs:
        p.join()
    cpu = _cpu_seconds(workers) - cpu_before
    latencies.sort()
    return {
        "cpu_ms": cpu * 1000 / sent if workers and sent else float("nan"),
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / seconds,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "body_bytes": size,
    }


def summarize(rounds: list[dict]) -> dict:
    """Medians over the rounds of one app and endpoint; errors summed."""
    return {
        "requests": sum(r["requests"] for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
        "rps": statistics.median(r["rps"] for r in rounds),
        "p50_ms": statistics.median(r["p50_ms"] for r in rounds),
        "p99_ms": statistics.median(r["p99_ms"] for r in rounds),
        "cpu_ms": statistics.median(r["cpu_ms"] for r in rounds),
        "body_bytes": rounds[-1]["body_bytes"],
    }


# --- report ------------------------------------------------------------------------------
def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = match.group(1).strip() if match else cpu
    from importlib.metadata import version

    return (
        f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, gunicorn {version('gunicorn')}, "
        f"Flask {version('flask')}"
    )


def section(results: dict, ratios: dict, args, command: str) -> str:
    rows = []
    for kind, path in (("GET", "/"), ("POST", "/subscribe")):
        app, hello = results[("app", kind)], results[("hello", kind)]
        each = " ".join(f"{r:.2f}" for r in ratios[kind])
        rows.append(
            f"| {kind} {path} | {app['rps']:.0f} | {hello['rps']:.0f} | "
            f"{statistics.median(ratios[kind]):.2f} ({each}) | {app['p50_ms']:.1f} | "
            f"{app['p99_ms']:.1f} | {hello['p99_ms']:.1f} | "
            f"{app['p99_ms'] / hello['p99_ms']:.2f} | {app['cpu_ms']:.2f} | "
            f"{hello['cpu_ms']:.2f} | {app['errors'] + hello['errors']} |"
        )
    floor = []
    for name, (target, what) in FLOORS.items():
        if (name, "POST") not in results:
            continue
        if not floor:
            floor = [
                "",
                "References besides the hello world (`--floor`), same gunicorn, same rounds:",
                "",
                "| reference | endpoint | req/s | throughput ratio to hello | CPU ms/req |",
                "|---|---|---|---|---|",
            ]
        floor += [
            f"| {what} (`{target}`) | {kind} {path} | {results[(name, kind)]['rps']:.0f} | "
            f"{statistics.median(ratios[f'{name} {kind}']):.2f} "
            f"({' '.join(f'{r:.2f}' for r in ratios[f'{name} {kind}'])}) | "
            f"{results[(name, kind)]['cpu_ms']:.2f} |"
            for kind, path in (("GET", "/"), ("POST", "/subscribe"))
        ]
    return "\n".join(
        [
            SECTION,
            "",
            f"Command: `{command}` ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
            "",
            f"Machine: {machine()}.",
            "",
            f"Both apps under `gunicorn --workers {args.workers} --access-logfile - "
            "--logger-class notifier.accesslog.RedactingLogger --graceful-timeout 25` (the "
            "Procfile's web settings; gunicorn also reads the repository's gunicorn.conf.py, so "
            "both apps' workers freeze their start-up objects out of the garbage collector), "
            f"loaded by {args.clients} client processes on the same "
            f"machine, one new connection per request, in {args.rounds} rounds of "
            f"{args.seconds:g} s per app and endpoint (after {WARMUP_SECONDS:g} s warm-up "
            "each), app and hello world taking turns. The reference is a Flask hello world "
            "with the same two routes (bench/web.py). The app ran with "
            "`RATE_LIMIT_SUBSCRIBE=100000000 per minute` and `FORM_MIN_FILL_SECONDS=0`, so "
            "every POST was a real sign-up of a new address (SQLite writes: subscriber, "
            "consent, queued confirmation mail, mail cap, rate-limit counter), never a 429 or "
            'a dropped "too fast" post. The form lists a 90-component catalogue and ~430 time '
            f"zones: GET / answers {results[('app', 'GET')]['body_bytes']:,} bytes of HTML, "
            f"the hello world {results[('hello', 'GET')]['body_bytes']:,}. Requests per second "
            "and latencies are medians over the rounds; the throughput ratio is the median "
            "of the rounds' app/hello ratios (each round's in brackets). CPU ms/req is the "
            "gunicorn workers' utime+stime (/proc/<pid>/stat) over a whole round divided by "
            "the requests of that round, median over the rounds: unlike req/s it does not "
            "depend on what else the machine runs.",
            "",
            "| endpoint | app req/s | hello req/s | throughput ratio | app p50 ms | app p99 ms | "
            "hello p99 ms | p99 ratio | app CPU ms/req | hello CPU ms/req | errors |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            *floor,
            "",
            "Load generator and servers share the CPUs, so absolute numbers are a floor; the "
            "ratios compare both apps under the same conditions.",
            "",
        ]
    )


def write_section(path: Path, text: str) -> None:
    """Replace (or add) the Web section's opening, up to its first ### subsection (the dated
    records of earlier passes, kept); other sections (e.g. Polling) stay as they are."""
    current = path.read_text() if path.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^##(?:#)? |\Z)", re.S | re.M)
    if pattern.search(current):
        updated = pattern.sub(lambda _m: text + "\n", current)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    path.write_text(updated.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per round, app, endpoint")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", 2)))
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--floor", action="store_true", help="also the reference apps in FLOORS")
    args = parser.parse_args(argv)
    command = "python bench/web.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    rounds: dict = {}
    ratios: dict = {"GET": [], "POST": []}
    with tempfile.TemporaryDirectory() as tmp:
        instance = Path(tmp) / "instance"
        instance.mkdir()
        _seed_catalogue(instance)
        env = _app_env(instance)
        servers = {
            "app": _start("app:create_app()", args.workers, env, Path(tmp) / "app.log"),
            "hello": _start("bench.web:hello_app()", args.workers, env, Path(tmp) / "hello.log"),
        }
        for name, (target, _what) in FLOORS.items() if args.floor else ():
            servers[name] = _start(target, args.workers, env, Path(tmp) / f"{name}.log")
            ratios.update({f"{name} GET": [], f"{name} POST": []})
        try:
            for n in range(args.rounds):
                for kind in ("GET", "POST"):
                    # Alternate which app goes first, so neither always meets the other's
                    # aftermath (a checkpoint, a busy neighbour).
                    order = list(servers.items())[:: 1 if n % 2 == 0 else -1]
                    for name, (process, port) in order:
                        result = measure(port, kind, args.clients, args.seconds, process.pid)
                        rounds.setdefault((name, kind), []).append(result)
                        print(f"round {n + 1} {name:5} {kind:4} {result}", flush=True)
                    hello = rounds[("hello", kind)][-1]["rps"]
                    ratios[kind].append(rounds[("app", kind)][-1]["rps"] / hello)
                    for name in FLOORS if args.floor else ():
                        ratios[f"{name} {kind}"].append(rounds[(name, kind)][-1]["rps"] / hello)
        finally:
            for process, _port in servers.values():
                process.terminate()
                process.wait(timeout=30)
    results = {key: summarize(value) for key, value in rounds.items()}
    text = section(results, ratios, args, command.strip())
    print("\n" + text)
    if not args.no_write:
        write_section(ROOT / "BENCHMARKS.md", text)


if __name__ == "__main__":
    main()
