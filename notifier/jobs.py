"""Scheduled jobs: each runs in an app context, logs start/finish/error, and is a CLI command."""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from flask import Flask

from . import context
from .enrich import Backoff, enrich_feeds
from .fetch import make_client
from .notifications import notify_changes, release_reviews
from .poller import poll_all

log = logging.getLogger(__name__)

ENRICH_TIMEOUT_SECONDS = 5.0
# SendGrid retries a failed webhook batch for up to 72 hours; dedup ids must outlive that.
WEBHOOK_EVENTS_KEPT = timedelta(days=7)


def job(name: str) -> Callable:
    """Run the wrapped job in an app context with start/finish/error logging (feedi's pattern)."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(app: Flask, stop: threading.Event | None = None):
            started = time.monotonic()
            log.debug("job %s: start", name)
            with app.app_context():
                try:
                    result = fn(app, stop or threading.Event())
                except Exception:
                    log.exception("job %s: failed after %.2fs", name, time.monotonic() - started)
                    return None
            log.debug("job %s: done in %.2fs", name, time.monotonic() - started)
            return result

        run.job_name = name
        return run

    return decorate


def _http_client(app: Flask, name: str, timeout: float):
    # One long-lived client per purpose: connection reuse, and no TLS context built per poll.
    key = f"http:{name}"
    if key not in app.extensions:
        app.extensions[key] = make_client(timeout)
    return app.extensions[key]


@job("poll")
def poll(app: Flask, stop: threading.Event):
    """Poll every feed, enrich from the JSON API (best effort), then create notifications."""
    settings, store = context.settings(), context.store()
    client = _http_client(app, "feeds", settings.feed_timeout_seconds)
    results = poll_all(store, client, settings.feed_urls, context.now(), settings.feed_max_bytes)
    if not stop.is_set():
        enrich_client = _http_client(app, "enrich", ENRICH_TIMEOUT_SECONDS)
        feeds = [f for f in store.list_feeds() if f["url"] in settings.feed_urls]
        backoff = app.extensions.setdefault("enrich_backoff", Backoff())
        enrich_feeds(store, enrich_client, feeds, context.now(), backoff)
    # Enrichment ran first so notifications know the affected components when the API has them.
    notify_changes(store, settings, context.now())
    return results


POLLER_LEASE = "poller"


def poller_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def poll_tick(app: Flask, stop: threading.Event | None = None):
    """The worker's scheduled poll: only the worker holding the poller lease polls.

    Runs every quarter interval on every worker dyno. The holder renews its lease (valid for
    half an interval) on each tick and polls once per interval; when it dies, the lease runs
    out and another worker takes over within one poll interval.
    """
    with app.app_context():
        settings, store, now = context.settings(), context.store(), context.now()
        interval = timedelta(seconds=settings.poll_interval_seconds)
        ttl = max(timedelta(seconds=2), interval / 2)
        try:
            lease = store.acquire_lease(POLLER_LEASE, poller_id(), now, ttl)
        except Exception:
            log.exception("poller lease: database unavailable")
            return None
        if lease is None:
            app.extensions["poller"] = False
            return None
        if not app.extensions.get("poller"):
            log.info("worker: this process is now the poller (%s)", poller_id())
            app.extensions["poller"] = True
        # A tick may come a little early; polling 5% early is fine, skipping a round is not.
        if lease["last_run_at"] is not None and now - lease["last_run_at"] < interval * 0.95:
            return None
        store.mark_lease_run(POLLER_LEASE, poller_id(), now)
    return poll(app, stop)


poll_tick.job_name = "poll"


def release_poller(app: Flask) -> None:
    """On shutdown: hand the lease over at once instead of letting it run out."""
    if app.extensions.get("poller"):
        with app.app_context():
            context.store().release_lease(POLLER_LEASE, poller_id())


def mail_backend(app: Flask):
    """The configured mail backend, created once per process (the SendGrid client is reused)."""
    if "mail_backend" not in app.extensions:
        from .mailer import make_backend

        app.extensions["mail_backend"] = make_backend(app.extensions["settings"])
    return app.extensions["mail_backend"]


@job("dispatch")
def dispatch(app: Flask, stop: threading.Event):
    """Send every due delivery (until told to stop)."""
    from .dispatch import Dispatcher

    dispatcher = Dispatcher(
        context.store(),
        mail_backend(app),
        context.settings(),
        lambda: app.extensions["clock"](),
        stop=stop,
    )
    stats = dispatcher.run()
    if stats.requests or stats.expired or stats.halted:
        log.info("dispatch: %s", stats.summary())
    return stats


@job("reviews")
def reviews(app: Flask, stop: threading.Event):
    """Release notifications whose review timed out; fan out anything approved."""
    released = release_reviews(context.store(), context.now())
    if released:
        log.info("reviews: review timed out, sent unchanged: %s", released)
    return released


@job("housekeeping")
def housekeeping(app: Flask, stop: threading.Event):
    """Purge what must not be kept: unconfirmed sign-ups, old rate-limit and webhook rows."""
    from .subscriptions import housekeeping as subscription_housekeeping

    store, now = context.store(), context.now()
    result = subscription_housekeeping(store, now)
    result["webhook_events_purged"] = store.purge_webhook_events(now - WEBHOOK_EVENTS_KEPT)
    return result
