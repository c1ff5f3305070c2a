"""Shared fixtures: settings, app, client, runner, db, clock, feed_server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app import create_app
from notifier.settings import Settings

from .servers import LocalServer

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_FIXTURES = SHARED / "fixtures"


def shared_fixture(*parts: str) -> Path:
    """A file from ../shared/fixtures; skips the test cleanly in a clone without ../shared."""
    path = SHARED_FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"../shared/fixtures/{'/'.join(parts)} is absent (a user's clone has none)")
    return path


class Clock:
    """An injectable clock: call it for now(), advance it by hand."""

    def __init__(self, start: datetime):
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta) -> datetime:
        self.current += timedelta(**delta)
        return self.current


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 26, 12, 0, tzinfo=UTC))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        app_env="test",
        secret_key="test-secret-key-that-is-long-enough-for-tokens",
        database_url=f"sqlite:///{tmp_path / 'test.db'}",
        instance_path=str(tmp_path / "instance"),
        feed_urls=(),
        public_base_url="https://status-notify.example.com",
        feed_timeout_seconds=2.0,
    )


@pytest.fixture
def app(settings: Settings, clock: Clock):
    application = create_app(settings)
    application.config["TESTING"] = True
    application.extensions["clock"] = clock
    yield application
    application.extensions["store"].close()
    for key in [k for k in application.extensions if k.startswith("http:")]:
        application.extensions[key].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def db(app):
    return app.extensions["store"]


@pytest.fixture
def feed_server():
    server = LocalServer().start()
    yield server
    server.stop()
