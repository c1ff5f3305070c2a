"""The worker: one APScheduler BlockingScheduler that only wires jobs. It never runs in gunicorn."""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from . import jobs
from .delivery import wake
from .shutdown import RESERVE_SECONDS, Shutdown

log = logging.getLogger(__name__)

# What the exit after the job threads needs (release the lease, log, interpreter exit).
EXIT_MARGIN_SECONDS = 1.5
# Heroku's SIGKILL comes 5 s after our budget; a send being recorded may use part of that.
CRITICAL_GRACE_SECONDS = 3.0
# The wake listener ends within its receive timeout of a stop; it is a daemon thread anyway.
LISTENER_JOIN_SECONDS = 2.0
# How often the worker copies SQLite's write-ahead log into the database (jobs.checkpoint).
CHECKPOINT_SECONDS = 10


def job_table(settings) -> list[tuple]:
    """(job, interval seconds, name, run at start) for every scheduled job."""
    return [
        # Ticks at a quarter interval; the poller lease makes it one poll per interval in all.
        (jobs.poll_tick, max(1, settings.poll_interval_seconds / 4), "poll feeds", True),
        (jobs.dispatch, settings.dispatch_interval_seconds, "send due deliveries", True),
        (jobs.reviews, 30, "release timed-out reviews", False),
        # Offsets are whole minutes, so a reminder goes within a minute of its moment.
        (jobs.reminders, 60, "remind before maintenance windows open", True),
        # Alert rules are judged each minute; an episode's mail goes at most a minute late.
        (jobs.alerts, 60, "open, end and mail ops alerts", True),
        (jobs.housekeeping, 3600, "purge unconfirmed sign-ups and old rows", True),
        # SQLite only: commits with synchronous=NORMAL are on disk once a checkpoint has run,
        # and connections checkpoint by themselves only past WAL_AUTOCHECKPOINT_PAGES.
        *(
            [(jobs.checkpoint, CHECKPOINT_SECONDS, "checkpoint the SQLite log", False)]
            if settings.database_is_sqlite
            else []
        ),
    ]


def build_scheduler(app: Flask, stop: Shutdown) -> BlockingScheduler:
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
        if fn is jobs.dispatch:
            # A wake re-times this job to now. A second instance may start while the previous
            # one is returning; the gate turns it away (or lets the running one go again), so
            # two dispatch runs never overlap and APScheduler never drops a wake as "maximum
            # number of running instances reached".
            start["max_instances"] = 2
        scheduler.add_job(
            fn, "interval", seconds=seconds, id=fn.job_name, name=name, args=[app, stop], **start
        )
    app.extensions["dispatch_gate"] = wake.DispatchGate(
        lambda: scheduler.modify_job(jobs.dispatch.job_name, next_run_time=datetime.now(UTC))
    )
    scheduler.add_listener(
        lambda event: log.warning("job %s missed its run time; skipped", event.job_id),
        EVENT_JOB_MISSED,
    )
    return scheduler


def run_worker(app: Flask) -> None:
    """Run the scheduler until SIGTERM/SIGINT, then let running jobs finish within the budget.

    The process is gone within the shutdown budget (notifier.shutdown) whatever the feeds and
    SendGrid do. "stopped" is logged, and the poller lease released, only once every job
    thread has ended; when one has not by the deadline, the process exits anyway (status 1)
    and leaves the lease to expire, so no other worker polls while this one still might.
    """
    settings = app.extensions["settings"]
    stop = Shutdown.configured(settings)
    _warn_if_the_budget_cuts_timeouts(settings, stop)
    _warn_if_the_lease_is_shorter_than_a_request(settings, stop)
    scheduler = build_scheduler(app, stop)

    def shutdown(signum, _frame):
        if stop.is_set():
            return
        log.info("worker: %s received, stopping", signal.Signals(signum).name)
        stop.set()
        # Jobs check `stop` between steps and take their timeouts from its budget;
        # shutdown(wait=False) ends the main loop, and the join below waits for the job threads.
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    log.info(
        "worker: started; polling %d feed(s) every %ss",
        len(settings.feed_urls),
        settings.poll_interval_seconds,
    )
    listener = wake.start_listener(
        app.extensions["store"], app.extensions["dispatch_gate"].wake, stop
    )
    scheduler.start()
    stop.set()  # the scheduler can also end on its own (an error): the same budget applies
    if listener is not None:
        listener.join(LISTENER_JOIN_SECONDS)
    running = _join_job_threads(stop, EXIT_MARGIN_SECONDS)
    if running:
        _exit_now(stop, running)
    jobs.release_poller(app)
    log.info("worker: stopped")


