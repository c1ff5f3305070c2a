"""Settings: parsed once from an environment mapping into a frozen dataclass."""

from __future__ import annotations

import math
import os
import re
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

from limits import parse_many

from .shutdown import RESERVE_SECONDS

DEFAULT_FEED_URL = "https://status.sinch.com/history.atom"
# `test` is the test suite's own mode (tests/conftest.py); it behaves like development.
APP_ENVS = ("development", "production", "test")
# A fixed key keeps development offline and lets web and worker processes verify each other's
# tokens. Production refuses it (see production_errors).
DEV_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"
MIN_SECRET_BYTES = 32
# A floor on distinct characters catches placeholder and typed keys ("a" * 32, "changeme" or
# "password" repeated: 7 distinct) without ever refusing a random one. The chance that a random
# key shows fewer than 10 distinct characters (occupancy counts, computed exactly): 64 hex
# characters (Heroku's "generator": "secret", secrets.token_hex(32)) 1e-12;
# secrets.token_urlsafe(48) 1e-44; secrets.token_urlsafe(24), the 32-byte minimum, 1e-17. Only
# a 32-character hex key (16 random bytes, half of what production asks for) reaches 1e-4.
# It is a tripwire for mistakes, not an entropy proof: "abcdefghij" * 4 passes.
MIN_SECRET_DISTINCT_CHARS = 10
MAKE_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'


class SettingsError(ValueError):
    """A setting has a value the service cannot use; the message names it."""


@dataclass(frozen=True)
class Settings:
    app_env: str = "development"
    dyno: str | None = None
    secret_key: str = DEV_SECRET_KEY
    secret_key_fallbacks: tuple[str, ...] = ()
    database_url: str = "sqlite:///instance/notifier.db"
    database_direct_url: str | None = None
    feed_urls: tuple[str, ...] = (DEFAULT_FEED_URL,)
    poll_interval_seconds: int = 60
    dispatch_interval_seconds: int = 5
    dispatch_lease_seconds: float = 120  # fractions allowed: the crash tests use 0.3
    send_batch_size: int = 1000
    send_concurrency: int = 8  # SendGrid requests in flight per worker process
    # SIGTERM to exit of the worker (notifier.shutdown): the platform's grace period less 5 s
    shutdown_budget_seconds: int = 25
    public_base_url: str = "http://localhost:5000"
    mail_from: str = "Sinch Status <status-noreply@localhost>"
    list_id: str = "Sinch status notifications <status.notifier.localhost>"
    sendgrid_api_key: str | None = None
    sendgrid_api_host: str = "https://api.sendgrid.com"
    sendgrid_timeout_seconds: float = 10.0
    sendgrid_webhook_public_key: str | None = None
    admin_password_hash: str | None = None
    metrics_token: str | None = None  # GET /metrics bearer token; None: /metrics is 404
    notification_ttl_hours: int = 24
    review_mode: bool = False
    review_timeout_minutes: int = 15
    email_backend: str = "outbox"
    instance_path: str = "instance"
    feed_timeout_seconds: float = 10.0
    feed_max_bytes: int = 5 * 1024 * 1024
    stale_after_polls: int = 5
    port: int = 5000
    web_concurrency: int = 2
    log_level: str = "INFO"
    # Sign-up form and the public pages (see notifier/public.py and notifier/ratelimit.py).
    trusted_proxy_hops: int = 0
    consent_version: str = "2026-11"
    rate_limit_subscribe: str = "10 per 10 minutes"
    rate_limit_links: str = "60 per 10 minutes"
    rate_limit_one_click: str = "300 per minute"
    form_min_fill_seconds: int = 3
    # Ops console (notifier/admin/): session timeouts and the login limit (per IP and per name).
    # Reminders before a maintenance window opens (notifier/reminders.py), in minutes before its
    # start, farthest first; () sends none.
    maintenance_reminder_minutes: tuple[int, ...] = (24 * 60,)
    admin_session_idle_minutes: int = 30
    admin_session_max_hours: int = 12
    rate_limit_admin_login: str = "5 per minute;20 per hour"
    # Ops alerts by mail (notifier/alerts.py): who gets them (none: dashboard only), in which
    # language, and how long the oldest due delivery may wait before it is an alert.
    ops_alert_emails: tuple[str, ...] = ()
    ops_language: str = "en"
    backlog_alert_minutes: int = 10
    # Slack, Teams and webhook channels (issue 12, notifier/delivery/channels.py). Outbound
    # HTTP to targets subscribers give: timeouts, a cap on the answer read, requests in flight
    # per worker, and when a failing target's subscription is paused (N permanent failures in
    # a row - 404/410 - or failures for CHANNEL_PAUSE_AFTER_HOURS). `channel_allow_private_targets`
    # lets targets resolve to loopback/private addresses and be http: the test suite's own
    # setting (local fake receivers); production refuses it.
    channel_timeout_seconds: float = 10.0
    channel_max_response_bytes: int = 64 * 1024
    channel_concurrency: int = 4
    channel_pause_after_failures: int = 5
    channel_pause_after_hours: int = 24
    channel_allow_private_targets: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def production(self) -> bool:
        return self.app_env == "production" or bool(self.dyno)

    @property
    def verification_keys(self) -> list[str]:
        """Keys tokens are accepted with, oldest first: links in mails sent before a key
        rotation keep working while the old key is listed in SECRET_KEY_FALLBACKS."""
        return [*self.secret_key_fallbacks, self.secret_key]

    @property
    def database_is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite:")

    @property
    def sqlite_path(self) -> Path:
        """The file behind a sqlite:/// URL (relative paths are relative to the cwd)."""
        if not self.database_is_sqlite:
            raise SettingsError("DATABASE_URL is not a sqlite:/// URL")
        return Path(self.database_url.removeprefix("sqlite:").removeprefix("///"))

    @property
    def outbox_path(self) -> Path:
        return Path(self.instance_path) / "outbox"

    def with_overrides(self, **changes) -> Settings:
        return replace(self, **changes)


