"""The delivery ledger: notifications with their progress, per-recipient rows with attempts
and their channel (email, Slack, Microsoft Teams, webhook; filterable), resend of failed or
expired rows (a resent row keeps its channel), and the global pause switch for sending."""

from __future__ import annotations

from datetime import timedelta

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import context
from ..alerts import SELF_ENDING
from ..delivery.wake import work_queued
from ..privacy import mask_addresses
from . import bp
from .auth import safe_next
from .common import CHANNELS, DELIVERY_STATES, audit
from .params import id_arg, int_arg, parse_id
from .previews import preview_response, rendered_previews

PAGE = 100
LIST_PAGE = 30
MAX_REASON = 200


def _notification(notification_id: int) -> dict:
    row = context.store().get_notification(notification_id)
    if row is None or row["kind"] not in ("incident", "maintenance", "announcement"):
        abort(404)
    return row


def _languages(notification: dict) -> list[str]:
    audience = notification["audience"] or {}
    return audience.get("languages") or ["de", "en"]


@bp.get("/notifications")
def notifications():
    before = id_arg(request.args, "before")
    rows = context.store().recent_notifications(LIST_PAGE, before_id=before)
    older = rows[-1]["id"] if len(rows) == LIST_PAGE else None
    return render_template(
        "admin/notifications.html", notifications=rows, older=older, paused=_paused()
    )


@bp.route("/notifications/<id:notification_id>", methods=["GET", "POST"])
def notification(notification_id: int):
    """The ledger. Searching by address is a POST: an address in a URL would end up in the
    access log (and the browser history)."""
    store = context.store()
    row = _notification(notification_id)
    form = request.form if request.method == "POST" else request.args
    email = request.form.get("q", "").strip()[:254]
    state = form.get("state", "")
    state = state if state in DELIVERY_STATES else ""
    channel = form.get("channel", "")
    channel = channel if channel in CHANNELS else ""
    offset = int_arg(form, "offset", 0)
    subscriber_id = id_arg(request.args, "subscriber")
    found = {"email": email, "state": state, "subscriber_id": subscriber_id, "channel": channel}
    deliveries = store.search_deliveries(notification_id, **found, limit=PAGE, offset=offset)
    total = store.count_deliveries(notification_id, **found)
    progress = store.notification_progress([notification_id]).get(notification_id)
    announcement = (
        store.get_announcement(row["announcement_id"]) if row["announcement_id"] else None
    )
    return render_template(
        "admin/ledger.html",
        n=row,
        counts=progress,
        deliveries=deliveries,
        attempts=store.delivery_attempts([d["id"] for d in deliveries]),
        total=total,
        offset=offset,
        page=PAGE,
        q=email,
        state=state,
        states=DELIVERY_STATES,
        channel=channel,
        resends=store.resends_of(notification_id),
        announcement=announcement,
        previews=rendered_previews(row["content"], _languages(row)),
        frame=lambda lang: url_for(
            ".notification_frame", notification_id=notification_id, lang=lang
        ),
        paused=_paused(),
    )


@bp.get("/notifications/<id:notification_id>/preview/<any(de, en):lang>.html")
def notification_frame(notification_id: int, lang: str):
    return preview_response(_notification(notification_id)["content"], lang)


@bp.post("/notifications/<id:notification_id>/resend")
def resend(notification_id: int):
    store, now, settings = context.store(), context.now(), context.settings()
    _notification(notification_id)
    which = request.form.get("which", "")
    delivery_id = id_arg(request.form, "delivery_id")
    if which not in ("one", "failed", "expired") or (which == "one" and delivery_id is None):
        abort(400)
    expires = now + timedelta(hours=settings.notification_ttl_hours)
    new_id, count = store.resend(notification_id, which, now, expires, delivery_id=delivery_id)
    if new_id is not None:
        work_queued(store, now)
    detail = {"which": which, "new_notification": new_id, "deliveries": count}
    if which == "one":
        detail["delivery"] = delivery_id
    audit("resend", f"notification:{notification_id}", **detail)
    if new_id is None:
        flash(
            _(
                "Nothing to resend: these recipients have unsubscribed or bounced since, "
                "or were resent already."
            )
        )
        return redirect(url_for(".notification", notification_id=notification_id), 303)
    flash(_("Fresh deliveries queued as notification #%(id)s: %(count)s.", count=count, id=new_id))
    return redirect(url_for(".notification", notification_id=new_id), 303)


# --- pause switch and alerts ---------------------------------------------------------
def _paused() -> str | None:
    return context.store().sending_paused()


def _back(default_endpoint: str = ".dashboard"):
    return redirect(safe_next(request.form.get("next") or url_for(default_endpoint)), 303)


@bp.post("/sending/pause")
def pause_sending():
    # Free text: any address typed into it is stored masked (notifier/privacy.py).
    reason = mask_addresses(" ".join((request.form.get("reason") or "").split()))[:MAX_REASON]
    reason = reason or _("paused by ops")
    store, now = context.store(), context.now()
    store.pause_sending(f"{reason} ({g.admin_user})", now)
    audit("sending.pause", None, reason=reason)
    flash(_("Sending is paused. Nothing goes out until you resume."))
    return _back()


@bp.post("/sending/resume")
def resume_sending():
    store, now = context.store(), context.now()
    was = store.sending_paused()
    store.resume_sending(now)
    store.resolve_alert("sending_paused", now)
    audit("sending.resume", None, was=was)
    flash(_("Sending resumed. Waiting deliveries go out with the next dispatch run."))
    return _back()


@bp.post("/alerts/resolve")
def resolve_alert():
    """End an alert episode by hand: form field `alert` (an id) or, as before issue 15, `kind`
    (every open episode of it). Kinds that end by themselves (notifier.alerts.SELF_ENDING)
    are refused: resolved while their cause lasts, the next check would open and mail a new
    episode; the pause alert ends when sending resumes."""
    store, now = context.store(), context.now()
    alert_id = parse_id(request.form.get("alert") or "")
    if alert_id is not None:
        alert = store.get_alert(alert_id)
        if alert is None:
            abort(404)
        kind = alert["kind"]
    else:
        kind = (request.form.get("kind") or "")[:64]
    if kind == "sending_paused" and _paused():
        flash(_("Resume sending to clear this alert."))
    elif alert_id is not None and kind in SELF_ENDING:
        flash(_("This alert ends by itself once its cause is gone."))
    elif alert_id is not None:
        if store.resolve_alert_id(alert_id, now):
            audit("alert.resolve", f"alert:{alert_id}", kind=kind)
    elif store.resolve_alert(kind, now):
        audit("alert.resolve", f"alert:{kind}")
    return _back()


@bp.post("/alerts/<id:alert_id>/acknowledge")
def acknowledge_alert(alert_id: int):
    """Acknowledge an alert episode: someone is on it, so no reminder mails (notifier.alerts).
    Audited; acknowledging twice changes nothing."""
    store = context.store()
    alert = store.get_alert(alert_id)
    if alert is None:
        abort(404)
    if store.acknowledge_alert(alert_id, g.admin_user, context.now()):
        audit("alert.acknowledge", f"alert:{alert_id}", kind=alert["kind"])
        flash(_("Alert acknowledged: no more reminders about it."))
    else:
        flash(_("This alert was acknowledged already."))
    return _back()