def _warn_if_the_budget_cuts_timeouts(settings, stop: Shutdown) -> None:
    """One WARNING line when SHUTDOWN_BUDGET_SECONDS caps a network timeout in normal running:
    every step ends within the budget less the reserve even before SIGTERM (Shutdown.timeout),
    so a SendGrid request that needs longer would time out and be sent again, flagged."""
    cut = [
        f"{name}={value:g}"
        for name, value in (
            ("SENDGRID_TIMEOUT_SECONDS", settings.sendgrid_timeout_seconds),
            ("FEED_TIMEOUT_SECONDS", settings.feed_timeout_seconds),
            ("CHANNEL_TIMEOUT_SECONDS", settings.channel_timeout_seconds),
        )
        if stop.timeout(value) < value
    ]
    if cut:
        log.warning(
            "worker: SHUTDOWN_BUDGET_SECONDS=%g caps every request at %g s, shorter than %s",
            stop.budget_seconds, stop.timeout(float("inf")), ", ".join(cut),
        )  # fmt: skip


def _warn_if_the_lease_is_shorter_than_a_request(settings, stop: Shutdown) -> None:
    """One WARNING line when DISPATCH_LEASE_SECONDS may run out while a request it covers is
    still on the wire. A claim's rows wait for a free sender (up to one request timeout), then
    for their own request (another), then RESERVE_SECONDS to build it and record its answer:
    the floor is twice the longest request timeout (SendGrid's or a channel's, as the budget
    caps it) plus the reserve. A claim that splits into several requests (languages, first
    mail or not) waits longer for its later ones, so the default is far above the floor. A
    lease that runs out lets another worker reclaim rows whose request may yet be accepted
    and send them again, flagged as possible duplicates (store.reclaim_expired_leases)."""
    name, longest = max(
        (
            ("SENDGRID_TIMEOUT_SECONDS", stop.timeout(settings.sendgrid_timeout_seconds)),
            ("CHANNEL_TIMEOUT_SECONDS", stop.timeout(settings.channel_timeout_seconds)),
        ),
        key=lambda item: item[1],
    )
    if settings.dispatch_lease_seconds < 2 * longest + RESERVE_SECONDS:
        log.warning(
            "worker: DISPATCH_LEASE_SECONDS=%g is shorter than a claim may wait and send "
            "(twice %s=%g, plus %g s to build and record): another worker may send its "
            "deliveries again, flagged as possible duplicates",
            settings.dispatch_lease_seconds, name, longest, RESERVE_SECONDS,
        )  # fmt: skip


def _join_job_threads(stop: Shutdown, margin_seconds: float) -> list[threading.Thread]:
    """Wait for every non-daemon thread until `margin_seconds` before the exit deadline;
    returns those still running. Daemon threads are fetches left behind (fetch.Pending) and
    the lease heartbeat of a poll that is itself a job thread."""
    while True:
        running = [
            t
            for t in threading.enumerate()
            if t is not threading.current_thread() and not t.daemon and t.is_alive()
        ]
        left = stop.exit_in() - margin_seconds
        if not running or left <= 0:
            return running
        running[0].join(min(0.1, left))


def _exit_now(stop: Shutdown, running: list[threading.Thread]) -> None:
    """Exit although job threads still run: never mid-way between a SendGrid answer and its
    database write (those are critical sections, waited for into Heroku's last 5 s)."""
    log.warning(
        "worker: %d job thread(s) still running at the shutdown deadline (%s); exiting without "
        "releasing the poller lease (it expires on its own)",
        len(running),
        ", ".join(t.name for t in running),
    )
    if not stop.wait_critical(stop.exit_in() + CRITICAL_GRACE_SECONDS):
        log.error("worker: a send is still being recorded at the deadline; exiting anyway")
    logging.shutdown()
    os._exit(1)
