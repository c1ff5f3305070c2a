"""Shared fixtures: settings, app, client, runner, db, clock, feed_server."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app import create_app
from notifier.settings import Settings

from .fake_sendgrid import sendgrid  # noqa: F401  (fixture for every test module)
from .servers import LocalServer


def _find_shared() -> Path:
    """../shared next to the checkout (searched upwards, so git worktrees find it too)."""
    for parent in Path(__file__).resolve().parents[1:]:
        if (parent / "shared" / "fixtures").is_dir():
            return parent / "shared"
    return Path(__file__).resolve().parents[2] / "shared"


SHARED = _find_shared()
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


PG_ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "")
# The same cluster through a real PgBouncer in transaction pool mode (script/pgbouncer start).
PG_POOLER_URL = os.environ.get("TEST_PGBOUNCER_URL", "")
# One template per pytest-xdist worker and run: CREATE DATABASE … TEMPLATE needs the template
# to have no other session, and neither two workers nor two runs sharing a cluster may drop each
# other's (the run id is the same for every worker of one run; a process id without xdist).
PG_TEMPLATE = "notifier_test_template_{}_{}".format(
    os.environ.get("PYTEST_XDIST_TESTRUNUID", str(os.getpid()))[:8],
    os.environ.get("PYTEST_XDIST_WORKER", "main"),
)
# Runs through PgBouncer: the store suite proper - every test of these modules that uses the
# store (`db`) - and POOLER_TESTS; TEST_PGBOUNCER_ALL=1 adds every other test using `db` (all
# pass; CI leaves them out to keep within its time budget: each PostgreSQL run of a test costs
# a database cloned for it).
POOLER_MODULES = {
    "test_admin_ledger",
    "test_concurrency",
    "test_detect",
    "test_dispatch",
    "test_dispatch_recorder",
    "test_e2e_notify",
    "test_enrich",
    "test_health",
    "test_notifications",
    "test_poll",
    "test_poll_faults",
    "test_poller_lease",
    "test_preferences",
    "test_purge",
    "test_subscribe",
    "test_unsubscribe",
}
POOLER_TESTS = {
    "test_two_workers_killed_in_seven_rounds_each_serve_every_recipient_on_postgres",
}
POOLER_ALL = os.environ.get("TEST_PGBOUNCER_ALL") == "1"


def _pg_admin():
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database; each test clones it (CREATE DATABASE … TEMPLATE)."""
    if not PG_ADMIN_URL:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set")
        pytest.skip("PostgreSQL half skipped: TEST_DATABASE_URL is not set (see README, Tests)")
    from notifier.store.postgres import PostgresStore

    with _pg_admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_TEMPLATE}")
        conn.execute(f"CREATE DATABASE {PG_TEMPLATE}")
    store = PostgresStore(_pg_url(PG_TEMPLATE))
    store.upgrade()
    store.close()
    yield PG_TEMPLATE
    unused = _NEXT_DATABASE.take()
    with _pg_admin() as conn:
        if unused:
            conn.execute(f"DROP DATABASE IF EXISTS {unused} WITH (FORCE)")
        conn.execute(f"DROP DATABASE IF EXISTS {PG_TEMPLATE} WITH (FORCE)")


