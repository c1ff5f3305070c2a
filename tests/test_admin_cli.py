"""`flask --app app admin add|remove|list|hash-password` and `flask --app app announce`."""

from __future__ import annotations

import getpass

import pytest
from werkzeug.security import check_password_hash

from .helpers import table
from .test_admin_helpers import (  # noqa: F401  (fixtures)
    admin_settings,
    audience_world,
    audit_rows,
    deliveries,
    login,
)

ACTOR = f"cli:{getpass.getuser()}"
PASSWORD = "a long enough password"

ANNOUNCEMENT = """\
products: [SMS (EU)]
window:
  start: 2026-11-26T08:30:00Z
  end: 2026-11-26T10:00:00Z
de:
  title: Verzögerte SMS-Zustellung
  intro: heute Morgen kamen SMS in der EU verspätet an.
  bullets:
    - Alles läuft wieder normal.
  qa:
    - q: Muss ich etwas tun?
      a: Nein.
en:
  title: Delayed SMS delivery
  intro: This morning SMS in the EU arrived late.
  bullets:
    - Everything works normally again.
  qa:
    - q: Do I need to do anything?
      a: "No."
audience:
  components: [sms-eu]
  languages: [de, en]
"""


# --- ops users ---------------------------------------------------------------------------
def test_add_prompts_twice_and_stores_a_hash(runner, db, app):
    result = runner.invoke(args=["admin", "add", "Ops.Anna"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert result.output.endswith("ops user ops.anna added\n")
    assert PASSWORD not in result.output
    user = db.get_admin_user("ops.anna")
    assert check_password_hash(user["password_hash"], PASSWORD)
    assert audit_rows(db) == [(ACTOR, "admin_user.add", "admin_user:ops.anna", None)]
    assert login(app.test_client(), "ops.anna", PASSWORD).status_code == 303


def test_add_reads_the_password_from_stdin_and_sets_a_new_one(runner, db):
    runner.invoke(args=["admin", "add", "ops.ben", "--password-stdin"], input=f"{PASSWORD}\n")
    result = runner.invoke(
        args=["admin", "add", "ops.ben", "--password-stdin"], input="another long password\n"
    )
    assert (result.exit_code, result.output) == (0, "new password set for ops user ops.ben\n")
    assert check_password_hash(
        db.get_admin_user("ops.ben")["password_hash"], "another long password"
    )
    assert [r[1] for r in audit_rows(db)] == ["admin_user.add", "admin_user.password"]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["ops.c", "--password-stdin"], "short\n", "error: the password needs at least 12"),
        (["admin", "--password-stdin"], f"{PASSWORD}\n", "error: 'admin' is the built-in user"),
        (["Bad Name!", "--password-stdin"], f"{PASSWORD}\n", "error: a name is 1-64 characters"),
        (["ops.c"], f"{PASSWORD}\nsomething else\n", "Error: The two entered values do not"),
    ],
)
def test_add_refuses_with_a_clear_message(runner, db, args, stdin, message):
    result = runner.invoke(args=["admin", "add", *args], input=stdin)
    assert result.exit_code == 1
    assert message in result.output
    assert table(db, "admin_users") == []


def test_remove_and_list(runner, db, clock):
    for name in ("ops.dora", "ops.emil"):
        runner.invoke(args=["admin", "add", name, "--password-stdin"], input=f"{PASSWORD}\n")
    db.record_admin_login("ops.emil", clock())
    result = runner.invoke(args=["admin", "list"])
    assert result.output.splitlines() == [
        "admin                     built-in (ADMIN_PASSWORD_HASH set)",
        "ops.dora                  added 2026-11-26, never logged in",
        "ops.emil                  added 2026-11-26, last login 2026-11-26 12:00 UTC",
    ]
    result = runner.invoke(args=["admin", "remove", "ops.dora"])
    assert (result.exit_code, result.output) == (0, "ops user ops.dora removed\n")
    assert [u["username"] for u in db.list_admin_users()] == ["ops.emil"]
    result = runner.invoke(args=["admin", "remove", "ops.dora"])
    assert result.exit_code == 1
    assert "error: no ops user 'ops.dora'" in result.output
    assert audit_rows(db)[-1] == (ACTOR, "admin_user.remove", "admin_user:ops.dora", None)