def _int(environ: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


MAX_SEND_CONCURRENCY = 32


def _send_concurrency(environ: Mapping[str, str]) -> int:
    """SEND_CONCURRENCY: 1-32 SendGrid requests in flight per worker (1 = one at a time).

    Bounded because each request in flight holds up to 1000 rendered recipients and its JSON
    body (about 1 MB) in memory, and its claimed rows are what a killed worker strands.
    """
    value = _int(environ, "SEND_CONCURRENCY", Settings.send_concurrency, minimum=1)
    if value > MAX_SEND_CONCURRENCY:
        raise SettingsError(f"SEND_CONCURRENCY must be at most {MAX_SEND_CONCURRENCY}, got {value}")
    return value


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):  # float() takes "nan" and "inf"
        raise SettingsError(f"{name} must be a number, got {raw!r}")
    if value <= 0:
        raise SettingsError(f"{name} must be positive, got {raw!r}")
    return value


LEASE_SECONDS_RANGE = (0.1, 86_400.0)


def _lease_seconds(environ: Mapping[str, str]) -> float:
    """DISPATCH_LEASE_SECONDS: seconds (default 120, fractions allowed, 0.1 to 86,400) a
    worker holds the deliveries it claimed; a killed worker's rows are taken over after it.

    Fractions exist for the kill -9 tests, which wait out a dead worker's lease in every round
    (tests/test_crash.py). Below 0.1 s a lease is gone before the request it covers (4e-7 s
    is timedelta(0)); beyond a day `now + lease` overflows a datetime at 1e12. Raises
    SettingsError for anything else.
    """
    value = _float(environ, "DISPATCH_LEASE_SECONDS", Settings.dispatch_lease_seconds)
    low, high = LEASE_SECONDS_RANGE
    if not low <= value <= high:
        raw = environ.get("DISPATCH_LEASE_SECONDS", "").strip()
        raise SettingsError(
            f"DISPATCH_LEASE_SECONDS must be between {low:g} and {high:,.0f} seconds, got {raw!r}"
        )
    return value


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "on", "true", "yes"}:
        return True
    if raw in {"0", "off", "false", "no"}:
        return False
    raise SettingsError(f"{name} must be on or off, got {raw!r}")


def _database_url(environ: Mapping[str, str], instance_path: str) -> str:
    """DATABASE_URL, or the SQLite file notifier.db inside INSTANCE_PATH (so that each instance
    folder has its own database, whatever the working directory)."""
    url = environ.get("DATABASE_URL", "").strip()
    if not url:
        return "sqlite:///" + str(Path(instance_path) / "notifier.db")
    if url.startswith("postgres://"):
        # Heroku still hands out the legacy scheme; libpq and psycopg want postgresql://.
        url = "postgresql://" + url.removeprefix("postgres://")
    if not (url.startswith("sqlite:///") or url.startswith("postgresql://")):
        raise SettingsError(
            "DATABASE_URL must start with sqlite:/// or postgres(ql)://, got "
            + repr(url.split("://")[0] + "://…")
        )
    return url


