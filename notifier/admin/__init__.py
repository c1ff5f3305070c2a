"""The ops console under /admin: login, dashboard, announcements, review queue, delivery ledger,
subscribers and the audit log. Every route needs a login (auth.require_login runs first), every
form carries a CSRF token (CSRFProtect in notifier/security.py), and every change is written to
the audit log. Views are thin: parse the form, call the store or a domain function, redirect.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

# The view modules attach their routes to `bp` when imported.
from . import (  # noqa: E402
    audit,
    auth,
    common,
    composer,
    dashboard,
    ledger,
    review,
    sending,
    subscribers,
)

__all__ = [
    "audit",
    "auth",
    "bp",
    "common",
    "composer",
    "dashboard",
    "ledger",
    "review",
    "sending",
    "subscribers",
]
