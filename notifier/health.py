"""GET /healthz for uptime checks: database reachable, and per feed how fresh its data is."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify

from . import context
from .store import StoreError

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    now = context.now()
    try:
        store = context.store()
        store.ping()
        feeds = {f["url"]: f for f in store.list_feeds()}
    except StoreError as exc:
        log.error("health check: database unreachable: %s", exc)
        return jsonify({"status": "error", "database": "unreachable"}), 503
    report = []
    for url in context.settings().feed_urls:
        feed = feeds.get(url) or {}
        success = feed.get("last_success_at")
        report.append(
            {
                "url": url,
                "last_success_age_seconds": (
                    None if success is None else int((now - success).total_seconds())
                ),
                "consecutive_failures": feed.get("consecutive_failures", 0),
            }
        )
    response = jsonify({"status": "ok", "database": "ok", "feeds": report})
    response.headers["Cache-Control"] = "no-store"
    return response
