"""Run the real app under gunicorn for browser and multi-process tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SECRET_KEY = "e2e-test-secret-key-that-is-long-enough-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(instance: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment for gunicorn and the flask CLI: a private database and outbox."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DYNO", "APP_ENV"))}
    env.update(
        {
            "INSTANCE_PATH": str(instance),
            "DATABASE_URL": f"sqlite:///{instance / 'notifier.db'}",
            "EMAIL_BACKEND": "outbox",
            "SECRET_KEY": SECRET_KEY,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "FEED_URLS": "http://127.0.0.1:9/never-polled.atom",
            "LOG_LEVEL": "WARNING",
            **extra,
        }
    )
    return env


@dataclass
class Server:
    process: subprocess.Popen
    base_url: str
    env: dict[str, str]
    instance: Path

    def flask(self, *args: str) -> subprocess.CompletedProcess:
        """Run `flask --app app ARGS` against the same database and outbox."""
        return subprocess.run(
            [str(BIN / "flask"), "--app", "app", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_gunicorn(instance: Path, workers: int = 2, **extra: str) -> Server:
    """gunicorn "app:create_app()" on a free port, as the Procfile runs it; waits until up."""
    instance.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = app_env(instance, port, **extra)
    command = [
        str(BIN / "gunicorn"),
        "app:create_app()",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--graceful-timeout",
        "5",
    ]
    with (instance / "gunicorn.log").open("wb") as log:  # the child keeps its own handle
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {(instance / 'gunicorn.log').read_text()}")
        try:
            if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                return Server(process, base_url, env, instance)
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("gunicorn did not answer within 20 s")
