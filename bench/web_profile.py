"""Where GET / and POST /subscribe spend their time under gunicorn: the real app in the
Procfile's gunicorn settings with cProfile around the WSGI app in each worker, loaded like
bench/web.py, then the named phases of a request as milliseconds per request and as a share
of the app's time.

    .venv/bin/python bench/web_profile.py [--seconds 8] [--clients 4] [--workers 2]

cProfile slows Python code more than C code (SQLite, HMAC, zlib), so the shares are a map of
where to look, not a measurement; bench/web.py gives the throughput ratios. The first
requests of each worker (template compilation, first connections) are left out.
"""

from __future__ import annotations

import argparse
import glob
import os
import pstats
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import web  # noqa: E402

SKIP_REQUESTS = 60  # per worker: warm-up
PHASES = {  # label -> (file suffix, function name) whose cumulative time is the phase
    "app (WSGI call)": ("flask/app.py", "wsgi_app"),
    "session cookie: open": ("flask/sessions.py", "open_session"),
    "session cookie: save": ("flask/sessions.py", "save_session"),
    "CSRF check (POST)": ("flask_wtf/csrf.py", "protect"),
    "CSRF token (GET)": ("flask_wtf/csrf.py", "generate_csrf"),
    "page language": ("flask_babel/__init__.py", "get_locale"),
    "catalogue stamp query": ("notifier/store/subscribers.py", "catalogue_stamp"),
    "first-visit page (cached)": ("notifier/public.py", "_first_visit_page"),
    "rate limit (Flask-Limiter)": ("flask_limiter/_extension.py", "_check_request_limit"),
    "  of it: counter write": ("notifier/ratelimit.py", "incr"),
    "form build": ("notifier/forms.py", "for_request"),
    "form validation": ("wtforms/form.py", "validate"),
    "  of it: email-validator": ("notifier/forms.py", "normalize_email"),
    "sign-up transaction": ("notifier/subscriptions.py", "subscribe"),
    "  of it: confirmation mail queued": ("notifier/subscriptions.py", "_queue_confirmation"),
    "security headers": ("notifier/security.py", "security_headers"),
    "all SQLite statements": ("~", "<method 'execute' of 'sqlite3.Connection' objects>"),
}

PROFILED_APP = """
import cProfile, os
from app import create_app
_app, _prof, _n = create_app(), cProfile.Profile(), [0]
def app(environ, start_response):
    _n[0] += 1
    on = _n[0] > {skip}
    if on:
        _prof.enable()
    try:
        return list(_app(environ, start_response))
    finally:
        if on:
            _prof.disable()
            if _n[0] % 10 == 0:
                _prof.dump_stats(os.path.join({out!r}, f"worker-{{os.getpid()}}.prof"))
"""


def phase_times(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds per phase (0 when the phase did not run)."""
    found = dict.fromkeys(PHASES, 0.0)
    for (filename, _line, name), (_cc, _nc, _tt, cumulative, _callers) in stats.stats.items():
        for label, (suffix, function) in PHASES.items():
            if name == function and filename.endswith(suffix):
                found[label] += cumulative
    return found


def profile(kind: str, args, tmp: Path, env: dict) -> None:
    out = tmp / kind
    out.mkdir()
    (out / "profiled_app.py").write_text(PROFILED_APP.format(skip=SKIP_REQUESTS, out=str(out)))
    env = {**env, "PYTHONPATH": f"{out}{os.pathsep}{ROOT}"}
    process, port = web._start("profiled_app:app", args.workers, env, out / "gunicorn.log")
    try:
        result = web.measure(port, kind, args.clients, args.seconds)
    finally:
        process.terminate()
        process.wait(timeout=30)
    files = glob.glob(str(out / "worker-*.prof"))
    if not files:
        print(f"{kind}: too few requests to profile ({result['requests']})")
        return
    stats = pstats.Stats(*files)
    requests = sum(
        calls
        for (filename, _l, name), (_cc, calls, *_rest) in stats.stats.items()
        if name == "wsgi_app" and filename.endswith("flask/app.py")
    )
    times = phase_times(stats)
    total = times["app (WSGI call)"]
    print(
        f"\n{kind} {'/' if kind == 'GET' else '/subscribe'}: {result['rps']:.0f} req/s "
        f"under the profiler, {requests} requests profiled"
    )
    print(f"{'phase':36} {'ms/request':>10} {'share':>6}")
    for label, seconds in times.items():
        if seconds:
            print(f"{label:36} {seconds / requests * 1000:10.2f} {seconds / total:6.0%}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    print(f"Machine: {web.machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        instance = Path(tmp) / "instance"
        instance.mkdir()
        web._seed_catalogue(instance)
        env = web._app_env(instance)
        for kind in ("GET", "POST"):
            profile(kind, args, Path(tmp), env)


if __name__ == "__main__":
    main()
