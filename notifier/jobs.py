"""Scheduled jobs: each runs in an app context, logs start/finish/error, and is a CLI command."""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import Flask

from . import context
from .alerts import check_alerts
from .delivery import wake
from .enrich import Backoff, enrich_feeds
from .fetch import make_client
from .notifications import notify_changes, release_reviews
from .poller import POLL_CONCURRENCY, poll_all
from .reminders import queue_reminders
from .shutdown import Shutdown

log = logging.getLogger(__name__)

ENRICH_TIMEOUT_SECONDS = 5.0
# Enrichment is best effort: it gets what this leaves of the poll's time limit, at most.
ENRICH_ALLOWANCE_SECONDS = 2 * ENRICH_TIMEOUT_SECONDS
# After the network steps the poll only writes to the database (changes, notifications).
POLL_WRITE_GRACE_SECONDS = 30.0
# SendGrid retries a failed webhook batch for up to 72 hours; dedup ids must outlive that.
WEBHOOK_EVENTS_KEPT = timedelta(days=7)


def job(name: str) -> Callable:
    """Run the wrapped job in an app context with start/finish/error logging (feedi's pattern)."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(app: Flask, stop: Shutdown | None = None, **options):
            started = time.monotonic()
            log.debug("job %s: start", name)
            with app.app_context():
                try:
                    result = fn(app, stop or Shutdown.configured(context.settings()), **options)
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


def poll_time_limit(settings) -> float:
    """Seconds the slowest allowed poll's network steps take: every round of concurrent feed
    fetches at its full timeout (capped by the shutdown budget), then the enrichment allowance."""
    rounds = math.ceil(len(settings.feed_urls) / POLL_CONCURRENCY)
    step = Shutdown.configured(settings).timeout(settings.feed_timeout_seconds)
    return rounds * step + ENRICH_ALLOWANCE_SECONDS


@job("poll")
def poll(app: Flask, stop: Shutdown, lost: threading.Event | None = None):
    """Poll every feed, enrich from the JSON API (best effort), then create notifications.

    Bounded by poll_time_limit(); after `stop` (or `lost`: the poller lease went to another
    worker) nothing new starts, and what runs ends within the shutdown budget.
    """
    settings, store = context.settings(), context.store()
    until = time.monotonic() + poll_time_limit(settings)
    client = _http_client(app, "feeds", settings.feed_timeout_seconds)
    results = poll_all(
        store,
        client,
        settings.feed_urls,
        context.now(),
        settings.feed_max_bytes,
        stop=stop,
        until=until,
        lost=lost,
    )
    if not stop.is_set() and not (lost and lost.is_set()):
        enrich_client = _http_client(app, "enrich", ENRICH_TIMEOUT_SECONDS)
        feeds = [f for f in store.list_feeds() if f["url"] in settings.feed_urls]
        backoff = app.extensions.setdefault("enrich_backoff", Backoff())
        enrich_feeds(store, enrich_client, feeds, context.now(), backoff, stop=stop, until=until)
    # Enrichment ran first so notifications know the affected components when the API has them.
    if notify_changes(store, settings, context.now()):
        wake.work_queued(store, context.now(), app)
    return results


POLLER_LEASE = "poller"


def poller_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def poller_timing(settings) -> tuple[timedelta, timedelta, timedelta]:
    """(interval, tick, lease ttl): ticks every quarter interval; the lease lasts two ticks
    (at least 2 s) and is renewed by every tick, and by the heartbeat while a poll runs."""
    interval = timedelta(seconds=settings.poll_interval_seconds)
    return interval, interval / 4, max(timedelta(seconds=2), interval / 2)


class LeaseHeartbeat:
    """Renews the poller lease every quarter of its ttl while a poll runs.

    APScheduler skips the poll ticks while a poll runs (max_instances=1), so without this a
    poll slower than the lease's ttl lost the lease mid-poll and another worker polled too.
    It renews until the poll ends, or at most until `until` (monotonic: the slowest allowed
    poll); a poll stuck past that lets the lease run out so another worker can take over.
    `lost` is set when another worker holds the lease (the database was out of reach for
    longer than the ttl): the poll then starts no further fetch.
    """

    def __init__(
        self, store, owner: str, ttl: timedelta, clock: Callable[[], datetime], until: float
    ):
        self.store, self.owner, self.ttl, self.clock, self.until = store, owner, ttl, clock, until
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poller lease", daemon=True)

    def __enter__(self) -> LeaseHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        # A renewal in flight must land before anyone releases the lease, not after.
        self._thread.join()

    def _run(self) -> None:
        period = self.ttl.total_seconds() / 4
        while not self._done.wait(period):
            if time.monotonic() > self.until:
                log.warning("poller lease: the poll overran its time limit; lease left to expire")
                return
            try:
                lease = self.store.acquire_lease(POLLER_LEASE, self.owner, self.clock(), self.ttl)
            except Exception:
                log.exception("poller lease: renewal failed (database unavailable)")
                continue
            if lease is None:
                log.warning("poller lease: taken by another worker mid-poll; stopping this poll")
                self.lost.set()
                return


def poll_tick(app: Flask, stop: Shutdown | None = None):
    """The worker's scheduled poll: only the worker holding the poller lease polls.

    Runs every quarter interval on every worker dyno. The holder renews its lease on each
    tick and, while it polls, from a heartbeat thread; it polls once per interval since the
    last poll by anyone (last_run_at outlives a handover). When it dies, the lease runs out
    and another worker takes over within one poll interval.
    """
    with app.app_context():
        settings, store, now = context.settings(), context.store(), context.now()
        interval, tick, ttl = poller_timing(settings)
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
        # Ticks run late on a busy dyno; a poll is due half a tick early so that a late tick
        # never postpones the next poll by a whole tick.
        if lease["last_run_at"] is not None and now - lease["last_run_at"] < interval - tick / 2:
            return None
        store.mark_lease_run(POLLER_LEASE, poller_id(), now)
        until = time.monotonic() + poll_time_limit(settings) + POLL_WRITE_GRACE_SECONDS
        heartbeat = LeaseHeartbeat(store, poller_id(), ttl, app.extensions["clock"], until)
    with heartbeat:
        return poll(app, stop, lost=heartbeat.lost)


poll_tick.job_name = "poll"


def release_poller(app: Flask) -> None:
    """On shutdown: hand the lease over at once instead of letting it run out."""
    if app.extensions.get("poller"):
        with app.app_context():
            try:
                context.store().release_lease(POLLER_LEASE, poller_id(), context.now())
            except Exception:
                log.exception("poller lease: not released (database unavailable); it expires")


def mail_backend(app: Flask):
    """The configured mail backend, created once per process (the SendGrid client is reused)."""
    if "mail_backend" not in app.extensions:
        from .delivery.mailer import make_backend

        app.extensions["mail_backend"] = make_backend(app.extensions["settings"])
    return app.extensions["mail_backend"]


@job("dispatch")
def dispatch(app: Flask, stop: Shutdown):
    """Send every due delivery (until told to stop).

    In the worker, runs on its tick and whenever work is queued (notifier.delivery.wake): one
    run at a time per process, and a run woken meanwhile goes once more. Returns the last
    pass's stats, None when another run was already going.
    """
    gate = app.extensions.get("dispatch_gate")
    if gate is None:  # dispatch-once, tests
        return _dispatch_pass(app, stop)
    if not gate.enter():
        return None
    while True:
        try:
            stats = _dispatch_pass(app, stop)
        except BaseException:
            gate.leave()
            raise
        if stop.is_set():
            gate.leave()
            return stats
        if not gate.more():
            return stats


def _dispatch_pass(app: Flask, stop: Shutdown):
    from .delivery.channels import ChannelDispatcher
    from .delivery.dispatch import Dispatcher

    dispatcher = Dispatcher(
        context.store(),
        mail_backend(app),
        context.settings(),
        lambda: app.extensions["clock"](),
        stop=stop,
    )
    stats = dispatcher.run()
    if stats.requests or stats.expired or stats.halted:
        log.info("dispatch: %s", stats.summary(context.settings().notification_ttl_hours))
    # Then Slack, Teams and webhook rows (issue 12), after the mail: the pass returns the mail
    # stats as before; the channels' are kept for dispatch-once.
    channels = ChannelDispatcher(
        context.store(),
        context.settings(),
        lambda: app.extensions["clock"](),
        stop=stop,
        housekept_at=dispatcher.housekept_at,
    ).run()
    app.extensions["channel_dispatch_stats"] = channels
    if channels.requests or channels.failed:
        log.info("dispatch channels: %s", channels.summary())
    return stats


@job("reviews")
def reviews(app: Flask, stop: Shutdown):
    """Release notifications whose review timed out; fan out anything approved."""
    released = release_reviews(context.store(), context.now())
    if released:
        log.info("reviews: review timed out, sent unchanged: %s", released)
        wake.work_queued(context.store(), context.now(), app)
    return released


@job("reminders")
def reminders(app: Flask, stop: Shutdown):
    """Queue the reminders due before maintenance windows open (notifier.reminders)."""
    store = context.store()
    created = queue_reminders(store, context.settings(), context.now(), stop=stop)
    if created:
        log.info("reminders: queued %s", created)
        wake.work_queued(store, context.now(), app)
    return created


@job("alerts")
def alerts(app: Flask, stop: Shutdown):
    """Open and end alert episodes and queue their mails to OPS_ALERT_EMAILS (notifier.alerts)."""
    store, now = context.store(), context.now()
    run = check_alerts(store, context.settings(), now)
    if run.mailed:
        wake.work_queued(store, now, app)
    return run


@job("checkpoint")
def checkpoint(app: Flask, stop: Shutdown):
    """SQLite: copy the write-ahead log into the database file (store.checkpoint)."""
    return context.store().checkpoint()


@job("housekeeping")
def housekeeping(app: Flask, stop: Shutdown):
    """Purge what must not be kept: unconfirmed sign-ups, old rate-limit and webhook rows."""
    from .subscriptions import housekeeping as subscription_housekeeping

    store, now = context.store(), context.now()
    result = subscription_housekeeping(store, now)
    result["webhook_events_purged"] = store.purge_webhook_events(now - WEBHOOK_EVENTS_KEPT)
    return result