def _database_direct_url(environ: Mapping[str, str], database_url: str) -> str | None:
    """DATABASE_DIRECT_URL: the database itself when DATABASE_URL is a connection pooler
    (README, "Behind a connection pooler"); migrations use it. PostgreSQL URLs only."""
    url = environ.get("DATABASE_DIRECT_URL", "").strip()
    if not url:
        return None
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if not url.startswith("postgresql://") or not database_url.startswith("postgresql://"):
        raise SettingsError(
            "DATABASE_DIRECT_URL must be a postgres(ql):// URL, next to a PostgreSQL DATABASE_URL"
        )
    return url


def _feed_urls(env: Mapping[str, str]) -> tuple[str, ...]:
    """FEED_URLS split at commas and/or whitespace (a list pasted with spaces is still a
    list). Raises SettingsError on the first entry that is not an http(s) URL with a host."""
    urls = tuple(u for u in re.split(r"[,\s]+", env.get("FEED_URLS", "")) if u)
    for url in urls:
        try:
            parts = urlsplit(url)
            usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:  # "http://[::1" or a port that is not a number
            usable = False
        if not usable:
            raise SettingsError(
                f"FEED_URLS entries must be http(s) URLs with a host, got {url!r} "
                "(separate several with commas or spaces)"
            )
    return urls


_OFFSET = re.compile(r"([0-9]+)([mhd])")
_OFFSET_MINUTES = {"m": 1, "h": 60, "d": 24 * 60}


def _reminder_minutes(env: Mapping[str, str]) -> tuple[int, ...]:
    """MAINTENANCE_REMINDERS: comma-separated offsets before a maintenance window opens
    ("24h,1h", "90m", "2d"), as minutes, farthest first, each once. Unset: 24h; empty or
    "off": no reminders. Raises SettingsError naming the first entry that is not a positive
    whole number with m, h or d."""
    if "MAINTENANCE_REMINDERS" not in env:
        return Settings.maintenance_reminder_minutes
    raw = env["MAINTENANCE_REMINDERS"].strip()
    if raw.lower() in ("", "off"):
        return ()
    minutes = set()
    for entry in (e.strip() for e in raw.split(",")):
        match = _OFFSET.fullmatch(entry.lower())
        if not match or int(match[1]) == 0:
            raise SettingsError(
                "MAINTENANCE_REMINDERS entries must be a whole number of minutes, hours or days "
                f"before the window opens (like 24h,1h or 90m or 2d), or off; got {entry!r}"
            )
        minutes.add(int(match[1]) * _OFFSET_MINUTES[match[2]])
    return tuple(sorted(minutes, reverse=True))


def _rate_limit(environ: Mapping[str, str], name: str, default: str) -> str:
    raw = environ.get(name, "").strip() or default
    try:
        parse_many(raw)
    except ValueError:
        raise SettingsError(
            f"{name} must be a rate limit like '10 per 10 minutes', got {raw!r}"
        ) from None
    return raw


def _header(env: Mapping[str, str], name: str, header: str, default: str) -> str:
    """A setting that becomes a mail header in every mail. Refused in every mode when it
    holds a line break or an RFC 2047 encoded word (it would add headers to every mail), and
    for LIST_ID when notifier.delivery.mailheaders cannot write it at all; whether MAIL_FROM is a
    usable sender is a production check (production_errors)."""
    from .delivery.mailheaders import UnsafeHeader, header_value

    value = env.get(name, "").strip() or default
    try:
        if "=?" in value or any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value):
            raise UnsafeHeader("a line break, control character or =?…?= encoded word")
        if header == "List-Id":
            header_value(header, value)
    except UnsafeHeader as exc:
        raise SettingsError(f"{name} cannot be written as the {header} header: {exc}") from None
    return value


OPS_LANGUAGES = ("de", "en")


