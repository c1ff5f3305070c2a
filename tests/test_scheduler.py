"""The worker's schedule: every job wired, none paused, intervals from the settings."""

from __future__ import annotations

import threading
from dataclasses import replace

from notifier.scheduler import build_scheduler


def test_every_job_is_scheduled_and_none_is_paused(app, settings):
    app.extensions["settings"] = replace(
        settings, poll_interval_seconds=60, dispatch_interval_seconds=5
    )
    scheduler = build_scheduler(app, threading.Event())
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert {job_id: job.trigger.interval.total_seconds() for job_id, job in jobs.items()} == {
        "poll": 15.0,  # a quarter interval; only the lease holder polls
        "dispatch": 5.0,
        "reviews": 30.0,
        "reminders": 60.0,
        "alerts": 60.0,  # issue 15: ops alert episodes and their mails
        "housekeeping": 3600.0,
        # SQLite's write-ahead log copied into the database: commits on disk within 10 s
        **({"checkpoint": 10.0} if settings.database_is_sqlite else {}),
    }
    # next_run_time=None would add a job paused; unset means "after one interval".
    assert all(getattr(job, "next_run_time", "unset") is not None for job in jobs.values())


def test_a_budget_that_caps_the_request_timeouts_is_one_warning_at_start(settings, caplog):
    """Every step ends within SHUTDOWN_BUDGET_SECONDS less the 5 s reserve even before SIGTERM
    (Shutdown.timeout): a budget that cuts a configured timeout says so (review)."""
    import logging

    from notifier.scheduler import _warn_if_the_budget_cuts_timeouts
    from notifier.shutdown import Shutdown

    short = replace(settings, shutdown_budget_seconds=12, sendgrid_timeout_seconds=10.0,
                    feed_timeout_seconds=7.0, channel_timeout_seconds=8.0)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="notifier.scheduler"):
        _warn_if_the_budget_cuts_timeouts(short, Shutdown(budget_seconds=12))
        _warn_if_the_budget_cuts_timeouts(settings, Shutdown(budget_seconds=25))  # defaults
    assert [r.getMessage() for r in caplog.records] == [
        "worker: SHUTDOWN_BUDGET_SECONDS=12 caps every request at 7 s, shorter than "
        "SENDGRID_TIMEOUT_SECONDS=10, CHANNEL_TIMEOUT_SECONDS=8"
    ]


def test_the_polls_time_limit_follows_the_configured_budget(settings):
    """A budget of 55 s lets a 45 s feed timeout stand (it was capped at the default's 20 s,
    so every slow fetch was cut and recorded as the feed's failure)."""
    from notifier.jobs import ENRICH_ALLOWANCE_SECONDS, poll_time_limit

    one_feed = replace(settings, feed_urls=("https://a.example/history.atom",))
    long = replace(one_feed, shutdown_budget_seconds=55, feed_timeout_seconds=45.0)
    assert poll_time_limit(long) == 45.0 + ENRICH_ALLOWANCE_SECONDS
    assert poll_time_limit(replace(long, shutdown_budget_seconds=25)) == (
        20.0 + ENRICH_ALLOWANCE_SECONDS
    )


def test_a_lease_shorter_than_a_request_is_one_warning_at_start(settings, caplog):
    """DISPATCH_LEASE_SECONDS must outlive a claim's wait for a free sender and its own
    request (twice the longest request timeout) plus the 5 s to build and record it, or
    another worker takes over rows still on the wire (last review)."""
    import logging

    from notifier.scheduler import _warn_if_the_lease_is_shorter_than_a_request
    from notifier.shutdown import Shutdown

    cases = [
        replace(settings, dispatch_lease_seconds=24.5, sendgrid_timeout_seconds=10.0,
                channel_timeout_seconds=8.0),
        replace(settings, dispatch_lease_seconds=28.5, sendgrid_timeout_seconds=4.0,
                channel_timeout_seconds=12.0),
        replace(settings, dispatch_lease_seconds=25.0, sendgrid_timeout_seconds=10.0,
                channel_timeout_seconds=8.0),  # exactly enough: no warning
        settings,  # the defaults: 120 s against 2 x 10 + 5
    ]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="notifier.scheduler"):
        for case in cases:
            _warn_if_the_lease_is_shorter_than_a_request(case, Shutdown(budget_seconds=25))
        # A budget of 12 caps every request at 7 s: then 19 s of lease is enough.
        short = replace(settings, dispatch_lease_seconds=19.0, sendgrid_timeout_seconds=10.0)
        _warn_if_the_lease_is_shorter_than_a_request(short, Shutdown(budget_seconds=12))
    assert [r.getMessage() for r in caplog.records] == [
        "worker: DISPATCH_LEASE_SECONDS=24.5 is shorter than a claim may wait and send "
        "(twice SENDGRID_TIMEOUT_SECONDS=10, plus 5 s to build and record): another worker "
        "may send its deliveries again, flagged as possible duplicates",
        "worker: DISPATCH_LEASE_SECONDS=28.5 is shorter than a claim may wait and send "
        "(twice CHANNEL_TIMEOUT_SECONDS=12, plus 5 s to build and record): another worker "
        "may send its deliveries again, flagged as possible duplicates",
    ]
