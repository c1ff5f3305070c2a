"""GET /healthz for uptime checks: database reachable, and per feed how fresh its data is.

Anyone may ask (uptime checkers hold no login), so feeds are named by their position in
FEED_URLS, "feed-1", "feed-2", …: a feed URL can carry a private page's access key and shows
what is watched, a position reveals only how many feeds there are. Positions, unlike a hash of
the URL, cannot be checked against a guessed URL, and an operator reads them straight off
FEED_URLS; reordering FEED_URLS renumbers them. A logged-in ops user also gets each "url".
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify

from . import context
from .store import StoreError

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 {"status": "ok", "database": "ok", "feeds": [{"feed": "feed-N", ["url",]
    "last_success_age_seconds": int | None, "consecutive_failures": int}, …]} in FEED_URLS
    order; 503 {"status": "error", "database": "unreachable"} when the store fails.

    "consecutive_failures" counts failed polls only (fetch errors, refused bodies; poller.py):
    a quiet page is healthy, whether its feed is unchanged, answers 304 or lists no entries yet
    (a brand-new page, issue 16), and a feed with some damaged entries is read, not failed."""
    now = context.now()
    try:
        store = context.store()
        store.ping()
        feeds = {f["url"]: f for f in store.list_feeds()}
    except StoreError as exc:
        log.error("health check: database unreachable: %s", exc)
        return jsonify({"status": "error", "database": "unreachable"}), 503
    show_urls = _is_ops_user()
    report = []
    for number, url in enumerate(context.settings().feed_urls, start=1):
        feed = feeds.get(url) or {}
        success = feed.get("last_success_at")
        report.append(
            {
                "feed": f"feed-{number}",
                **({"url": url} if show_urls else {}),
                "last_success_age_seconds": (
                    None if success is None else int((now - success).total_seconds())
                ),
                "consecutive_failures": feed.get("consecutive_failures", 0),
            }
        )
    response = jsonify({"status": "ok", "database": "ok", "feeds": report})
    # The body differs by login: no cache may keep one caller's answer for another.
    response.headers["Cache-Control"] = "no-store"
    return response


def _is_ops_user() -> bool:
    from .admin.auth import current_user  # lazily: the health check needs no admin wiring

    return current_user() is not None
