"""Logging: one plain line per event, configured once per process."""

from __future__ import annotations

import logging
import sys
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