def _ops_alert_emails(env: Mapping[str, str]) -> tuple[str, ...]:
    """OPS_ALERT_EMAILS: comma-separated plain addresses (lower-cased, duplicates dropped);
    empty: alerts show on the dashboard only. Raises SettingsError naming the first entry that
    is not a plain address (no display names: each is a recipient of its own, RFC 5321)."""
    from email_validator import EmailNotValidError, validate_email

    from .delivery.mailheaders import UnsafeHeader, plain_address

    found: list[str] = []
    for number, raw in enumerate(env.get("OPS_ALERT_EMAILS", "").split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        try:
            info = validate_email(entry, check_deliverability=False, allow_smtputf8=False)
            address = plain_address(info.ascii_email.lower())
        except (EmailNotValidError, UnsafeHeader):
            raise SettingsError(
                f"OPS_ALERT_EMAILS entry {number} is not an email address: {entry[:80]!r} "
                "(use plain addresses separated by commas, e.g. ops@example.com,oncall@example.com)"
            ) from None
        if address not in found:
            found.append(address)
    return tuple(found)


def _ops_language(env: Mapping[str, str]) -> str:
    value = env.get("OPS_LANGUAGE", "").strip().lower() or Settings.ops_language
    if value not in OPS_LANGUAGES:
        raise SettingsError(f"OPS_LANGUAGE must be de or en, got {value!r}")
    return value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse settings from an environment mapping (os.environ when None).

    Raises SettingsError naming the first variable whose value is unusable in any mode (an
    unknown APP_ENV included); what only production refuses is in production_errors.
    """
    env = os.environ if environ is None else environ
    app_env = env.get("APP_ENV", "").strip().lower() or "development"
    if app_env not in APP_ENVS:
        # Refused in every mode: a typo such as "prod" would otherwise mean development and
        # silently switch the production checks off.
        raise SettingsError(f"APP_ENV must be development, production or test, got {app_env!r}")
    api_key = env.get("SENDGRID_API_KEY", "").strip() or None
    backend = env.get("EMAIL_BACKEND", "").strip().lower() or ("sendgrid" if api_key else "outbox")
    if backend not in {"sendgrid", "outbox"}:
        raise SettingsError(f"EMAIL_BACKEND must be sendgrid or outbox, got {backend!r}")
    feeds = _feed_urls(env)
    public = env.get("PUBLIC_BASE_URL", "").strip().rstrip("/") or Settings.public_base_url
    defaults = Settings()
    instance_path = env.get("INSTANCE_PATH", "").strip() or defaults.instance_path
    return Settings(
        app_env=app_env,
        dyno=env.get("DYNO") or None,
        secret_key=env.get("SECRET_KEY", "") or DEV_SECRET_KEY,
        secret_key_fallbacks=tuple(
            k.strip() for k in env.get("SECRET_KEY_FALLBACKS", "").split(",") if k.strip()
        ),
        database_url=_database_url(env, instance_path),
        database_direct_url=_database_direct_url(env, _database_url(env, instance_path)),
        feed_urls=feeds or defaults.feed_urls,
        poll_interval_seconds=_int(env, "POLL_INTERVAL_SECONDS", 60, minimum=1),
        dispatch_interval_seconds=_int(env, "DISPATCH_INTERVAL_SECONDS", 5, minimum=1),
        dispatch_lease_seconds=_lease_seconds(env),
        send_batch_size=min(1000, _int(env, "SEND_BATCH_SIZE", 1000, minimum=1)),
        send_concurrency=_send_concurrency(env),
        shutdown_budget_seconds=_int(
            env, "SHUTDOWN_BUDGET_SECONDS", 25, minimum=int(RESERVE_SECONDS) + 1
        ),
        public_base_url=public,
        mail_from=_header(env, "MAIL_FROM", "From", defaults.mail_from),
        list_id=_header(env, "LIST_ID", "List-Id", defaults.list_id),
        sendgrid_api_key=api_key,
        sendgrid_api_host=env.get("SENDGRID_API_HOST", "").strip() or defaults.sendgrid_api_host,
        sendgrid_timeout_seconds=_float(env, "SENDGRID_TIMEOUT_SECONDS", 10.0),
        sendgrid_webhook_public_key=env.get("SENDGRID_WEBHOOK_PUBLIC_KEY", "").strip() or None,
        admin_password_hash=env.get("ADMIN_PASSWORD_HASH", "").strip() or None,
        metrics_token=env.get("METRICS_TOKEN", "").strip() or None,
        notification_ttl_hours=_int(env, "NOTIFICATION_TTL_HOURS", 24, minimum=1),
        review_mode=_flag(env, "REVIEW_MODE", False),
        review_timeout_minutes=_int(env, "REVIEW_TIMEOUT_MINUTES", 15, minimum=1),
        email_backend=backend,
        instance_path=instance_path,
        feed_timeout_seconds=_float(env, "FEED_TIMEOUT_SECONDS", 10.0),
        feed_max_bytes=_int(env, "FEED_MAX_BYTES", defaults.feed_max_bytes, minimum=1024),
        stale_after_polls=_int(env, "STALE_AFTER_POLLS", 5, minimum=1),
        port=_int(env, "PORT", 5000, minimum=1),
        web_concurrency=_int(env, "WEB_CONCURRENCY", 2, minimum=1),
        log_level=(env.get("LOG_LEVEL", "").strip().upper() or "INFO"),
        # Heroku's router is one proxy hop; without it every visitor would share the router's
        # address and one per-IP limit.
        trusted_proxy_hops=_int(env, "TRUSTED_PROXY_HOPS", 1 if env.get("DYNO") else 0),
        consent_version=env.get("CONSENT_VERSION", "").strip() or defaults.consent_version,
        rate_limit_subscribe=_rate_limit(
            env, "RATE_LIMIT_SUBSCRIBE", defaults.rate_limit_subscribe
        ),
        rate_limit_links=_rate_limit(env, "RATE_LIMIT_LINKS", defaults.rate_limit_links),
        rate_limit_one_click=_rate_limit(
            env, "RATE_LIMIT_ONE_CLICK", defaults.rate_limit_one_click
        ),
        form_min_fill_seconds=_int(env, "FORM_MIN_FILL_SECONDS", 3),
        maintenance_reminder_minutes=_reminder_minutes(env),
        admin_session_idle_minutes=_int(env, "ADMIN_SESSION_IDLE_MINUTES", 30, minimum=1),
        admin_session_max_hours=_int(env, "ADMIN_SESSION_MAX_HOURS", 12, minimum=1),
        rate_limit_admin_login=_rate_limit(
            env, "RATE_LIMIT_ADMIN_LOGIN", defaults.rate_limit_admin_login
        ),
        ops_alert_emails=_ops_alert_emails(env),
        ops_language=_ops_language(env),
        backlog_alert_minutes=_int(env, "BACKLOG_ALERT_MINUTES", 10, minimum=1),
        channel_timeout_seconds=_float(env, "CHANNEL_TIMEOUT_SECONDS", 10.0),
        channel_max_response_bytes=_int(
            env, "CHANNEL_MAX_RESPONSE_BYTES", defaults.channel_max_response_bytes, minimum=1024
        ),
        channel_concurrency=min(32, _int(env, "CHANNEL_CONCURRENCY", 4, minimum=1)),
        channel_pause_after_failures=_int(env, "CHANNEL_PAUSE_AFTER_FAILURES", 5, minimum=1),
        channel_pause_after_hours=_int(env, "CHANNEL_PAUSE_AFTER_HOURS", 24, minimum=1),
        channel_allow_private_targets=_flag(env, "CHANNEL_ALLOW_PRIVATE_TARGETS", False),
    )


def production_errors(settings: Settings) -> list[str]:
    """One clear line per reason the settings are unsafe to run in production ([] outside
    production). No line quotes a secret: keys and hashes are described, never shown."""
    if not settings.production:
        return []
    errors = _secret_key_errors(settings)
    if settings.dyno and settings.database_is_sqlite:
        errors.append(
            "DATABASE_URL is SQLite but DYNO is set: Heroku dynos have separate, ephemeral "
            "disks, so web and worker would not share data; attach Heroku Postgres."
        )
    if not settings.admin_password_hash:
        errors.append(
            "ADMIN_PASSWORD_HASH is missing: the ops console would have no login "
            "(create one with: flask --app app admin hash-password)."
        )
    elif not password_hash_is_checkable(settings.admin_password_hash):
        errors.append(
            "ADMIN_PASSWORD_HASH is not a password hash Werkzeug can check "
            "(method$salt$hexdigest), so no one could log in: create one with: "
            "flask --app app admin hash-password."
        )
    if settings.email_backend == "sendgrid" and not settings.sendgrid_api_key:
        errors.append("EMAIL_BACKEND is sendgrid but SENDGRID_API_KEY is missing.")
    if settings.channel_allow_private_targets:
        errors.append(
            "CHANNEL_ALLOW_PRIVATE_TARGETS is on: Slack, Teams and webhook targets could reach "
            "this host's private network; it is for the test suite only."
        )
    if settings.email_backend == "outbox":
        errors.append(
            "EMAIL_BACKEND is outbox (files on local disk) in production: set "
            "SENDGRID_API_KEY so mail is really sent."
        )
    _, sender = parseaddr(settings.mail_from)
    if "@" not in sender or sender.endswith("@localhost"):
        errors.append(
            f"MAIL_FROM is not a usable sender address ({settings.mail_from!r}): use a SendGrid "
            "verified sender, e.g. 'Sinch Status <status@example.com>'."
        )
    if not settings.public_base_url.startswith("https://"):
        errors.append(
            "PUBLIC_BASE_URL must be an https:// URL in production: links in emails "
            "(one-click unsubscribe included) need it."
        )
    if settings.sendgrid_webhook_public_key:
        errors.extend(_webhook_key_errors(settings.sendgrid_webhook_public_key))
    return errors


def secret_key_weakness(key: str) -> str | None:
    """Why `key` is too weak to sign tokens ("31 bytes, at least 32 needed"), or None.

    Rules: at least MIN_SECRET_BYTES bytes (UTF-8) and at least MIN_SECRET_DISTINCT_CHARS
    distinct characters (see there for why 10). The reason never quotes the key.
    """
    size = len(key.encode())
    if size < MIN_SECRET_BYTES:
        return f"{size} byte{'s' * (size != 1)}, at least {MIN_SECRET_BYTES} needed"
    distinct = len(set(key))
    if distinct < MIN_SECRET_DISTINCT_CHARS:
        return (
            f"{distinct} distinct character{'s' * (distinct != 1)}, at least "
            f"{MIN_SECRET_DISTINCT_CHARS} needed (a random key has many)"
        )
    return None


def _is_dev_key(key: str) -> bool:
    """The public development key, also with stray spaces or another case around it."""
    return key.strip().lower() == DEV_SECRET_KEY.lower()


def _secret_key_errors(settings: Settings) -> list[str]:
    # Every fallback verifies tokens as well as SECRET_KEY does, so each one must be as strong.
    errors = []
    key = settings.secret_key
    weakness = secret_key_weakness(key)
    if not key.strip() or _is_dev_key(key):
        errors.append(
            "SECRET_KEY is missing or is the public development key: set a random value of "
            f"at least {MIN_SECRET_BYTES} bytes ({MAKE_KEY})."
        )
    elif weakness:
        errors.append(
            f"SECRET_KEY is too weak: {weakness}; tokens signed with it could be forged "
            f"(make a new one with: {MAKE_KEY})."
        )
    for number, fallback in enumerate(settings.secret_key_fallbacks, start=1):
        name = f"SECRET_KEY_FALLBACKS entry {number}"
        weakness = secret_key_weakness(fallback)
        if _is_dev_key(fallback):
            errors.append(
                f"{name} is the public development key: anyone can sign tokens with it "
                "(remove it from the list)."
            )
        elif weakness:
            errors.append(
                f"{name} is too weak: {weakness}; tokens signed with it could be forged "
                "(remove it from the list)."
            )
    return errors


def password_hash_is_checkable(value: str) -> bool:
    """Whether Werkzeug's check_password_hash could ever accept a password for `value`.

    Werkzeug stores "method$salt$hexdigest" (werkzeug.security.generate_password_hash) and
    compares the hex digest it computes with the stored one, so a value is usable when it has
    three parts, Werkzeug knows the method (unknown ones raise ValueError, bad parameters
    ValueError or TypeError), and the digest is lowercase hex of the length that method makes.
    Costs one hash computation (about 0.1 s for scrypt), paid once per process start.
    """
    from werkzeug.security import generate_password_hash

    method, _, rest = value.partition("$")
    salt, dollar, digest = rest.partition("$")
    if not (dollar and salt and digest) or set(digest) - set(string.hexdigits.lower()):
        return False
    try:
        made = generate_password_hash("", method=method)
    except (ValueError, TypeError):
        return False
    return len(made.rpartition("$")[2]) == len(digest)


def _webhook_key_errors(encoded: str) -> list[str]:
    from .hooks import load_public_key  # lazily: settings must not pull in Flask blueprints

    try:
        load_public_key(encoded)
    except ValueError as exc:
        reason = str(exc).partition(":")[0]  # "not a base64 DER public key: <library detail>"
        return [
            f"SENDGRID_WEBHOOK_PUBLIC_KEY is not usable ({reason}): paste the Verification Key "
            "from SendGrid's Signed Event Webhook settings (base64, without BEGIN/END lines)."
        ]
    return []
