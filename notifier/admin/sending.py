"""Sending an announcement: the test send to one address, the confirmation page with the
recipient count per language, and the send itself (once; a draft changed after the check is
not sent unseen)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import announcements as rules
from .. import context
from ..delivery.mailer import mask_email
from ..delivery.wake import work_queued
from ..forms import normalize_email
from . import bp
from .common import audit
from .drafts import announcement_or_404, composer_page, ready_to_send
from .previews import rendered_previews


def check_test_address() -> list:
    raw = request.form.get("test_to", "").strip()
    try:
        normalize_email(raw)
    except ValueError:
        return [rules.Problem("test_to", rules.N_("Enter the email address for the test."))]
    return []


def queue_test_send(announcement_id: int, content: dict, audience: dict):
    store, now, settings = context.store(), context.now(), context.settings()
    address = normalize_email(request.form.get("test_to", "").strip())
    rules.queue_test_sends(store, content, audience, address, now, settings.notification_ttl_hours)
    audit(
        "announcement.test_send",
        f"announcement:{announcement_id}",
        to=mask_email(address),  # shortened for the log; the audit writer masks any left
        languages=audience["languages"],
    )
    flash(
        _(
            "Test send queued to %(address)s (%(languages)s). It goes out with the next "
            "dispatch run, within seconds.",
            address=address,
            languages=", ".join(audience["languages"]),
        )
    )
    return redirect(url_for(".announcement", announcement_id=announcement_id), 303)


# --- send ----------------------------------------------------------------------------
def _send_summary(row: dict):
    store = context.store()
    final, audience, problems = ready_to_send(row["content"], row["audience"], store)
    return final, audience, problems, rules.recipients_by_language(store, audience)


@bp.get("/announcements/<id:announcement_id>/send")
def confirm_send(announcement_id: int):
    row = announcement_or_404(announcement_id)
    if row["state"] != "draft":
        return redirect(url_for(".announcement", announcement_id=announcement_id), 303)
    final, audience, problems, per_language = _send_summary(row)
    if problems:
        flash(_("Please fix the marked fields before sending."))
        return redirect(url_for(".announcement", announcement_id=announcement_id), 303)
    return render_template(
        "admin/confirm_send.html",
        announcement=row,
        audience=audience,
        per_language=per_language,
        total=sum(per_language.values()),
        per_channel=context.store().count_audience_by_channel("announcement", audience),
        previews=rendered_previews(final, audience["languages"]),
        revision=rules.revision(row["content"], row["audience"]),
        component_names=_component_names(audience),
    )


def _component_names(audience: dict) -> list[str]:
    names = {c["id"]: c["name"] for c in context.store().list_components()}
    return [names.get(cid, cid) for cid in audience.get("components") or ()]


@bp.post("/announcements/<id:announcement_id>/send")
def send_announcement(announcement_id: int):
    store, now, settings = context.store(), context.now(), context.settings()
    row = announcement_or_404(announcement_id)
    if row["state"] != "draft":
        flash(_("This announcement was already sent."))
        return redirect(url_for(".announcement", announcement_id=announcement_id), 303)
    final, audience, problems, per_language = _send_summary(row)
    if problems:
        return composer_page(row, row["content"], row["audience"], problems, 400)
    if request.form.get("revision") != rules.revision(row["content"], row["audience"]):
        flash(_("The draft changed since you checked it. Please check it again."))
        return redirect(url_for(".confirm_send", announcement_id=announcement_id), 303)
    if sum(per_language.values()) == 0:
        flash(_("Nobody would get this announcement: no confirmed subscriber matches."))
        return redirect(url_for(".announcement", announcement_id=announcement_id), 303)
    expires = rules.expires_at(now, settings.notification_ttl_hours)
    try:
        nid, count = store.send_announcement(announcement_id, final, audience, now, expires)
    except LookupError:
        flash(_("This announcement was already sent."))
        return redirect(url_for(".announcement", announcement_id=announcement_id), 303)
    work_queued(store, now)
    audit(
        "announcement.send", f"announcement:{announcement_id}", notification=nid, recipients=count
    )
    flash(_("Sending to %(count)s recipients. Progress below.", count=count))
    return redirect(url_for(".notification", notification_id=nid), 303)