def _clone_template(template: str) -> str:
    """A new database cloned from `template`; its name."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with _pg_admin() as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    return name


class _NextDatabase:
    """The next test's database, cloned on a thread while the current test runs.

    CREATE DATABASE … TEMPLATE takes about as long as a short test; the clone is the same
    fresh, untouched copy of the template a test would otherwise wait for. take() waits for
    it; None when none was started or cloning it failed (the caller then clones in line).
    """

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._name: str | None = None

    def start(self, template: str) -> None:
        def clone():
            try:
                self._name = _clone_template(template)
            except Exception:  # the test that takes it clones in line and shows the error
                self._name = None

        self._thread = threading.Thread(target=clone, name="next test database", daemon=True)
        self._thread.start()

    def take(self) -> str | None:
        if self._thread is None:
            return None
        self._thread.join()
        self._thread = None
        name, self._name = self._name, None
        return name


_NEXT_DATABASE = _NextDatabase()


@pytest.fixture(scope="session")
def pg_pooler(pg_template: str) -> str:
    """TEST_PGBOUNCER_URL (PgBouncer in front of TEST_DATABASE_URL's cluster), or skip."""
    if not PG_POOLER_URL:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("REQUIRE_POSTGRES=1 but TEST_PGBOUNCER_URL is not set (pgbouncer missing?)")
        pytest.skip("PgBouncer runs skipped: TEST_PGBOUNCER_URL is not set (see README, Tests)")
    return PG_POOLER_URL


def _pg_url(database: str, base: str = "") -> str:
    """A URL for `database` on the cluster of TEST_DATABASE_URL, or of `base` (the pooler)."""
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(base or PG_ADMIN_URL)
    info["dbname"] = database
    return "postgresql://?" + "&".join(f"{k}={v}" for k, v in info.items())


def pytest_generate_tests(metafunc):
    """Store backends: SQLite and PostgreSQL for every test using the store; PostgreSQL through
    PgBouncer (transaction mode) too for the store suite (POOLER_MODULES, POOLER_TESTS)."""
    if "database_url" not in metafunc.fixturenames:
        return
    backends = ["sqlite", "postgres"]
    module = metafunc.module.__name__.rpartition(".")[2]
    store_suite = "db" in metafunc.fixturenames and (POOLER_ALL or module in POOLER_MODULES)
    if store_suite or metafunc.function.__name__ in POOLER_TESTS:
        backends.append("pgbouncer")
    metafunc.parametrize("database_url", backends, indirect=True)


@pytest.fixture
def database_url(request, tmp_path: Path):
    """Every test that uses the store runs on both backends (and some through PgBouncer)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    template = request.getfixturevalue("pg_template")
    pooler = request.getfixturevalue("pg_pooler") if request.param == "pgbouncer" else ""
    name = _NEXT_DATABASE.take() or _clone_template(template)
    _NEXT_DATABASE.start(template)
    yield _pg_url(name, pooler)
    with _pg_admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        app_env="test",
        secret_key="test-secret-key-that-is-long-enough-for-tokens",
        database_url=database_url,
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


# --- scheduling (pytest-xdist) ---------------------------------------------------------------

# The longest process tests, in seconds per run (rounded, from `--durations` of runs on a
# 2-core host on 2026-12-01, after they were shortened): within the process tests, longest
# first, so that none starts late and ends the run alone. Unlisted process tests count as 5 s.
# Only the order depends on these numbers.
LONGEST_SECONDS = {
    "test_three_workers_and_a_slow_feed_fetch_exactly_once_per_interval": 30,
    "test_kill_9_during_fan_out_loses_nothing_and_duplicates_only_the_in_flight_request": 36,
    "test_kill_9_during_a_concurrent_fan_out_loses_nothing_and_flags_every_duplicate": 32,
    "test_sigterm_mid_send_exits_in_time_and_sends_nothing_twice_unflagged": 24,
    "test_two_workers_killed_in_seven_rounds_each_serve_every_recipient_on_postgres": 22,
    "test_sigterm_while_four_feeds_hang_exits_in_time_and_releases_the_lease_last": 22,
    "test_two_workers_poll_as_one_and_the_survivor_takes_over_within_an_interval": 14,
    "test_a_new_poller_after_a_handover_waits_for_the_interval_since_the_last_poll": 11,
}


def _worksteal_chunks(count: int, workers: int) -> list[int]:
    """How many of `count` tests pytest-xdist's worksteal scheduler first hands each of
    `workers` workers, in order: the same split as `WorkStealingScheduling.check_schedule`
    (xdist 3.x: each idle worker in turn gets len(pending) // workers still to serve)."""
    sizes, left = [], count
    for i in range(workers):
        sizes.append(left // (workers - i))
        left -= sizes[-1]
    return sizes


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (2+ workers): the process tests (`slow`, not `browser`) start first,
    longest first, on every worker but the first; the rest keep the collection order.

    The process tests mostly wait (sleeping processes, latencies, poll intervals) and the
    browser tests (collected first, tests/e2e) mostly compute: started together they overlap,
    instead of the waiting ones ending the run alone on one worker. Every test still runs, each
    on a fresh fixture as before; with worksteal an idle worker then takes over half of
    another's queue. Without xdist (TEST_WORKERS=0) the order is untouched. Every worker
    computes the same order, as xdist requires.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2:
        return
    waiting = [
        i for i in items if i.get_closest_marker("slow") and not i.get_closest_marker("browser")
    ]
    if not waiting:
        return
    chosen = {id(i) for i in waiting}
    rest = [i for i in items if id(i) not in chosen]
    waiting.sort(
        key=lambda i: -LONGEST_SECONDS.get(getattr(i, "originalname", i.name), 5)
    )  # stable: ties keep order
    front: list[list] = [[] for _ in range(workers)]
    for n, item in enumerate(waiting):
        front[1 + n % (workers - 1)].append(item)
    ordered: list = []
    for chunk, size in zip(front, _worksteal_chunks(len(items), workers), strict=True):
        take = max(0, size - len(chunk))
        ordered += chunk + rest[:take]
        rest = rest[take:]
    items[:] = ordered + rest
