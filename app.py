"""Application factory: gunicorn (`app:create_app()`) and the CLI (`flask --app app`) use it."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import Flask

from notifier.settings import Settings, SettingsError, load_settings, production_errors

log = logging.getLogger("notifier")


class ConfigurationError(SystemExit):
    """Startup refused; each line of the message is one reason."""


def create_app(config: Settings | Mapping[str, str] | None = None) -> Flask:
    """Build the Flask app from a Settings value, an environment mapping, or os.environ.

    Refusals (a setting that does not parse, unsafe production settings, a database that
    cannot be opened or migrated) print one "status-notifier: refusing to start: …" line each
    on stderr and exit with status 1. Web processes (gunicorn) and callers passing `config`
    meet them here. Under the `flask` command line they wait until a command first uses the
    settings or the database (see DeferredStore), so `--help` and the database-free commands
    (`feed inspect`, `feed replay`, `preview --feed`, `admin hash-password`) work with no
    database, a database that is down, or a bad setting, and create no database file.
    """
    deferred = config is None and click.get_current_context(silent=True) is not None
    settings, refusals = _load_settings(config)
    unparsed = bool(refusals)
    configure_logging(settings)
    refusals = refusals or production_errors(settings)
    if refusals and not deferred:
        _refuse(refusals)
    app = Flask(__name__, instance_path=str(Path(settings.instance_path).resolve()))
    configure_flask(app, settings)
    if deferred:
        app.extensions["store"] = DeferredStore(app, settings, refusals)
        if unparsed:  # the defaults built the app; no command may take them for the settings
            app.extensions["settings"] = RefusedSettings(refusals)
    else:
        init_store(app, settings)
    register_converters(app)
    register_blueprints(app)
    init_web(app, settings)
    register_commands(app)
    register_error_handlers(app)
    return app


def _load_settings(config) -> tuple[Settings, list[str]]:
    """The settings and the reasons they are refused ([] when usable); unparseable settings
    give the defaults plus the reason, so the app can still be built for `--help`."""
    if isinstance(config, Settings):
        return config, []
    try:
        return load_settings(os.environ if config is None else config), []
    except SettingsError as exc:
        return Settings(), [str(exc)]


def _refuse(lines: list[str]):
    for line in lines:
        print(f"status-notifier: refusing to start: {line}", file=sys.stderr, flush=True)
    raise ConfigurationError(1)


def configure_logging(settings: Settings) -> None:
    from notifier.logs import configure_logging as configure

    configure(settings.log_level)


def refuse_unsafe_production(settings: Settings) -> None:
    errors = production_errors(settings)
    if errors:
        _refuse(errors)


def configure_flask(app: Flask, settings: Settings) -> None:
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SECRET_KEY_FALLBACKS=list(settings.secret_key_fallbacks),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.production,
        PREFERRED_URL_SCHEME="https" if settings.production else "http",
        MAX_CONTENT_LENGTH=256 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.extensions["settings"] = settings
    app.extensions["clock"] = lambda: datetime.now(UTC)


def init_store(app: Flask, settings: Settings) -> None:
    app.extensions["store"] = _open_store(settings)


def _open_store(settings: Settings):
    from notifier.store import StoreError, open_store

    store = open_store(settings)
    # Every process brings the schema up to date on start, so a fresh checkout runs and a
    # forgotten release phase cannot leave code and schema apart. Processes starting at the
    # same moment are serialized (SQLite write lock, PostgreSQL advisory lock).
    try:
        store.upgrade()
    except StoreError as exc:
        _refuse([f"database is not usable: {exc}"])
    return store


class DeferredStore:
    """The store of a `flask` CLI process: opened and migrated when a command first uses it.

    Any attribute access opens it (or refuses: the start-up refusal lines, exit status 1) and
    then puts the real store into app.extensions["store"]. `open_now()` does that up front:
    the worker calls it so that a refusal stops the process, not one scheduler thread.
    """

    def __init__(self, app: Flask, settings: Settings, refusals: list[str]):
        self._app, self._settings, self._refusals = app, settings, refusals
        self._store = None
        self._lock = threading.Lock()

    def open_now(self):
        with self._lock:
            if self._store is None:
                if self._refusals:
                    _refuse(self._refusals)
                self._store = _open_store(self._settings)
                self._app.extensions["store"] = self._store
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def __getattr__(self, name: str):
        return getattr(self.open_now(), name)


class RefusedSettings:
    """Stands in for settings that did not parse: any use prints the refusal and exits 1."""

    def __init__(self, refusals: list[str]):
        self._refusals = refusals

    def __getattr__(self, name: str):
        _refuse(self._refusals)


def register_converters(app: Flask) -> None:
    """`<id:name>` in routes: a row id bounded to the database's integers (before any route)."""
    from notifier.admin.params import IdConverter

    app.url_map.converters["id"] = IdConverter


def register_blueprints(app: Flask) -> None:
    from notifier.admin import bp as admin_bp
    from notifier.calendar_feed import bp as calendar_bp
    from notifier.health import bp as health_bp
    from notifier.hooks import bp as hooks_bp
    from notifier.metrics import bp as metrics_bp
    from notifier.public import bp as public_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(hooks_bp)
    app.register_blueprint(public_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(calendar_bp)
    app.register_blueprint(metrics_bp)


def init_web(app: Flask, settings: Settings) -> None:
    """Languages, CSRF and security headers, per-IP rate limits (after the blueprints exist)."""
    from notifier.i18n import init_i18n
    from notifier.ratelimit import init_rate_limits
    from notifier.security import init_security

    init_i18n(app)
    init_security(app, settings)
    init_rate_limits(app, settings)


def register_commands(app: Flask) -> None:
    from notifier.cli import register
    from notifier.cli_admin import register as register_admin
    from notifier.preview import register as register_preview

    register(app)
    register_preview(app)
    register_admin(app)


def register_error_handlers(app: Flask) -> None:
    from notifier.errors import register

    register(app)
