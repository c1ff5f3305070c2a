"""Review mode (REVIEW_MODE=on): feed notifications wait here for ops to edit both languages'
texts, approve or discard. Whatever nobody reviews goes out unchanged at its deadline
(notifications.release_reviews, run by the worker), so a busy team never leaves customers
uninformed.

Ops' texts are stored as the content's `overrides` (see notifier/emails/incident.py): per
language a title, a summary (replaces the introduction), a translation of the newest update
text (shown above the quoted original), and extra Q/A pairs (a question with the same wording
as a default one replaces it).
"""

from __future__ import annotations

import copy
import re

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import announcements as rules
from .. import context
from ..delivery.wake import work_queued
from . import bp
from .common import audit
from .drafts import apply_qa_action, problems_by_field, qa_pairs
from .previews import rendered_previews

ACTION = re.compile(
    r"^(save|approve|discard|qa-add|qa-remove|qa-up|qa-down)(?::(de|en))?(?::(\d{1,2}))?\Z"
)
FIELDS = ("title", "summary", "text")


def _pending(notification_id: int) -> dict:
    row = context.store().get_notification(notification_id)
    if row is None or row["kind"] not in ("incident", "maintenance"):
        abort(404)
    return row


def form_to_overrides(form, keep_empty: bool) -> dict:
    """The review form -> {"de": {...}, "en": {...}}; empty fields left out unless kept."""
    overrides = {}
    for lang in rules.LANGUAGES:
        part = {}
        for name in FIELDS:
            value = rules._text(form.get(f"{lang}-{name}"), multiline=name != "title")
            if value or keep_empty:
                part[name] = value
        qa = []
        for raw in qa_pairs(form, lang):
            pair = {"q": rules._text(raw["q"], multiline=False), "a": rules._text(raw["a"])}
            if keep_empty or pair["q"] or pair["a"]:
                qa.append(pair)
        if qa or keep_empty:
            part["qa"] = qa
        overrides[lang] = part
    return overrides


def _with_overrides(content: dict, overrides: dict) -> dict:
    updated = copy.deepcopy(content)
    cleaned = {lang: part for lang, part in overrides.items() if any(part.values())}
    if cleaned:
        updated["overrides"] = cleaned
    else:
        updated.pop("overrides", None)
    return updated


@bp.get("/review")
def review_queue():
    return render_template(
        "admin/review_queue.html",
        queue=context.store().review_queue(),
        settings=context.settings(),
        now=context.now(),
    )


@bp.get("/review/<id:notification_id>")
def review(notification_id: int):
    row = _pending(notification_id)
    return _page(row, row["content"].get("overrides") or {}, [])


def _page(row: dict, overrides: dict, problems: list, status: int = 200):
    content = row["content"]
    overrides = {lang: {"qa": [], **(overrides.get(lang) or {})} for lang in rules.LANGUAGES}
    page = render_template(
        "admin/review.html",
        n=row,
        content=content,
        newest=(content.get("updates") or [{}])[0],
        overrides=overrides,
        problems=problems_by_field(problems),
        previews=rendered_previews(content, rules.LANGUAGES),
        frame=lambda lang: url_for(".notification_frame", notification_id=row["id"], lang=lang),
        now=context.now(),
    )
    return page, status


@bp.post("/review/<id:notification_id>")
def review_action(notification_id: int):
    store, now = context.store(), context.now()
    row = _pending(notification_id)
    match = ACTION.match(request.form.get("action", "save"))
    if match is None:
        abort(400)
    verb, lang, index = match.group(1), match.group(2), match.group(3)
    if row["review_state"] != "pending":
        flash(
            _(
                "This notification no longer waits for review (%(state)s).",
                state=row["review_state"],
            )
        )
        return redirect(url_for(".notification", notification_id=notification_id), 303)
    if verb == "discard":
        if store.set_review_state(notification_id, "discarded", now, reviewed_by=g.admin_user):
            audit("review.discard", f"notification:{notification_id}")
            flash(_("Discarded: this notification will not be sent."))
        return redirect(url_for(".review_queue"), 303)
    overrides = form_to_overrides(request.form, keep_empty=True)
    anchor = None
    if verb.startswith("qa-") and lang:
        anchor = apply_qa_action(overrides, verb, lang, int(index) if index else None)
    final = form_to_overrides(request.form, keep_empty=False)
    # Saving half-written pairs is fine; approving needs every question answered.
    problems = rules.validate_overrides(
        final if verb == "approve" else overrides, verb == "approve"
    )
    if problems:
        return _page(row, overrides, problems, 400)
    if verb != "approve":
        return _save(row, overrides, anchor)
    count = store.approve_review(
        notification_id, _with_overrides(row["content"], final), g.admin_user, now
    )
    if count is None:
        flash(_("Too late: this notification no longer waits for review."))
        return redirect(url_for(".notification", notification_id=notification_id), 303)
    work_queued(store, now)
    audit("review.approve", f"notification:{notification_id}", recipients=count)
    flash(_("Approved and sending to %(count)s recipients.", count=count))
    return redirect(url_for(".notification", notification_id=notification_id), 303)


def _save(row: dict, overrides: dict, anchor: str | None):
    content = _with_overrides(row["content"], overrides)
    if context.store().update_review_content(row["id"], content):
        audit("review.edit", f"notification:{row['id']}")
        if anchor is None:
            flash(_("Saved. It still waits for approval."))
    else:
        flash(_("Too late: this notification no longer waits for review."))
        return redirect(url_for(".notification", notification_id=row["id"]), 303)
    target = url_for(".review", notification_id=row["id"])
    return redirect(target + (f"#{anchor}" if anchor else ""), 303)
