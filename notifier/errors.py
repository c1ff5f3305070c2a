"""Error pages: a clear message and the right status, never a traceback."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_babel import get_locale
from flask_babel import gettext as _
from werkzeug.exceptions import BadHost, HTTPException, InternalServerError

from .accesslog import redact
from .forms import LANGUAGE_CHOICES

log = logging.getLogger(__name__)


def _wants_json() -> bool:
    return request.path.startswith(("/healthz", "/hooks/")) or request.accept_mimetypes.best == (
        "application/json"
    )


def csrf_texts() -> tuple[str, str]:
    """Title and message for a form whose CSRF token expired or is missing."""
    return _("Please try again"), _(
        "This form has expired or was sent from another page. Reload the page and send it again."
    )


def retry_after_seconds(exc, default: int) -> str:
    """The Retry-After value for a Flask-Limiter 429: when its window reopens."""
    limit = getattr(exc, "limit", None)
    return str(limit.limit.get_expiry() if limit is not None else default)


def bad_request_texts() -> tuple[str, str]:
    return _("Something is wrong"), _("We could not read that request.")


def _texts(code: int) -> tuple[str, str]:
    """Title and message for an HTTP error, in the visitor's language."""
    if code == 404:
        return _("Page not found"), _("There is no page at this address.")
    if code == 405:
        return _("Not possible here"), _("This page cannot be used that way.")
    if code >= 500:
        return _("Something went wrong"), _(
            "Something went wrong on our side. Nothing you entered was lost; please try again "
            "in a moment."
        )
    return bad_request_texts()


def _plain(title: str, message: str, code: int):
    body = f"{title}\n\n{message}\n"
    return body, code, {"Content-Type": "text/plain; charset=utf-8"}


def _page(title: str, message: str, code: int):
    """The site's error page. Outside a blueprint (no route matched) no context processor
    runs, so the page language and the language switch are passed here."""
    query = request.method == "GET" and request.query_string
    return render_template(
        "error.html",
        title=title,
        message=message,
        current_language=get_locale().language,
        language_choices=LANGUAGE_CHOICES,
        current_path=request.full_path if query else request.path,
    ), code


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if _wants_json():
            return jsonify({"error": exc.name, "status": exc.code}), exc.code
        title, message = _texts(exc.code or 500)
        if isinstance(exc, BadHost):
            # A Host header Werkzeug cannot bind URLs to (a DNS label over 63 characters, an
            # empty label): no route matched and url_for cannot work, so no HTML page either.
            return _plain(title, message, exc.code)
        try:
            return _page(title, message, exc.code)
        except Exception:  # the page itself failed (template or i18n): plain and safe
            log.exception("error page for %s failed", exc.code)
            return _plain(title, message, exc.code)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, redact(request.path))
        return http_error(InternalServerError())
