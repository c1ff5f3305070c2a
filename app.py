"""Application factory: gunicorn (`app:create_app()`) and the CLI (`flask --app app`) use it."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from flask import Flask

from notifier.settings import Settings, SettingsError, load_settings, production_errors

log = logging.getLogger("notifier")


class ConfigurationError(SystemExit):
    """Startup refused; each line of the message is one reason."""


def create_app(config: Settings | Mapping[str, str] | None = None) -> Flask:
    """Build the Flask app from a Settings value, an environment mapping, or os.environ."""
    settings = _resolve_settings(config)
    configure_logging(settings)
    refuse_unsafe_production(settings)
    app = Flask(__name__, instance_path=str(Path(settings.instance_path).resolve()))
    configure_flask(app, settings)
    init_store(app, settings)
    register_converters(app)
    register_blueprints(app)
    init_web(app, settings)
    register_commands(app)
    register_error_handlers(app)
    return app


def _resolve_settings(config) -> Settings:
    if isinstance(config, Settings):
        return config
    try:
        return load_settings(os.environ if config is None else config)
    except SettingsError as exc:
        _refuse([str(exc)])


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
    from notifier.store import StoreError, open_store

    store = open_store(settings)
    app.extensions["store"] = store
    # Every process brings the schema up to date on start, so a fresh checkout runs and a
    # forgotten release phase cannot leave code and schema apart. Processes starting at the
    # same moment are serialized (SQLite write lock, PostgreSQL advisory lock).
    try:
        store.upgrade()
    except StoreError as exc:
        _refuse([f"database is not usable: {exc}"])


def register_converters(app: Flask) -> None:
    """`<id:name>` in routes: a row id bounded to the database's integers (before any route)."""
    from notifier.admin.params import IdConverter

    app.url_map.converters["id"] = IdConverter


def register_blueprints(app: Flask) -> None:
    from notifier.admin import bp as admin_bp
    from notifier.health import bp as health_bp
    from notifier.hooks import bp as hooks_bp
    from notifier.public import bp as public_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(hooks_bp)
    app.register_blueprint(public_bp)
    app.register_blueprint(admin_bp)


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
