"""The README's two commands from a fresh clone (issue 13): `script/server` serves `/` and
`script/test` runs, in a clean `git clone` of this repository, with INSTANCE_PATH outside the
clone; afterwards nothing but the instance folder (and .venv) has been written.

Offline and fast: the clone's .venv is a view of the running test environment (symlinks to its
bin/, lib/ and pyvenv.cfg) with fresh install stamps, so script/bootstrap installs nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
# Build output that Python and the app write next to the code, gitignored: byte code, and the
# message catalogs compiled from the committed .po files at start (notifier/i18n.py).
BUILD_OUTPUT = ("__pycache__/", ".mo")


def _clone(tmp_path: Path) -> Path:
    if sys.prefix == sys.base_prefix or not (VENV / "bin" / "honcho").exists():
        pytest.skip("needs the project's virtualenv (script/bootstrap dev) to lend the clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=60)
    view = clone / ".venv"
    view.mkdir()
    for entry in VENV.iterdir():
        if not entry.name.startswith(".installed-"):
            (view / entry.name).symlink_to(entry)
    for stamp in ("requirements", "requirements-dev"):
        (view / f".installed-{stamp}").touch()  # newer than the clone's requirements files
    return clone


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "FEED_URLS", "HOST", "PORT", "APP_ENV", "VIRTUAL_ENV"}
        and not k.startswith("PYTEST_")
    }
    # The feed default is the real status page; tests never reach the internet, so the worker
    # polls a local port where nothing listens (one error line per poll, as the README says).
    env.update(INSTANCE_PATH=str(tmp_path / "instance"), FEED_URLS="http://127.0.0.1:9/h.atom")
    env.update(extra)
    return env


def _written(clone: Path) -> list[str]:
    """Every path in the clone that git does not know, ignored ones included (except .venv
    and BUILD_OUTPUT), plus every tracked file that changed."""
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    paths = [line[3:] for line in status]
    return [
        p
        for p in paths
        if not p.startswith(".venv")
        and not any(mark in p if mark.endswith("/") else p.endswith(mark) for mark in BUILD_OUTPUT)
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> set[str]:
    """The local addresses with a listening TCP socket on `port` (from /proc/net/tcp*)."""
    found = set()
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                raw = bytes.fromhex(address)
                if family == socket.AF_INET:
                    raw = raw[::-1]
                else:
                    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                found.add(socket.inet_ntop(family, raw))
    return found


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_script_server_from_a_fresh_clone_serves_and_writes_only_to_instance_path(tmp_path):
    clone = _clone(tmp_path)
    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            ["script/server"],
            cwd=clone,
            env=_env(tmp_path, PORT=str(port)),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                status = _get(f"http://127.0.0.1:{port}/")
            except OSError:
                status = None
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200, log.read_text()
        # Development binds this machine only (issue 13): not every interface.
        assert _listening(port) == {"127.0.0.1"}
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)  # honcho stops web and worker
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
    assert _written(clone) == [], log.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clone", "instance", "server.log"]
    assert (tmp_path / "instance" / "notifier.db").is_file()


def test_script_test_from_a_fresh_clone_runs_and_writes_only_to_instance_path(tmp_path):
    clone = _clone(tmp_path)
    result = subprocess.run(
        ["script/test", "tests/test_smoke.py", "-p", "no:cacheprovider", "-q"],
        cwd=clone,
        env=_env(tmp_path, SQLITE_ONLY="1", TEST_WORKERS="0"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout.splitlines()[-1]
    assert _written(clone) == []
