"""The worker: one APScheduler BlockingScheduler that only wires jobs. It never runs in gunicorn."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from . import jobs

log = logging.getLogger(__name__)

# Heroku sends SIGKILL 30 s after SIGTERM; jobs get the stop flag and this long to finish.
SHUTDOWN_BUDGET_SECONDS = 25


def job_table(settings) -> list[tuple]:
    """(job, interval seconds, name, run at start) for every scheduled job."""
    return [
        # Ticks at a quarter interval; the poller lease makes it one poll per interval in all.
        (jobs.poll_tick, max(1, settings.poll_interval_seconds / 4), "poll feeds", True),
        (jobs.dispatch, settings.dispatch_interval_seconds, "send due deliveries", True),
        (jobs.reviews, 30, "release timed-out reviews", False),
        (jobs.housekeeping, 3600, "purge unconfirmed sign-ups and old rows", True),
    ]


def build_scheduler(app: Flask, stop: threading.Event) -> BlockingScheduler:
    settings = app.extensions["settings"]
    scheduler = BlockingScheduler(
        timezone=UTC,
        executors={"default": ThreadPoolExecutor(max_workers=4)},
        job_defaults={
            "coalesce": True,  # after a pause, run once, not once per missed interval
            "max_instances": 1,  # a slow poll is never overlapped by the next one
            "misfire_grace_time": max(5, settings.poll_interval_seconds // 2),
        },
    )
    now = datetime.now(UTC)
    for fn, seconds, name, run_at_start in job_table(settings):
        # Not passing next_run_time means "first run after one interval"; None would pause it.
        start = {"next_run_time": now} if run_at_start else {}
        scheduler.add_job(
            fn, "interval", seconds=seconds, id=fn.job_name, name=name, args=[app, stop], **start
        )
    scheduler.add_listener(
        lambda event: log.warning("job %s missed its run time; skipped", event.job_id),
        EVENT_JOB_MISSED,
    )
    return scheduler


def run_worker(app: Flask) -> None:
    """Run the scheduler until SIGTERM/SIGINT, then let running jobs finish within the budget."""
    stop = threading.Event()
    scheduler = build_scheduler(app, stop)

    def shutdown(signum, _frame):
        if stop.is_set():
            return
        log.info("worker: %s received, stopping", signal.Signals(signum).name)
        stop.set()
        # Jobs check `stop` between steps; shutdown(wait=False) ends the main loop, and the
        # join below waits for the job threads (all bounded by HTTP timeouts).
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    settings = app.extensions["settings"]
    log.info(
        "worker: started; polling %d feed(s) every %ss",
        len(settings.feed_urls),
        settings.poll_interval_seconds,
    )
    scheduler.start()
    _join_job_threads(SHUTDOWN_BUDGET_SECONDS)
    jobs.release_poller(app)
    log.info("worker: stopped")


def _join_job_threads(budget_seconds: float) -> None:
    deadline = threading.Event()
    timer = threading.Timer(budget_seconds, deadline.set)
    timer.daemon = True
    timer.start()
    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.daemon or thread is timer:
            continue
        while thread.is_alive() and not deadline.is_set():
            thread.join(0.1)
    timer.cancel()
