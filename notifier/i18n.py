"""German and English pages: Flask-Babel, the language choice, and catalogs compiled at start.

The page language is, in order: the visitor's switch (a cookie), the subscription's language
on pages reached from its mail links, Accept-Language, English. `.mo` files are build output
(gitignored); `compile_catalogs` writes them from the committed `.po` files when they are
missing or older, so a fresh clone, a Heroku slug and the test suite all run without a step.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, g, request
from flask_babel import Babel

log = logging.getLogger(__name__)

LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "en"
LANGUAGE_COOKIE = "lang"
LANGUAGE_COOKIE_MAX_AGE = 365 * 24 * 3600
DEFAULT_TIMEZONES = {"de": "Europe/Berlin", "en": "UTC"}
# Parsed once: Flask-Babel takes a Locale as it is, where it would parse a code on every
# request.
_LOCALES = {code: Locale.parse(code) for code in LANGUAGES}


def select_locale() -> Locale:
    """The page language (see the module docstring for the order)."""
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen not in LANGUAGES:
        chosen = g.get("subscriber_language")
    if chosen not in LANGUAGES:
        chosen = request.accept_languages.best_match(LANGUAGES) or DEFAULT_LANGUAGE
    return _LOCALES[chosen]


def compile_catalogs(translations: Path) -> list[Path]:
    """Write every stale messages.mo next to its messages.po; returns the files written."""
    written = []
    for po_path in sorted(translations.glob("*/LC_MESSAGES/*.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as f:
            catalog = read_po(f)
        # Several gunicorn workers may start at once: write aside, then rename atomically.
        fd, tmp = tempfile.mkstemp(dir=mo_path.parent, suffix=".mo.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                write_mo(f, catalog)
            os.replace(tmp, mo_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(mo_path)
    if written:
        log.info("compiled %s message catalogs", len(written))
    return written


def init_i18n(app: Flask) -> Babel:
    translations = Path(app.root_path) / "translations"
    try:
        compile_catalogs(translations)
    except OSError as exc:
        # A read-only checkout with compiled catalogs still works; without them pages are
        # English, which is worth a loud line but not a refusal to start.
        log.error("cannot compile message catalogs in %s: %s", translations, exc)
    app.config.update(
        BABEL_TRANSLATION_DIRECTORIES=str(translations),
        BABEL_DEFAULT_LOCALE=DEFAULT_LANGUAGE,
        # Every validator carries our own message, so WTForms' catalog is never needed; with
        # it on, Flask-WTF parses that .mo file again on every request with a form.
        WTF_I18N_ENABLED=False,
    )
    return Babel(app, locale_selector=select_locale)
