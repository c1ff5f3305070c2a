"""Issue 13, items 1, 2, 3 and 7: the first hour with a fresh clone, without surprises.

The instance folder holds the default database; `--help` and the database-free commands work
with no database, one that is down, or a bad setting; expired deliveries say why; the CLI's
rough edges (announce confirmation, test-send marker, FEED_URLS separators, `feed inspect` on
the wrong thing, errors shown twice in a terminal).
"""

# ruff: noqa: F811  (fixtures imported from test_admin_cli are parameters here)
from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from app import create_app
from notifier.delivery.dispatch import DispatchStats
from notifier.logs import configure_logging
from notifier.render import render_email
from notifier.settings import SettingsError, load_settings

from .helpers import atom, table
from .test_admin_cli import ANNOUNCEMENT, world, yaml_file  # noqa: F401  (fixtures)
from .test_admin_helpers import deliveries

ROOT = Path(__file__).resolve().parents[1]
REFUSED = "status-notifier: refusing to start: "
# A PostgreSQL address where nothing listens (the discard port), and a scheme never supported.
DB_DOWN = "postgresql://nobody@127.0.0.1:9/notifier"
DB_BAD = "mysql://nobody@127.0.0.1/notifier"


def _env(tmp_path: Path, **extra: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "FEED_"))}
    env.update(APP_ENV="test", INSTANCE_PATH=str(tmp_path / "instance"))
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _flask(tmp_path: Path, *args: str, **env: str | None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args],
        cwd=ROOT,
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- item 1: INSTANCE_PATH moves the database ------------------------------------------------
def test_default_database_url_is_inside_instance_path():
    assert load_settings({}).database_url == "sqlite:///instance/notifier.db"
    assert load_settings({"INSTANCE_PATH": "/srv/a"}).database_url == "sqlite:////srv/a/notifier.db"
    assert load_settings({"INSTANCE_PATH": "var/b"}).database_url == "sqlite:///var/b/notifier.db"
    explicit = {"INSTANCE_PATH": "/srv/a", "DATABASE_URL": "sqlite:////data/n.db"}
    assert load_settings(explicit).database_url == "sqlite:////data/n.db"


