"""Settings parsing and the production start-up refusals (each one clear line)."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from werkzeug.security import generate_password_hash

from app import create_app
from notifier.logs import configure_logging
from notifier.settings import (
    DEFAULT_FEED_URL,
    DEV_SECRET_KEY,
    Settings,
    SettingsError,
    load_settings,
    production_errors,
)

ROOT = Path(__file__).resolve().parents[1]
# Keys as operators make them: secrets.token_urlsafe(24) (the 32-byte minimum),
# secrets.token_urlsafe(48) (what the messages suggest), Heroku's "generator": "secret"
# (64 hex characters).
STRONG_KEY = "Z17MY9NQ293hnbQU7z2sAwXDmfQ73HqD"
URLSAFE_KEY = "kPC4p0hnFS7dLafiTozz0RHoseu_6LI1Jye2eSwt-AItnoBwvzlLbN4g8YYWRq9M"
HEX_KEY = "42f51517a16f8a1969bac49c75b591fa4ac2e8253e9ca6326b544344d64665ff"
# A real Werkzeug hash; pbkdf2 with few rounds keeps the start-up check fast in tests.
ADMIN_HASH = generate_password_hash("correct horse battery staple", method="pbkdf2:sha256:1000")
MAKE_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'
REFUSED = "status-notifier: refusing to start: "


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
    assert settings.shutdown_budget_seconds == 25  # Heroku: SIGKILL 30 s after SIGTERM
    assert load_settings({"SHUTDOWN_BUDGET_SECONDS": "55"}).shutdown_budget_seconds == 55


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"POLL_INTERVAL_SECONDS": "soon"}, "POLL_INTERVAL_SECONDS must be a whole number"),
        ({"POLL_INTERVAL_SECONDS": "0"}, "POLL_INTERVAL_SECONDS must be at least 1"),
        ({"REVIEW_MODE": "maybe"}, "REVIEW_MODE must be on or off"),
        # the budget must outlast the 5 s reserve kept for recording answers
        ({"SHUTDOWN_BUDGET_SECONDS": "5"}, "SHUTDOWN_BUDGET_SECONDS must be at least 6"),
        ({"EMAIL_BACKEND": "smtp"}, "EMAIL_BACKEND must be sendgrid or outbox"),
        ({"FEED_URLS": "ftp://x/history.atom"}, "FEED_URLS entries must be http(s) URLs"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL must start with sqlite:///"),
        (
            {"MAIL_FROM": "Sinch <s@sinch.example>\nBcc: x@example.net"},
            "MAIL_FROM cannot be written as the From header: a line break",
        ),
        (
            {"MAIL_FROM": "=?utf-8?q?Sinch=0D=0ABcc:_x@example.net?= <s@sinch.example>"},
            "MAIL_FROM cannot be written as the From header",
        ),
        ({"LIST_ID": "Sinch <no list id>"}, "LIST_ID cannot be written as the List-Id header"),
        ({"LIST_ID": "Sinch <a.b>\r\nBcc: x@y.z"}, "LIST_ID cannot be written as the List-Id"),
        (
            {"MAINTENANCE_REMINDERS": "24h,soon"},
            "MAINTENANCE_REMINDERS entries must be a whole number of minutes, hours or days "
            "before the window opens (like 24h,1h or 90m or 2d), or off; got 'soon'",
        ),
        ({"MAINTENANCE_REMINDERS": "0h"}, "MAINTENANCE_REMINDERS entries must be a whole"),
        ({"MAINTENANCE_REMINDERS": "1.5h"}, "MAINTENANCE_REMINDERS entries must be a whole"),
        ({"MAINTENANCE_REMINDERS": "-1h"}, "MAINTENANCE_REMINDERS entries must be a whole"),
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
    assert production_errors(load_settings(_production(SECRET_KEY=STRONG_KEY))) == []
    errors = production_errors(load_settings(_production(SECRET_KEY=STRONG_KEY[:31])))
    assert errors == [
        "SECRET_KEY is too weak: 31 bytes, at least 32 needed; tokens signed with it could "
        f"be forged (make a new one with: {MAKE_KEY})."
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


@pytest.mark.parametrize(
    ("value", "minutes"),
    [
        (None, (1440,)),
        ("", ()),
        ("  ", ()),
        ("24h,1h", (1440, 60)),
        (" 1h , 24H ", (1440, 60)),
        ("90m", (90,)),
        ("2d,24h,1h,1h", (2880, 1440, 60)),
        ("60m,1h", (60,)),
        ("off", ()),
        ("OFF", ()),
    ],
)
def test_maintenance_reminders_are_offsets_in_minutes_farthest_first(value, minutes):
    environ = {} if value is None else {"MAINTENANCE_REMINDERS": value}
    assert load_settings(environ).maintenance_reminder_minutes == minutes


def test_a_bad_reminder_offset_stops_the_cli_with_one_line(tmp_path):
    result = _run_cli({"MAINTENANCE_REMINDERS": "24h,1w"}, tmp_path, "db", "upgrade")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "status-notifier: refusing to start: MAINTENANCE_REMINDERS entries must be a whole "
        "number of minutes, hours or days before the window opens (like 24h,1h or 90m or 2d), "
        "or off; got '1w'"
    ]


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


def _start(env: dict, tmp_path: Path) -> list[str]:
    """create_app on this environment (own database and instance folder): the refusal lines
    it printed to stderr; an app that starts (its log lines go to stderr too) is closed again
    and gives []."""
    stderr = io.StringIO()
    paths = {"INSTANCE_PATH": str(tmp_path / "i"), "DATABASE_URL": f"sqlite:///{tmp_path}/n.db"}
    try:
        with contextlib.redirect_stderr(stderr):
            app = create_app({**paths, **env})
    except SystemExit as exc:
        assert exc.code == 1
        assert stderr.getvalue().endswith("\n")
        return stderr.getvalue().splitlines()
    finally:
        configure_logging("INFO")  # create_app pointed the log handler at the StringIO
    app.extensions["store"].close()
    return []


def _public_key(private) -> str:
    der = private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


WEBHOOK_KEY = _public_key(ec.generate_private_key(ec.SECP256R1()))
WEAK_KEY_FIX = f"tokens signed with it could be forged (make a new one with: {MAKE_KEY})."
WEAK_FALLBACK_FIX = "tokens signed with it could be forged (remove it from the list)."
HASH_REFUSAL = (
    "ADMIN_PASSWORD_HASH is not a password hash Werkzeug can check (method$salt$hexdigest), "
    "so no one could log in: create one with: flask --app app admin hash-password."
)
WEBHOOK_FIX = (
    "paste the Verification Key from SendGrid's Signed Event Webhook settings (base64, "
    "without BEGIN/END lines)."
)


@pytest.mark.parametrize(
    ("weakness", "line"),
    [
        (
            {"SECRET_KEY": "a" * 32},
            "SECRET_KEY is too weak: 1 distinct character, at least 10 needed (a random key "
            f"has many); {WEAK_KEY_FIX}",
        ),
        (
            {"SECRET_KEY": "changeme" * 6},
            "SECRET_KEY is too weak: 7 distinct characters, at least 10 needed (a random key "
            f"has many); {WEAK_KEY_FIX}",
        ),
        (
            {"SECRET_KEY": DEV_SECRET_KEY},
            "SECRET_KEY is missing or is the public development key: set a random value of at "
            f"least 32 bytes ({MAKE_KEY}).",
        ),
        (
            {"SECRET_KEY": f" {DEV_SECRET_KEY.upper()} "},
            "SECRET_KEY is missing or is the public development key: set a random value of at "
            f"least 32 bytes ({MAKE_KEY}).",
        ),
        (
            {"SECRET_KEY": "0123456789abcdef"},
            f"SECRET_KEY is too weak: 16 bytes, at least 32 needed; {WEAK_KEY_FIX}",
        ),
        (
            {"SECRET_KEY_FALLBACKS": "x"},
            f"SECRET_KEY_FALLBACKS entry 1 is too weak: 1 byte, at least 32 needed; "
            f"{WEAK_FALLBACK_FIX}",
        ),
        (
            {"SECRET_KEY_FALLBACKS": f"{HEX_KEY}, {'a' * 40}"},
            "SECRET_KEY_FALLBACKS entry 2 is too weak: 1 distinct character, at least 10 "
            f"needed (a random key has many); {WEAK_FALLBACK_FIX}",
        ),
        (
            {"SECRET_KEY_FALLBACKS": f"{HEX_KEY},{DEV_SECRET_KEY}"},
            "SECRET_KEY_FALLBACKS entry 2 is the public development key: anyone can sign "
            "tokens with it (remove it from the list).",
        ),
        ({"ADMIN_PASSWORD_HASH": "correct horse battery staple"}, HASH_REFUSAL),
        ({"ADMIN_PASSWORD_HASH": "pa$$word-hunter2"}, HASH_REFUSAL),
        ({"ADMIN_PASSWORD_HASH": "md5$salt$5f4dcc3b5aa765d61d8327deb882cf99"}, HASH_REFUSAL),
        ({"ADMIN_PASSWORD_HASH": "scrypt:32768:8:1$salt$hash"}, HASH_REFUSAL),
        ({"ADMIN_PASSWORD_HASH": "scrypt:lots$salt$" + "ab" * 64}, HASH_REFUSAL),
        ({"ADMIN_PASSWORD_HASH": "pbkdf2:sha999:1000$salt$" + "ab" * 32}, HASH_REFUSAL),
        ({"ADMIN_PASSWORD_HASH": ADMIN_HASH[:-2]}, HASH_REFUSAL),  # a character pair lost
        (
            {"ADMIN_PASSWORD_HASH": ADMIN_HASH.upper().replace("PBKDF2:SHA", "pbkdf2:sha")},
            HASH_REFUSAL,
        ),
        (
            {"SENDGRID_WEBHOOK_PUBLIC_KEY": "not-a-key"},
            f"SENDGRID_WEBHOOK_PUBLIC_KEY is not usable (not a base64 DER public key): "
            f"{WEBHOOK_FIX}",
        ),
        (
            {"SENDGRID_WEBHOOK_PUBLIC_KEY": base64.b64encode(b"\x30\x03abc").decode()},
            f"SENDGRID_WEBHOOK_PUBLIC_KEY is not usable (not a base64 DER public key): "
            f"{WEBHOOK_FIX}",
        ),
        (
            {
                "SENDGRID_WEBHOOK_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----"
                + WEBHOOK_KEY
                + "-----END PUBLIC KEY-----"
            },
            f"SENDGRID_WEBHOOK_PUBLIC_KEY is not usable (not a base64 DER public key): "
            f"{WEBHOOK_FIX}",
        ),
        (
            {"SENDGRID_WEBHOOK_PUBLIC_KEY": _public_key(ec.generate_private_key(ec.SECP384R1()))},
            f"SENDGRID_WEBHOOK_PUBLIC_KEY is not usable (not an ECDSA P-256 public key): "
            f"{WEBHOOK_FIX}",
        ),
        (
            {
                "SENDGRID_WEBHOOK_PUBLIC_KEY": _public_key(
                    rsa.generate_private_key(public_exponent=65537, key_size=1024)
                )
            },
            f"SENDGRID_WEBHOOK_PUBLIC_KEY is not usable (not an ECDSA P-256 public key): "
            f"{WEBHOOK_FIX}",
        ),
    ],
)
def test_production_start_refuses_each_weak_setting_with_one_line(weakness, line, tmp_path):
    assert _start(_production(), tmp_path) == []  # the same settings without the weakness
    lines = _start(_production(**weakness), tmp_path)
    assert lines == [REFUSED + line]
    # Never the secret itself, nor a piece of it (a password pasted as the hash), in the line.
    (name, value), *_ = weakness.items()
    pieces = value.replace("$", ",").split(",")
    assert name == "SENDGRID_WEBHOOK_PUBLIC_KEY" or not [
        piece for piece in pieces if len(piece.strip()) >= 8 and piece.strip() in lines[0]
    ]


@pytest.mark.parametrize("value", ["prod", "Prod", "staging", "dev", "live", "production1"])
def test_an_unknown_app_env_is_refused_in_every_mode(value, tmp_path):
    shown = value.lower()
    line = f"APP_ENV must be development, production or test, got {shown!r}"
    assert _start({"APP_ENV": value}, tmp_path) == [REFUSED + line]
    assert _start(_production(APP_ENV=value), tmp_path) == [REFUSED + line]
    with pytest.raises(SettingsError) as refused:
        load_settings({"APP_ENV": value})
    assert str(refused.value) == line


def test_the_cli_refuses_a_mistyped_app_env_with_one_line(tmp_path):
    result = _run_cli({"APP_ENV": "prod"}, tmp_path, "db", "upgrade")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        REFUSED + "APP_ENV must be development, production or test, got 'prod'"
    ]
    assert not (tmp_path / "n.db").exists()


@pytest.mark.parametrize(
    ("app_env", "production"),
    [("", False), ("development", False), ("test", False), (" Production ", True)],
)
def test_known_app_env_values_start(app_env, production, tmp_path):
    assert _start(_production(APP_ENV=app_env), tmp_path) == []
    assert load_settings(_production(APP_ENV=app_env)).production is production


@pytest.mark.parametrize(
    "good",
    [
        {"SECRET_KEY": URLSAFE_KEY},
        {"SECRET_KEY": HEX_KEY},
        {"SECRET_KEY": HEX_KEY, "SECRET_KEY_FALLBACKS": f"{URLSAFE_KEY}, {STRONG_KEY}"},
        {"ADMIN_PASSWORD_HASH": generate_password_hash("a long pass phrase")},  # scrypt
        {"ADMIN_PASSWORD_HASH": generate_password_hash("pw", method="pbkdf2")},
        {"SENDGRID_WEBHOOK_PUBLIC_KEY": WEBHOOK_KEY},
        {"SENDGRID_WEBHOOK_PUBLIC_KEY": f"  {WEBHOOK_KEY}\n"},
    ],
)
def test_good_production_settings_start(good, tmp_path):
    assert _start(_production(**good), tmp_path) == []


def test_random_keys_of_every_usual_kind_always_pass():
    # The distinct-character floor must never refuse a key made the way the docs say (or
    # Heroku does); see MIN_SECRET_DISTINCT_CHARS for the odds.
    cheap_hash = generate_password_hash("pw", method="pbkdf2:sha256:1")
    settings = load_settings(_production(ADMIN_PASSWORD_HASH=cheap_hash))
    for _ in range(2000):
        for key in (secrets.token_urlsafe(48), secrets.token_hex(32), secrets.token_urlsafe(24)):
            changed = settings.with_overrides(secret_key=key, secret_key_fallbacks=(key,))
            assert production_errors(changed) == [], key


def test_production_refuses_the_test_suites_private_channel_targets():
    """CHANNEL_ALLOW_PRIVATE_TARGETS switches the channel address guard off (issue 12): the
    test suite's fake receivers live on 127.0.0.1. Production never runs with it."""
    assert load_settings({}).channel_allow_private_targets is False
    errors = production_errors(load_settings(_production(CHANNEL_ALLOW_PRIVATE_TARGETS="on")))
    assert errors == [
        "CHANNEL_ALLOW_PRIVATE_TARGETS is on: Slack, Teams and webhook targets could reach "
        "this host's private network; it is for the test suite only."
    ]
    settings = load_settings(
        {
            "CHANNEL_TIMEOUT_SECONDS": "2.5",
            "CHANNEL_MAX_RESPONSE_BYTES": "2048",
            "CHANNEL_CONCURRENCY": "99",
            "CHANNEL_PAUSE_AFTER_FAILURES": "3",
            "CHANNEL_PAUSE_AFTER_HOURS": "6",
        }
    )
    assert (
        settings.channel_timeout_seconds,
        settings.channel_max_response_bytes,
        settings.channel_concurrency,
        settings.channel_pause_after_failures,
        settings.channel_pause_after_hours,
    ) == (2.5, 2048, 32, 3, 6)
    with pytest.raises(SettingsError, match="CHANNEL_PAUSE_AFTER_FAILURES must be at least 1"):
        load_settings({"CHANNEL_PAUSE_AFTER_FAILURES": "0"})
