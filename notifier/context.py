"""Access to the app's settings, store and clock from inside an app context."""

from __future__ import annotations

from datetime import datetime

from flask import current_app

from .settings import Settings


def settings() -> Settings:
    return current_app.extensions["settings"]


def store():
    return current_app.extensions["store"]


def now() -> datetime:
    """The injected clock (tests replace app.extensions['clock'])."""
    return current_app.extensions["clock"]()
