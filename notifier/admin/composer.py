"""The announcement composer: German and English side by side, drafts, preview, test send,
send with a confirmation that shows the recipient count, and the post-incident template.

The composer is one form; its buttons say what to do (`action`): save, preview, test, send,
and the Q/A buttons (add, remove, move up or down) that work without JavaScript. Every press
saves the draft first, so nothing typed is lost. Nothing is sent before validate() is happy.
A time window that cannot be read (a zone not in the list, a time that is not one or outside
drafts.FIRST_YEAR..LAST_YEAR) is the exception: that press saves nothing and answers 400 with
the page as typed and the field errors, since the draft could not hold those times.
"""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import announcements as rules
from .. import context
from ..forms import load_catalogue
from ..postincident import prefill_from_incident
from . import bp
from .common import audit, problem_summary
from .drafts import (
    ACTION,
    announcement_or_404,
    apply_qa_action,
    composer_page,
    form_to_draft,
    ready_to_send,
    window_problems,
)
from .params import id_arg
from .previews import preview_response, rendered_previews
from .sending import check_test_address, queue_test_send


@bp.get("/announcements")
def announcements():
    store = context.store()
    return render_template(
        "admin/announcements.html",
        announcements=store.list_announcements(),
        incidents=store.recent_incidents(),
    )


@bp.get("/announcements/new")
def new_announcement():
    content, audience = rules.normalize({"window": {"zone": "Europe/Berlin"}})
    return composer_page(None, content, audience, [])[0]


@bp.get("/announcements/<id:announcement_id>")
def announcement(announcement_id: int):
    row = announcement_or_404(announcement_id)
    if row["state"] != "draft":
        return render_template("admin/announcement_view.html", announcement=row)
    store = context.store()
    problems = ready_to_send(row["content"], row["audience"], store)[2]
    return composer_page(row, row["content"], row["audience"], problems)[0]


@bp.post("/announcements/new")
@bp.post("/announcements/<id:announcement_id>")
def save_announcement(announcement_id: int | None = None):
    store, now = context.store(), context.now()
    row = announcement_or_404(announcement_id) if announcement_id is not None else None
    if row is not None and row["state"] != "draft":
        flash(_("This announcement was already sent; it cannot be changed."))
        return redirect(url_for(".announcement", announcement_id=announcement_id), 303)
    match = ACTION.match(request.form.get("action", "save"))
    if match is None:
        abort(400)
    verb, lang, index = match.group(1), match.group(2), match.group(3)
    content, audience = form_to_draft(request.form, load_catalogue(store))
    unreadable = window_problems(request.form)
    if unreadable:  # nothing saved; the page shows what was typed, with the field errors
        return composer_page(row, content, audience, unreadable, 400)
    anchor = None
    if verb.startswith("qa-") and lang:
        anchor = apply_qa_action(content, verb, lang, int(index) if index else None)
    announcement_id = _store_draft(row, content, audience, now)
    row = store.get_announcement(announcement_id)
    if verb == "save" or verb.startswith("qa-"):
        if verb == "save":
            flash(_("Draft saved."))
        target = url_for(".announcement", announcement_id=announcement_id)
        return redirect(target + (f"#{anchor}" if anchor else ""), 303)
    if verb == "preview":  # incomplete drafts can be looked at too; the page lists what is missing
        return redirect(url_for(".preview_announcement", announcement_id=announcement_id), 303)
    final, final_audience, problems = ready_to_send(content, audience, store)
    if verb == "test":
        problems += check_test_address()
    if problems:
        return composer_page(row, content, audience, problems, 400)
    if verb == "test":
        return queue_test_send(announcement_id, final, final_audience)
    return redirect(url_for(".confirm_send", announcement_id=announcement_id), 303)


def _store_draft(row: dict | None, content: dict, audience: dict, now) -> int:
    store = context.store()
    if row is None:
        new_id = store.save_announcement(content, audience, _actor(), now)
        audit("announcement.create", f"announcement:{new_id}")
        return new_id
    if rules.revision(content, audience) != rules.revision(row["content"], row["audience"]):
        store.save_announcement(content, audience, _actor(), now, announcement_id=row["id"])
        audit("announcement.edit", f"announcement:{row['id']}")
    return row["id"]


def _actor() -> str:
    return g.admin_user


# --- preview -------------------------------------------------------------------------
@bp.get("/announcements/<id:announcement_id>/preview")
def preview_announcement(announcement_id: int):
    row = announcement_or_404(announcement_id)
    final, final_audience, problems = ready_to_send(
        row["content"], row["audience"], context.store()
    )
    return render_template(
        "admin/preview.html",
        announcement=row,
        previews=rendered_previews(final, final_audience["languages"] or rules.LANGUAGES),
        frame=lambda lang: url_for(
            ".announcement_frame", announcement_id=announcement_id, lang=lang
        ),
        summary=problem_summary(problems),
    )


@bp.get("/announcements/<id:announcement_id>/preview/<any(de, en):lang>.html")
def announcement_frame(announcement_id: int, lang: str):
    row = announcement_or_404(announcement_id)
    final = rules.normalize({**row["content"], "audience": row["audience"]})[0]
    return preview_response(final, lang)


# --- drafts from elsewhere -----------------------------------------------------------
@bp.post("/announcements/from-incident")
def announcement_from_incident():
    store, now = context.store(), context.now()
    incident_id = id_arg(request.form, "incident_id")  # a value that is no id: 400
    try:
        raw = prefill_from_incident(store, incident_id) if incident_id else None
    except LookupError:  # gone since the list was shown
        raw = None
    if raw is None:
        flash(_("Choose an incident from the list."))
        return redirect(url_for(".announcements"), 303)
    content, audience = rules.normalize(raw, keep_empty=True)
    new_id = store.save_announcement(content, audience, _actor(), now, incident_id=incident_id)
    audit("announcement.prefill", f"announcement:{new_id}", incident=incident_id)
    flash(_("Post-incident notice drafted. Please check and complete every answer."))
    return redirect(url_for(".announcement", announcement_id=new_id), 303)


@bp.post("/announcements/<id:announcement_id>/copy")
def copy_announcement(announcement_id: int):
    row = announcement_or_404(announcement_id)
    store, now = context.store(), context.now()
    new_id = store.save_announcement(
        row["content"], row["audience"], _actor(), now, incident_id=row["incident_id"]
    )
    audit("announcement.copy", f"announcement:{new_id}", source=announcement_id)
    flash(_("A new draft with the same texts."))
    return redirect(url_for(".announcement", announcement_id=new_id), 303)


@bp.post("/announcements/<id:announcement_id>/discard")
def discard_announcement(announcement_id: int):
    announcement_or_404(announcement_id)
    if context.store().discard_announcement(announcement_id, context.now()):
        audit("announcement.discard", f"announcement:{announcement_id}")
        flash(_("Draft discarded."))
    return redirect(url_for(".announcements"), 303)