def test_two_instance_paths_get_two_databases_and_nothing_lands_elsewhere(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    stores = []
    try:
        for name in ("a", "b"):
            app = create_app({"APP_ENV": "test", "INSTANCE_PATH": str(tmp_path / name)})
            stores.append(app.extensions["store"])
        stores[0].audit("test", "only.in.a", None, None, _now())
        assert [r["action"] for r in table(stores[0], "audit_log")] == ["only.in.a"]
        assert table(stores[1], "audit_log") == []
    finally:
        for store in stores:
            store.close()
        configure_logging("INFO")
    assert list(work.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "work"]
    for name in ("a", "b"):
        assert (tmp_path / name / "notifier.db").is_file()


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


# --- item 2: help and database-free commands need no database ----------------------------------
COMMANDS = [
    [],
    ["db"],
    ["db", "upgrade"],
    ["feed"],
    ["feed", "inspect"],
    ["feed", "replay"],
    ["poll-once"],
    ["dispatch-once"],
    ["worker"],
    ["preview"],
    ["admin"],
    ["admin", "add"],
    ["admin", "remove"],
    ["admin", "list"],
    ["admin", "hash-password"],
    ["announce"],
    ["subscribers"],
    ["subscribers", "import"],
    ["subscribers", "export"],
]


@pytest.mark.parametrize("database", [None, DB_DOWN, DB_BAD], ids=["none", "down", "bad"])
def test_help_of_every_command_works_without_a_database(tmp_path, database):
    from flask.cli import cli

    env = _env(tmp_path, DATABASE_URL=database)
    try:
        for command in COMMANDS:
            result = CliRunner().invoke(cli, ["--app", "app", *command, "--help"], env=env)
            assert (result.exit_code, result.exception) == (0, None), (command, result.output)
            assert result.output.startswith("Usage: "), (command, result.output)
            assert "refusing" not in result.output
    finally:
        configure_logging("INFO")
    listed = result_of_top_help(env)
    # Flask's own commands and Flask-Limiter's are listed too.
    assert listed == {c[0] for c in COMMANDS if c} | {"limiter", "routes", "run", "shell"}
    assert not (tmp_path / "instance").exists()


def result_of_top_help(env: dict) -> set[str]:
    from flask.cli import cli

    try:
        output = CliRunner().invoke(cli, ["--app", "app", "--help"], env=env).output
    finally:
        configure_logging("INFO")
    commands = output.split("Commands:\n", 1)[1].splitlines()
    return {line.split()[0] for line in commands if line.strip()}


def test_top_level_help_in_a_fresh_folder_creates_no_database(tmp_path):
    result = _flask(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    assert "feed" in result.stdout and "announce" in result.stdout
    assert not (tmp_path / "instance").exists()


@pytest.mark.parametrize("database", [DB_DOWN, DB_BAD], ids=["down", "bad"])
def test_feed_inspect_works_without_a_database_and_db_commands_refuse_in_one_line(
    tmp_path, database
):
    feed = tmp_path / "history.atom"
    feed.write_bytes(
        atom(
            [
                {
                    "key": "abc123",
                    "title": "SMS delays",
                    "updates": [(_now(), "Investigating", "We look.")],
                }
            ]
        )
    )
    inspected = _flask(tmp_path, "feed", "inspect", str(feed), "--json", DATABASE_URL=database)
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["format"] == "atom"
    replayed = _flask(tmp_path, "feed", "replay", str(feed), str(feed), DATABASE_URL=database)
    assert (replayed.returncode, replayed.stdout) == (0, "no events\n")
    previewed = _flask(
        tmp_path, "preview", "--feed", str(feed), "--key", "abc123", DATABASE_URL=database
    )
    assert previewed.returncode == 0, previewed.stderr
    # The subject's wording is the mail templates' business (tests/test_render*.py).
    subject = previewed.stdout.splitlines()[0]
    assert subject.startswith("Subject: [") and subject.endswith("] Sinch: SMS delays")
    refused = _flask(tmp_path, "db", "upgrade", DATABASE_URL=database)
    assert (refused.returncode, refused.stdout) == (1, "")
    [line] = refused.stderr.splitlines()
    if database == DB_BAD:
        assert line == REFUSED + (
            "DATABASE_URL must start with sqlite:/// or postgres(ql)://, got 'mysql://…'"
        )
    else:
        assert line.startswith(REFUSED + "database is not usable: cannot connect to PostgreSQL")
    assert not (tmp_path / "instance").exists()


# --- item 3: expired deliveries say why ------------------------------------------------------
def test_dispatch_summary_says_why_deliveries_expired():
    stats = DispatchStats(sent=3, expired=2, requests=1)
    assert stats.summary(24) == (
        "3 sent, 0 to retry, 0 failed, 2 expired (older than NOTIFICATION_TTL_HOURS=24 when "
        "due: never sent late), 1 request(s)"
    )
    assert stats.summary() == (
        "3 sent, 0 to retry, 0 failed, 2 expired (older than NOTIFICATION_TTL_HOURS when "
        "due: never sent late), 1 request(s)"
    )
    assert DispatchStats(sent=1, requests=1).summary(24) == (
        "1 sent, 0 to retry, 0 failed, 0 expired, 1 request(s)"
    )


# --- item 7: announce asks first, test sends say [TEST] ---------------------------------------
def test_announce_without_a_terminal_and_without_yes_refuses(runner, db, world, yaml_file):
    result = runner.invoke(args=["announce", yaml_file()])
    assert (result.exit_code, result.exception.__class__) == (1, SystemExit), result.exception
    assert result.output.splitlines() == [
        "recipients: 4 (de: 2, en: 2)",
        "error: not sent: no terminal to confirm on; add --yes to send without asking",
    ]
    assert (table(db, "announcements"), table(db, "notifications")) == ([], [])


@pytest.mark.parametrize(("answer", "sent"), [("y\n", True), ("n\n", False), ("\n", False)])
def test_announce_asks_on_a_terminal_with_the_recipient_count(
    runner, db, world, yaml_file, monkeypatch, answer, sent
):
    monkeypatch.setattr("notifier.cli_admin._stdin_is_terminal", lambda: True)
    result = runner.invoke(args=["announce", yaml_file()], input=answer)
    lines = result.output.splitlines()
    assert lines[:2] == [
        "recipients: 4 (de: 2, en: 2)",
        "Send this announcement to 4 recipient(s) now? [y/N]: " + answer.strip(),
    ]
    if sent:
        assert result.exit_code == 0
        assert len(deliveries(db)) == 4
    else:
        assert (result.exit_code, lines[2:]) == (1, ["error: not sent"])
        assert (table(db, "announcements"), table(db, "notifications")) == ([], [])


def test_test_sends_carry_the_test_marker_in_both_languages(runner, db, world, yaml_file):
    result = runner.invoke(args=["announce", yaml_file(), "--test-to", "ops@example.com"])
    assert result.exit_code == 0, result.output
    subjects = []
    for row in table(db, "notifications"):
        content = row["content"] if isinstance(row["content"], dict) else json.loads(row["content"])
        [lang] = (
            row["audience"] if isinstance(row["audience"], dict) else json.loads(row["audience"])
        )["languages"]
        subjects.append(render_email(content, lang, "UTC").subject)
    assert subjects == [
        "[Hinweis] SMS (EU): [TEST] Verzögerte SMS-Zustellung",
        "[Notice] SMS (EU): [TEST] Delayed SMS delivery",
    ]


# --- item 7: FEED_URLS separators and invalid URLs ----------------------------------------
@pytest.mark.parametrize(
    "raw",
    [
        "https://a.example/history.atom https://b.example/history.rss",
        "https://a.example/history.atom,https://b.example/history.rss",
        " https://a.example/history.atom ,\n\thttps://b.example/history.rss , ",
    ],
)
def test_feed_urls_are_split_at_commas_and_whitespace(raw):
    assert load_settings({"FEED_URLS": raw}).feed_urls == (
        "https://a.example/history.atom",
        "https://b.example/history.rss",
    )


@pytest.mark.parametrize(
    "bad", ["status.sinch.com/history.atom", "https://", "ftp://a.example/x", "http://[::1"]
)
def test_an_invalid_feed_url_is_refused_at_start_in_one_line(tmp_path, bad):
    with pytest.raises(SettingsError):
        load_settings({"FEED_URLS": f"https://ok.example/a.atom {bad}"})
    stderr = io.StringIO()
    env = {"INSTANCE_PATH": str(tmp_path / "i"), "FEED_URLS": f"https://ok.example/a.atom {bad}"}
    try:
        with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as exc:
            create_app(env)
    finally:
        configure_logging("INFO")
    assert exc.value.code == 1
    assert stderr.getvalue().splitlines() == [
        REFUSED + f"FEED_URLS entries must be http(s) URLs with a host, got {bad!r} "
        "(separate several with commas or spaces)"
    ]
    assert not (tmp_path / "i").exists()


# --- item 7: feed inspect on the wrong thing ------------------------------------------------
def test_feed_inspect_on_a_directory_says_so(runner, tmp_path):
    result = runner.invoke(args=["feed", "inspect", str(tmp_path)])
    assert (result.exit_code, result.output) == (
        1,
        f"Error: {tmp_path} is a directory, not a feed: give one Atom or RSS file (or a URL)\n",
    )


@pytest.mark.parametrize("body", ['{"page": {"id": "x"}, "incidents": []}', "[1, 2]"])
def test_feed_inspect_on_a_json_file_says_it_is_json(runner, tmp_path, body):
    path = tmp_path / "incidents.json"
    path.write_text(body)
    result = runner.invoke(args=["feed", "inspect", str(path), "--json"])
    assert (result.exit_code, result.output) == (
        1,
        f"Error: {path}: this is JSON, not an Atom or RSS feed (the feed is the page's "
        "history.atom or history.rss)\n",
    )


# --- item 7: an error shows once in a terminal -----------------------------------------------
def _in_terminal(args: list[str], env: dict, timeout: float = 90.0) -> tuple[int, str]:
    """Run with stdout and stderr on one pseudo-terminal, as in an operator's shell."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    code = proc.wait(timeout=10)
    return code, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def test_a_failed_poll_is_reported_once_in_a_terminal_and_logged_when_piped(tmp_path):
    env = _env(tmp_path, FEED_URLS="http://127.0.0.1:9/history.atom")
    args = [sys.executable, "-m", "flask", "--app", "app", "poll-once"]
    code, screen = _in_terminal(args, env)
    assert code == 1
    assert screen.count("Connection refused") == 1, screen
    assert screen.splitlines()[-1] == (
        "http://127.0.0.1:9/history.atom: error: cannot connect to "
        "http://127.0.0.1:9/history.atom: [Errno 111] Connection refused"
    )
    piped = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    assert piped.returncode == 1
    assert piped.stdout.splitlines() == [screen.splitlines()[-1]]
    assert piped.stderr.splitlines()[-1].endswith(
        "ERROR notifier.poller: poll failed: cannot connect to "
        "http://127.0.0.1:9/history.atom: [Errno 111] Connection refused"
    )


# --- item 7: the README's announcement example --------------------------------------------
def test_readme_announcement_example_is_block_style_and_valid(tmp_path):
    from notifier import announcements as rules

    readme = (ROOT / "README.md").read_text()
    blocks = [b.split("```")[0] for b in readme.split("```yaml\n")[1:]]
    [example] = [b for b in blocks if b.startswith("products:")]  # the others: Prometheus
    assert "{" not in example and "[{" not in example  # block style: "?" and "," are safe
    path = tmp_path / "notice.yaml"
    path.write_text(example.replace("[component ids]", "[sms-eu]"), encoding="utf-8")
    content, audience = rules.load_file(path)
    assert rules.validate(content, audience, {"sms-eu"}) == []
    assert (content["de"]["qa"], content["en"]["qa"], audience) == (
        [{"q": "Muss ich etwas tun?", "a": "Nein."}],
        [{"q": "Do I need to do anything?", "a": "No."}],
        {"components": ["sms-eu"], "languages": ["de", "en"]},
    )


def test_dispatch_once_says_why_deliveries_expired_once_in_a_terminal(tmp_path):
    from datetime import timedelta

    app = create_app({"APP_ENV": "test", "INSTANCE_PATH": str(tmp_path / "instance")})
    store = app.extensions["store"]
    queued = _now() - timedelta(hours=7)
    content = {"de": {"title": "Test"}, "en": {"title": "Test"}}
    store.create_test_send(
        "announcement", content, "ops@example.com", "en", "UTC", queued, queued + timedelta(hours=6)
    )
    store.close()
    configure_logging("INFO")
    env = _env(tmp_path, NOTIFICATION_TTL_HOURS="6")
    args = [sys.executable, "-m", "flask", "--app", "app", "dispatch-once"]
    summary = (
        "0 sent, 0 to retry, 0 failed, 1 expired (older than NOTIFICATION_TTL_HOURS=6 when due: "
        "never sent late), 0 request(s)"
    )
    code, screen = _in_terminal(args, env)
    assert (code, screen.count("expired"), screen.splitlines()[-1]) == (0, 1, summary)
    piped = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    assert (piped.returncode, piped.stdout) == (
        0,
        "0 sent, 0 to retry, 0 failed, 0 expired, 0 request(s)\n",
    )
