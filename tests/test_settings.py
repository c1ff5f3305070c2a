"""Settings parsing and the production start-up refusals (each one clear line)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from notifier.settings import (
    DEFAULT_FEED_URL,
    DEV_SECRET_KEY,
    Settings,
    SettingsError,
    load_settings,
    production_errors,
)

ROOT = Path(__file__).resolve().parents[1]
STRONG_KEY = "k" * 32
ADMIN_HASH = "scrypt:32768:8:1$salt$hash"


def test_development_defaults_need_no_environment():
    settings = load_settings({})
    assert settings == Settings(
        app_env="development",
        secret_key=DEV_SECRET_KEY,
        database_url="sqlite:///instance/notifier.db",
        feed_urls=(DEFAULT_FEED_URL,),
        email_backend="outbox",
    )
    assert production_errors(settings) == []


def test_values_are_parsed_with_units_and_lists():
    settings = load_settings(
        {
            "FEED_URLS": " https://a.example/history.atom , https://b.example/history.rss ,",
            "POLL_INTERVAL_SECONDS": "30",
            "NOTIFICATION_TTL_HOURS": "6",
            "REVIEW_MODE": "on",
            "SENDGRID_API_KEY": "SG.x",
            "DATABASE_URL": "postgres://u:p@db.example:5432/n",
            "PUBLIC_BASE_URL": "https://notify.example.com/",
        }
    )
    assert settings.feed_urls == ("https://a.example/history.atom", "https://b.example/history.rss")
    assert settings.poll_interval_seconds == 30
    assert settings.notification_ttl_hours == 6
    assert settings.review_mode is True
    assert settings.email_backend == "sendgrid"
    assert settings.database_url == "postgresql://u:p@db.example:5432/n"
    assert settings.public_base_url == "https://notify.example.com"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"POLL_INTERVAL_SECONDS": "soon"}, "POLL_INTERVAL_SECONDS must be a whole number"),
        ({"POLL_INTERVAL_SECONDS": "0"}, "POLL_INTERVAL_SECONDS must be at least 1"),
        ({"REVIEW_MODE": "maybe"}, "REVIEW_MODE must be on or off"),
        ({"EMAIL_BACKEND": "smtp"}, "EMAIL_BACKEND must be sendgrid or outbox"),
        ({"FEED_URLS": "ftp://x/history.atom"}, "FEED_URLS entries must be http(s) URLs"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL must start with sqlite:///"),
    ],
)
def test_bad_values_raise_a_message_naming_the_variable(environ, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(environ)


def _production(**extra) -> dict:
    env = {
        "APP_ENV": "production",
        "SECRET_KEY": STRONG_KEY,
        "ADMIN_PASSWORD_HASH": ADMIN_HASH,
        "SENDGRID_API_KEY": "SG.key",
        "PUBLIC_BASE_URL": "https://notify.example.com",
        "MAIL_FROM": "Sinch Status <status@sinch.example>",
    }
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def test_complete_production_settings_pass():
    assert production_errors(load_settings(_production())) == []


def test_weak_secret_is_refused_at_31_bytes_and_accepted_at_32():
    assert production_errors(load_settings(_production(SECRET_KEY="k" * 32))) == []
    errors = production_errors(load_settings(_production(SECRET_KEY="k" * 31)))
    assert errors == [
        "SECRET_KEY is too weak: 31 bytes, at least 32 needed; tokens signed with it could "
        "be forged."
    ]


def test_each_production_problem_is_one_line():
    errors = production_errors(
        load_settings(
            {"DYNO": "web.1", "EMAIL_BACKEND": "sendgrid", "PUBLIC_BASE_URL": "http://x.example"}
        )
    )
    assert [e.split(" ")[0] for e in errors] == [
        "SECRET_KEY",
        "DATABASE_URL",
        "ADMIN_PASSWORD_HASH",
        "EMAIL_BACKEND",
        "MAIL_FROM",
        "PUBLIC_BASE_URL",
    ]
    assert all("\n" not in e for e in errors)


def _run_cli(env: dict, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    full_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'n.db'}",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_app_refuses_to_start_on_a_dyno_with_sqlite_and_says_why(tmp_path):
    result = _run_cli(_production(DYNO="worker.1", APP_ENV=None), tmp_path, "db", "upgrade")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "status-notifier: refusing to start: DATABASE_URL is SQLite but DYNO is set: Heroku "
        "dynos have separate, ephemeral disks, so web and worker would not share data; attach "
        "Heroku Postgres."
    ]


def test_app_refuses_to_start_with_a_missing_secret(tmp_path):
    result = _run_cli(_production(SECRET_KEY=None), tmp_path, "db", "upgrade")
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert "SECRET_KEY is missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_setting_value_stops_the_cli_with_one_line(tmp_path):
    result = _run_cli({"POLL_INTERVAL_SECONDS": "often"}, tmp_path, "db", "upgrade")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "status-notifier: refusing to start: POLL_INTERVAL_SECONDS must be a whole number, "
        "got 'often'"
    ]


def test_links_signed_with_a_rotated_key_keep_working_while_it_is_a_fallback():
    from notifier.tokens import MANAGE, TokenError, make_token, read_token

    old = load_settings({"SECRET_KEY": "o" * 40})
    new = load_settings({"SECRET_KEY": "n" * 40, "SECRET_KEY_FALLBACKS": "o" * 40})
    token = make_token(old.secret_key, MANAGE, 7, "nonce")
    assert read_token(new.verification_keys, MANAGE, token) == read_token(
        old.verification_keys, MANAGE, token
    )
    dropped = load_settings({"SECRET_KEY": "n" * 40})
    with pytest.raises(TokenError):
        read_token(dropped.verification_keys, MANAGE, token)


@pytest.mark.parametrize("sender", ["Sinch Status", "status@localhost", "<>"])
def test_production_refuses_a_sender_that_is_not_an_address(sender):
    errors = production_errors(load_settings(_production(MAIL_FROM=sender)))
    assert [e.split(" ")[0] for e in errors] == ["MAIL_FROM"]
