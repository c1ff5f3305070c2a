"""The audit log page: who did what, when, to what; newest first, 50 per page."""

from __future__ import annotations

from flask import render_template, request
from flask_babel import lazy_gettext as _l

from .. import context
from ..store.ops import AUDIT_PAGE
from . import bp
from .params import id_arg

ACTIONS = {
    "login": _l("Logged in"),
    "login_failed": _l("Failed login"),
    "logout": _l("Logged out"),
    "announcement.create": _l("Created an announcement draft"),
    "announcement.edit": _l("Edited an announcement draft"),
    "announcement.prefill": _l("Drafted a post-incident notice"),
    "announcement.copy": _l("Copied an announcement"),
    "announcement.discard": _l("Discarded an announcement draft"),
    "announcement.test_send": _l("Queued a test send"),
    "announcement.send": _l("Sent an announcement"),
    "review.edit": _l("Edited a notification under review"),
    "review.approve": _l("Approved a notification"),
    "review.discard": _l("Discarded a notification"),
    "resend": _l("Resent deliveries"),
    "sending.pause": _l("Paused sending"),
    "sending.resume": _l("Resumed sending"),
    "alert.resolve": _l("Resolved an alert"),
    "alert.acknowledge": _l("Acknowledged an alert"),
    "subscriber.export": _l("Exported a subscriber's data"),
    "subscriber.erase": _l("Erased a subscriber"),
    "subscriber.suppress": _l("Suppressed a subscriber"),
    "subscriber.unsuppress": _l("Lifted a suppression"),
    "subscribers.import": _l("Imported subscribers"),
    "subscribers.export": _l("Exported subscribers as CSV"),
    "admin_user.add": _l("Added an ops user"),
    "admin_user.password": _l("Set an ops user's password"),
    "admin_user.remove": _l("Removed an ops user"),
}


@bp.get("/audit")
def audit_log():
    before = id_arg(request.args, "before")
    rows = context.store().list_audit(before_id=before, limit=AUDIT_PAGE + 1)
    return render_template(
        "admin/audit.html",
        entries=rows[:AUDIT_PAGE],
        older=rows[AUDIT_PAGE - 1]["id"] if len(rows) > AUDIT_PAGE else None,
        newest=before is None,
        actions=ACTIONS,
    )
