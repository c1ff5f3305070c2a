"""What every ops page shares: the audit helper, labels, titles, page context, error pages."""

from __future__ import annotations

import logging
from datetime import datetime

from babel.dates import format_datetime
from flask import Response, g, jsonify, render_template, request
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import BadRequest, NotFound, TooManyRequests

from .. import context
from ..delivery.senders import mask_target
from ..emails import labels, times
from ..errors import bad_request_texts, csrf_texts, retry_after_seconds
from ..forms import LANGUAGE_CHOICES
from . import bp
from .params import InvalidParameter, refuse_nul

log = logging.getLogger(__name__)

KINDS = {
    "incident": _l("Incident"),
    "maintenance": _l("Maintenance"),
    "announcement": _l("Announcement"),
    "confirmation": _l("Confirmation"),
    "receipt": _l("Unsubscribe receipt"),
    "channel_verification": _l("Channel test message"),
    "channel_notice": _l("Channel notice to the owner"),
}
# Where a subscription's notices go (issue 12, migration 0019_channels).
CHANNELS = {
    "email": _l("Email"),
    "slack": _l("Slack"),
    "teams": _l("Microsoft Teams"),
    "webhook": _l("Webhook"),
}
DELIVERY_STATES = {
    "pending": _l("Waiting"),
    "sending": _l("Sending"),
    "sent": _l("Sent"),
    "failed": _l("Failed"),
    "expired": _l("Expired"),
    "cancelled": _l("Cancelled"),
    "suppressed": _l("Suppressed"),
}
SUBSCRIBER_STATES = {
    "pending": _l("Not confirmed yet"),
    "confirmed": _l("Confirmed"),
    "unsubscribed": _l("Unsubscribed"),
    "suppressed": _l("Suppressed"),
}
REVIEW_STATES = {
    "none": _l("Sent without review"),
    "pending": _l("Waiting for review"),
    "approved": _l("Approved"),
    "discarded": _l("Discarded"),
    "timed_out": _l("Sent unchanged after the review time"),
}
ANNOUNCEMENT_STATES = {"draft": _l("Draft"), "sent": _l("Sent"), "discarded": _l("Discarded")}
LANGUAGE_NAMES = dict(LANGUAGE_CHOICES)
# Times on ops pages: German readers at Sinch think in Berlin time, everyone else in UTC.
UI_ZONES = {"de": "Europe/Berlin", "en": "UTC"}
LABELS = {
    "kind": KINDS,
    "delivery": DELIVERY_STATES,
    "subscriber": SUBSCRIBER_STATES,
    "review": REVIEW_STATES,
    "announcement": ANNOUNCEMENT_STATES,
    "language": LANGUAGE_NAMES,
    "channel": CHANNELS,
}


def label(group: str, value) -> str:
    """The translated word for a stored code; the code itself when there is none."""
    found = LABELS[group].get(value)
    return str(found) if found is not None else str(value)


def masked_target(url: str | None) -> str:
    """A channel's target for ops pages: scheme, host and first path segment, never the
    token (notifier.delivery.senders.mask_target); "–" for an email subscription."""
    return mask_target(url) if url else "–"


def ui_language() -> str:
    return get_locale().language


def audit(action: str, target: str | None = None, **detail) -> None:
    """Write one audit entry for the logged-in user (no email addresses in the app log)."""
    actor = g.admin_user
    context.store().audit(actor, action, target, detail or None, context.now())
    log.info("ops %s: %s %s", actor, action, target or "")


def notification_title(content: dict | None, lang: str | None = None) -> str:
    """A one-line name for a notification or announcement content, in the UI language if any."""
    content = content or {}
    lang = lang or ui_language()
    kind = content.get("kind")
    if kind == "announcement":
        other = "en" if lang == "de" else "de"
        for part in (content.get(lang), content.get(other)):
            if part and part.get("title"):
                return part["title"]
        return _("(no title yet)")
    if kind in ("incident", "maintenance"):
        incident = content.get("incident") or {}
        override = ((content.get("overrides") or {}).get(lang) or {}).get("title")
        return override or incident.get("title") or kind
    return label("kind", kind)


