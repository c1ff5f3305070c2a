"""Error pages: a clear message and the right status, never a traceback."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)


def _wants_json() -> bool:
    return request.path.startswith(("/healthz", "/hooks/")) or request.accept_mimetypes.best == (
        "application/json"
    )


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if _wants_json():
            return jsonify({"error": exc.name, "status": exc.code}), exc.code
        body = (
            "<!doctype html><meta charset=utf-8><title>{code} {name}</title>"
            "<h1>{code} {name}</h1><p>{desc}</p>"
        ).format(code=exc.code, name=exc.name, desc=exc.description or "")
        return body, exc.code, {"Content-Type": "text/html; charset=utf-8"}

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return http_error(InternalServerError())
