"""The dashboard: subscribers, feed health, recent notifications with live progress, alerts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import jsonify, render_template, request

from .. import context
from ..settings import Settings
from . import bp
from .charts import deliveries_chart, poll_charts, subscribers_chart
from .common import UI_ZONES, ui_language
from .params import parse_id

RECENT = 10
RECENT_ALERTS = timedelta(days=7)  # ended alert episodes the dashboard still lists


@dataclass(frozen=True)
class FeedHealth:
    url: str
    title: str | None
    last_poll_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    problem: str | None  # never_polled | failing | no_success | not_polled | None


def feed_health(url: str, feed: dict | None, settings: Settings, now: datetime) -> FeedHealth:
    """How one configured feed is doing; `problem` says why it is stale.

    Stale after STALE_AFTER_POLLS polls in a row failed, or when the last success (or the last
    poll at all: the worker may be down) is older than that many poll intervals.
    """
    feed = feed or {}
    failures = int(feed.get("consecutive_failures") or 0)
    window = timedelta(seconds=settings.stale_after_polls * settings.poll_interval_seconds)
    last_poll, last_success = feed.get("last_poll_at"), feed.get("last_success_at")
    if last_poll is None:
        problem = "never_polled"
    elif failures >= settings.stale_after_polls:
        problem = "failing"
    elif last_success is None or now - last_success > window:
        problem = "no_success"
    elif now - last_poll > window:
        problem = "not_polled"
    else:
        problem = None
    return FeedHealth(
        url=url,
        title=feed.get("title"),
        last_poll_at=last_poll,
        last_success_at=last_success,
        last_error=feed.get("last_error"),
        last_error_at=feed.get("last_error_at"),
        consecutive_failures=failures,
        problem=problem,
    )


def feeds_health() -> list[FeedHealth]:
    settings, now = context.settings(), context.now()
    stored = {f["url"]: f for f in context.store().list_feeds()}
    return [feed_health(url, stored.get(url), settings, now) for url in settings.feed_urls]


@bp.get("/")
def dashboard():
    store = context.store()
    names = {c["id"]: c["name"] for c in store.list_components()}
    feeds = feeds_health()
    return render_template(
        "admin/dashboard.html",
        counts=store.subscriber_counts(),
        component_names=names,
        feeds=feeds,
        charts=dashboard_charts(store, feeds),
        notifications=store.recent_notifications(RECENT),
        paused=store.sending_paused(),
        alerts=store.open_alerts(),
        recent_alerts=store.recent_alerts(context.now() - RECENT_ALERTS),
        review_queue=store.review_queue(),
        settings=context.settings(),
    )


def dashboard_charts(store, feeds: list[FeedHealth]) -> dict:
    """The dashboard's charts (admin/charts.py) in the reader's language and zone."""
    now, lang = context.now(), ui_language()
    zone = UI_ZONES.get(lang, "UTC")
    return {
        "deliveries": deliveries_chart(store, now, lang, zone),
        "polls": poll_charts(store, feeds, now, lang, zone),
        "subscribers": subscribers_chart(store, now, lang),
    }


@bp.get("/live.json")
def live():
    """Progress of the notifications shown on a page, for static/admin.js (polled)."""
    store = context.store()
    parts = request.args.get("ids", "").split(",")[:100]
    # The page's script sends the ids it shows; anything else has no progress (skipped).
    ids = [i for i in (parse_id(part.strip()) for part in parts) if i is not None]
    progress = store.notification_progress(ids)
    response = jsonify(
        {
            "progress": {str(k): v for k, v in progress.items()},
            "paused": store.sending_paused(),
            "review_pending": store.review_queue_count(),
        }
    )
    response.headers["Cache-Control"] = "no-store"
    return response
