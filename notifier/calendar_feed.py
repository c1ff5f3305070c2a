"""The private calendar feed: GET /calendar/<token>.ics, which calendar apps poll.

Each confirmed subscriber has one feed URL (tokens.calendar_links: https, and the same as
webcal://) with a signed token of purpose tokens.CALENDAR. It lists, as one VCALENDAR
(notifier.calendar.feed_calendar, in the subscriber's language), the maintenance the
subscriber would be mailed about (`matches`: the fan-out rule of store.deliveries.
_audience_filter: the maintenance choice, then all components, a chosen component, or a group
that ever held one of the maintenance's components; a maintenance naming no component goes to
everyone who chose anything of its page), that is upcoming or running (window not yet over,
newest post not "completed"), plus those cancelled in the last CANCELLED_DAYS as
STATUS:CANCELLED, so calendar apps remove the entries they have. Events carry the same UID and
SEQUENCE as the mails' maintenance.ics.

Forged, malformed, erased, unsubscribed or unconfirmed: one plain 404, whatever the reason (no
way to tell tokens or addresses apart). GET and HEAD only, and neither changes anything; the
route counts against the per-address RATE_LIMIT_ONE_CLICK budget (notifier/ratelimit.py), the
generous one, because calendar services (Google, Outlook) poll every user's feed from a few
addresses of their own. Answers are `Cache-Control: private, no-cache` (the URL is a secret,
no shared cache may keep it) with an ETag of the body, so a poll with If-None-Match gets 304.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from flask import Blueprint, Response, request
from werkzeug.exceptions import TooManyRequests

from . import calendar, context, render, subscriptions, tokens
from .errors import retry_after_seconds
from .notifications import page_name
from .subscriptions import InvalidLink

bp = Blueprint("calendar_feed", __name__)

CANCELLED_DAYS = 7
MIME_TYPE = "text/calendar"  # Flask adds "; charset=utf-8"


def _not_found() -> Response:
    return Response("Not found\n", 404, mimetype="text/plain")


@bp.get("/calendar/<token>.ics")
def feed(token: str):
    store, now = context.store(), context.now()
    try:
        subscriber = subscriptions.subscriber_for_link(
            store, context.settings(), tokens.CALENDAR, token, now
        )
    except InvalidLink:
        return _not_found()
    if subscriber["state"] != "confirmed":
        return _not_found()
    events, page = maintenance_events(store, subscriber, now)
    body = calendar.feed_calendar(events, subscriber["language"], page)
    response = Response(body, 200, mimetype=MIME_TYPE)
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["Content-Disposition"] = 'inline; filename="maintenance.ics"'
    response.set_etag(hashlib.sha256(body).hexdigest()[:32])
    return response.make_conditional(request)


def maintenance_events(store, subscriber: dict, now: datetime) -> tuple[list, str]:
    """([(content, cancelled)], page name): the events of one subscriber's feed at `now`, in
    window order, as maintenance content dicts (docs/ARCHITECTURE.md) that
    notifier.calendar.vevent turns into the same events as the mails' attachments. The page
    name (for the calendar's name) is the first feed's, as in the mails."""
    feeds = store.list_feeds()
    page = page_name(feeds[0]) if feeds else "Sinch"
    if not subscriber["notify_maintenance"]:
        return [], page
    rows = store.calendar_maintenance(now, now - timedelta(days=CANCELLED_DAYS))
    chosen = set(store.subscriber_component_ids(subscriber["id"]))
    events, names, choices = [], {}, {}
    for row in rows:
        cancelled = row["cancelled_at"] is not None
        if not cancelled and row["newest_status"] == "completed":
            continue
        if not matches(store, subscriber, chosen, row, choices):
            continue
        feed_id = row["feed_id"]
        if feed_id not in names:
            names[feed_id] = {c["id"]: c["name"] for c in store.list_components(feed_id)}
        content = _content(row, page_name({"title": row["feed_title"]}), names[feed_id])
        events.append((content, cancelled))
    return events, page


def matches(store, subscriber: dict, chosen: set[str], row: dict, choices: dict) -> bool:
    """Would this subscriber be mailed about this maintenance? (store.deliveries.
    _audience_filter's rule; `choices` caches each page's choices across calls.)"""
    if subscriber["all_components"]:
        return True
    if not chosen:
        return False
    components = [str(c) for c in row["components"] or ()]
    if components:
        return bool(chosen & set(store.choices_covering(components)))
    feed_id = row["feed_id"]
    if feed_id not in choices:
        choices[feed_id] = store.feed_choice_ids(feed_id)
    return bool(chosen & choices[feed_id])


def _content(row: dict, page: str, names: dict[str, str]) -> dict:
    """The maintenance content dict of one feed row: the fields notifier.calendar reads."""
    updates = []
    if row["newest_at"] is not None:  # DTSTAMP and LAST-MODIFIED come from the newest post
        updates.append({"status": row["newest_status"], "at": render.iso_utc(row["newest_at"])})
    return {
        "kind": "maintenance",
        "page_name": page,
        "page_url": row["page_url"] or "",
        "incident": {
            "key": row["key"],
            "title": row["title"],
            "link": row["link"],
            "components": [
                {"id": str(c), "name": names[str(c)]}
                for c in row["components"] or ()
                if str(c) in names
            ],
            "scheduled_start": render.iso_utc(row["scheduled_start_at"]),
            "scheduled_end": render.iso_utc(row["scheduled_end_at"]),
            "window_sequence": int(row["window_sequence"] or 0),
        },
        "change": "cancelled" if row["cancelled_at"] is not None else "new_update",
        "status": "cancelled" if row["cancelled_at"] is not None else row["newest_status"],
        "updates": updates,
    }


@bp.app_context_processor
def calendar_context() -> dict:
    """`calendar_links(subscriber)` for templates (the preferences page): the feed's https and
    webcal:// addresses (tokens.calendar_links)."""

    def calendar_links(subscriber: dict) -> dict[str, str]:
        settings = context.settings()
        return tokens.calendar_links(settings, subscriber["id"], subscriber["link_nonce"])

    return {"calendar_links": calendar_links}


@bp.errorhandler(TooManyRequests)
def too_many_requests(exc):
    response = Response("Too many requests\n", 429, mimetype="text/plain")
    response.headers["Retry-After"] = retry_after_seconds(exc, 600)
    return response