def test_hash_password_prints_a_hash_for_the_environment(runner):
    result = runner.invoke(args=["admin", "hash-password"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0
    printed = result.stdout.strip()  # the prompts went to stderr: $(…) captures the hash alone
    assert printed.startswith("scrypt:") and check_password_hash(printed, PASSWORD)


# --- announce ----------------------------------------------------------------------------
@pytest.fixture
def yaml_file(tmp_path):
    def write(text: str = ANNOUNCEMENT):
        path = tmp_path / "notice.yaml"
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


@pytest.fixture
def world(db, clock):
    return audience_world(db, clock())


def test_dry_run_shows_the_count_and_both_mails_and_sends_nothing(runner, db, world, yaml_file):
    result = runner.invoke(args=["announce", yaml_file(), "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "recipients: 4 (de: 2, en: 2)"
    assert "--- de (Europe/Berlin) ---" in lines
    assert "Subject: [Hinweis] SMS (EU): Verzögerte SMS-Zustellung" in lines
    assert "Subject: [Notice] SMS (EU): Delayed SMS delivery" in lines
    assert "F: Muss ich etwas tun?" in result.output
    assert "26. November 2026, 09:30 – 11:00 MEZ" in result.output
    assert lines[-1] == "dry run: nothing was saved or sent"
    assert (table(db, "announcements"), table(db, "notifications")) == ([], [])


def test_test_to_queues_each_language_to_that_address_only(runner, db, world, yaml_file):
    result = runner.invoke(args=["announce", yaml_file(), "--test-to", "Ops@Example.com"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        "test send queued to ops@example.com (de, en); the worker sends it"
    )
    assert [(d[1], d[2], d[3]) for d in deliveries(db)] == [
        ("ops@example.com", "de", "pending"),
        ("ops@example.com", "en", "pending"),
    ]
    assert table(db, "announcements") == []


def test_announce_sends_to_the_audience(runner, db, world, yaml_file, clock):
    result = runner.invoke(args=["announce", yaml_file(), "--yes"])
    assert result.exit_code == 0, result.output
    [announcement] = table(db, "announcements")
    [notification] = table(db, "notifications")
    nid = notification["id"]
    assert result.output.splitlines() == [
        "recipients: 4 (de: 2, en: 2)",
        f"announcement {announcement['id']} queued as notification {nid}: 4 deliveries; "
        "the worker sends them",
    ]
    assert (announcement["state"], announcement["created_by"]) == ("sent", ACTOR)
    assert deliveries(db) == [
        (nid, "de-all@example.de", "de", "pending", None),
        (nid, "de-sms-eu@example.de", "de", "pending", None),
        (nid, "en-all@example.com", "en", "pending", None),
        (nid, "en-sms-eu@example.com", "en", "pending", None),
    ]
    assert audit_rows(db) == [
        (
            ACTOR,
            "announcement.send",
            f"announcement:{announcement['id']}",
            {"notification": nid, "recipients": 4},
        )
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("title: Delayed SMS delivery", 'title: "Delayed\\r\\nBcc: victim@example.com"'),
            "error: en.title: Must be one line: line breaks and control characters are not "
            "allowed here.",
        ),
        (("title: Verzögerte SMS-Zustellung", 'title: ""'), "error: de.title: A title is needed"),
        (("components: [sms-eu]", "components: [sms-xx]"), "Unknown product: sms-xx"),
        (("end: 2026-11-26T10:00:00Z", "end: 2026-11-26T07:00:00Z"), "error: window.end"),
        (
            ("  qa:\n    - q: Muss ich etwas tun?\n      a: Nein.\n", "  qa: 5\n"),
            "error: file: Unexpected structure",
        ),
        (("products", "products: [unclosed\nx"), "error: file: Cannot read"),
        (("window:\n", "window:\n  zone: Europe\n"), "error: window.zone: Please choose a time"),
        (("window:\n", "window:\n  zone: __pycache__\n"), "error: window.zone: Please choose"),
        (("window:\n", "window:\n  zone: Mars/Olympus\n"), "error: window.zone: Please choose"),
        (("start: 2026-11-26T08:30:00Z", "start: 0001-01-01T00:00"), "error: window.start"),
        (("end: 2026-11-26T10:00:00Z", "end: 9999-12-31T23:59"), "error: window.end: Not a valid"),
    ],
)
def test_an_invalid_file_is_refused_and_nothing_is_sent(
    runner, db, world, yaml_file, change, message
):
    text = ANNOUNCEMENT.replace(*change, 1)
    assert text != ANNOUNCEMENT
    for flags in ([], ["--dry-run"], ["--test-to", "ops@example.com"]):
        result = runner.invoke(args=["announce", yaml_file(text), *flags])
        assert result.exit_code == 1, result.output
        assert message in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert (table(db, "announcements"), table(db, "notifications")) == ([], [])


def test_missing_file_and_conflicting_flags_exit_1(runner, db, world, yaml_file, tmp_path):
    result = runner.invoke(args=["announce", str(tmp_path / "nope.yaml")])
    assert (result.exit_code, "error: file: Cannot read" in result.output) == (1, True)
    result = runner.invoke(args=["announce", yaml_file(), "--dry-run", "--test-to", "a@b.de"])
    assert result.exit_code == 1
    assert "use either --dry-run or --test-to" in result.output
    result = runner.invoke(args=["announce", yaml_file(), "--test-to", "not an address"])
    assert result.exit_code == 1
    assert table(db, "notifications") == []


def test_announce_to_nobody_is_refused(runner, db, yaml_file):
    result = runner.invoke(args=["announce", yaml_file(ANNOUNCEMENT.replace("[sms-eu]", "null"))])
    assert result.exit_code == 1
    assert "recipients: 0 (de: 0, en: 0)" in result.output
    assert "error: no confirmed subscriber matches this audience" in result.output
    assert table(db, "announcements") == []


def test_hash_password_works_where_the_app_refuses_to_start():
    """Production refuses to start without ADMIN_PASSWORD_HASH; making one must still work."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADMIN_", "SECRET_"))}
    env["APP_ENV"] = "production"
    result = subprocess.run(
        [sys.executable, "-m", "notifier.cli_admin", "--password-stdin"],
        input=f"{PASSWORD}\n",
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert check_password_hash(result.stdout.strip(), PASSWORD)


def test_announce_file_times_without_offset_are_read_in_the_window_zone():
    from notifier.announcements import normalize

    content, _ = normalize(
        {
            "window": {
                "start": "2026-07-01 22:00",
                "end": "2026-07-02T01:30Z",
                "zone": "Europe/Berlin",
            }
        }
    )
    assert content["window"] == {
        "start": "2026-07-01T20:00:00Z",  # 22:00 CEST
        "end": "2026-07-02T01:30:00Z",  # an explicit offset wins
        "zone": "Europe/Berlin",
    }