def status_label(status: str | None) -> str:
    if not status:
        return ""
    return labels.status_label(ui_language(), status)


def when(value: datetime | None) -> str:
    """A stored time in the reader's terms: Berlin time for German, UTC for English."""
    if value is None:
        return "–"
    lang = ui_language()
    local = value.astimezone(times.zone(UI_ZONES.get(lang, "UTC")))
    stamp = format_datetime(local, "yyyy-MM-dd HH:mm:ss", locale=lang)
    return f"{stamp} {times.zone_abbreviation(local, lang)}"


FIELD_NAMES = {
    "title": _l("Title"),
    "intro": _l("Introduction"),
    "bullets": _l("Summary bullets"),
    "qa": _l("Questions and answers"),
    "summary": _l("Summary"),
    "text": _l("Translation of the latest update"),
    "products": _l("Products"),
    "window.start": _l("Start"),
    "window.end": _l("End"),
    "window.zone": _l("Time zone"),
    "audience.languages": _l("Languages"),
    "audience.components": _l("Audience products"),
    "test_to": _l("Test address"),
}


def problem_summary(problems: list) -> list[dict]:
    """Problems as the error summary lists them: anchor, readable field name, message."""
    out = []
    for problem in problems:
        parts = problem.field.split(".")
        if parts[0] in LANGUAGE_NAMES:
            name = str(FIELD_NAMES.get(parts[1], parts[1]))
            if parts[1] == "qa" and len(parts) > 2:
                name = _("Question %(n)s", n=int(parts[2]) + 1)
            readable = f"{LANGUAGE_NAMES[parts[0]]}: {name}"
        else:
            key = "products" if parts[0] == "products" else problem.field
            readable = str(FIELD_NAMES.get(key, problem.field))
        anchor = "products" if parts[0] == "products" else problem.field
        out.append(
            {
                "anchor": anchor.replace(".", "-").replace("_", "-"),
                "label": readable,
                "message": _(problem.message, **problem.params),
            }
        )
    return out


def is_test_send(audience: dict | None) -> bool:
    return bool(audience and audience.get("test_to"))


@bp.context_processor
def page_context() -> dict:
    query = request.method == "GET" and request.query_string
    return {
        "current_language": ui_language(),
        "language_choices": LANGUAGE_CHOICES,
        "current_path": request.full_path if query else request.path,
        "admin_user": g.get("admin_user"),
        "label": label,
        "when": when,
        "notification_title": notification_title,
        "status_label": status_label,
        "is_test_send": is_test_send,
        "masked_target": masked_target,
        "channels": CHANNELS,
        "sending_paused": context.store().sending_paused() if g.get("admin_user") else None,
    }


@bp.after_request
def no_indexing(response: Response) -> Response:
    response.headers.setdefault("X-Robots-Tag", "noindex, nofollow")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def error_page(status: int, title: str, message: str):
    return render_template("admin/error.html", title=title, message=message), status


@bp.errorhandler(CSRFError)
def csrf_error(exc):
    return error_page(400, *csrf_texts())


@bp.before_request
def refuse_nul_characters():
    """No query or form value with a NUL reaches a view (see params.py)."""
    refuse_nul(request.args, request.form)


@bp.errorhandler(BadRequest)
def bad_request(exc):
    """A 400 on an ops page; a value it cannot use is named (see params.py)."""
    title, message = bad_request_texts()
    if isinstance(exc, InvalidParameter):
        message = exc.message()
    if request.path.endswith(".json"):  # live.json: polled by static/admin.js
        return jsonify({"error": exc.name, "status": 400}), 400
    return error_page(400, title, message)


@bp.errorhandler(TooManyRequests)
def too_many_requests(exc):
    page, status = error_page(
        429,
        _("Too many login attempts"),
        _("There were too many failed logins. Please wait a few minutes and try again."),
    )
    return page, status, {"Retry-After": retry_after_seconds(exc, 60)}


@bp.errorhandler(NotFound)
def not_found(exc):
    return error_page(404, _("Not found"), _("There is nothing at this address."))
