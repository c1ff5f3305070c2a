"""Logging: one plain line per event, configured once per process."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str, stream: TextIO | None = None) -> None:
    """Route log lines to a stream (idempotent: a second call only moves or re-levels them).

    The long-running processes (gunicorn web, the worker) log to stdout, where Heroku's log
    drains read them. One-shot CLI commands log to stderr so that their own stdout (for example
    `feed inspect --json`, parsed by other tools) never has a log line mixed in.
    """
    if stream is None:
        stream = sys.stdout if "gunicorn" in sys.modules else sys.stderr
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_notifier", False)), None)
    if handler is None:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._notifier = True
        root.addHandler(handler)
    elif handler.stream is not stream:
        handler.setStream(stream)
    root.setLevel(level)
    # httpx logs every request at INFO and APScheduler every job run; one line per poll from
    # us is what an operator wants to read.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # At DEBUG python_http_client (under sendgrid) logs whole request bodies: addresses and
    # signed unsubscribe links do not belong in logs.
    logging.getLogger("python_http_client").setLevel(logging.INFO)


@contextmanager
def told_on_stdout(*loggers: str, below: int = logging.CRITICAL + 1) -> Iterator[None]:
    """Drop these loggers' own lines under level `below` for a one-shot CLI command that
    prints those outcomes on stdout itself, while stdout and stderr are the same terminal:
    there each would otherwise show twice, once as the log line on stderr and once as the
    command's output. Piped or redirected (cron, scripts, log collection) nothing changes.
    """
    if not _same_terminal(sys.stdout, sys.stderr):
        yield
        return

    def keep(record: logging.LogRecord) -> bool:
        return record.levelno >= below

    for name in loggers:
        logging.getLogger(name).addFilter(keep)
    try:
        yield
    finally:
        for name in loggers:
            logging.getLogger(name).removeFilter(keep)


def _same_terminal(a: TextIO, b: TextIO) -> bool:
    try:
        same = os.path.samestat(os.fstat(a.fileno()), os.fstat(b.fileno()))
        return a.isatty() and b.isatty() and same
    except (AttributeError, OSError, ValueError):  # replaced streams (tests) have no fileno
        return False
