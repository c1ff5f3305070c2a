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
