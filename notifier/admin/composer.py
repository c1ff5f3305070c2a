"""The announcement composer: German and English side by side, drafts, preview, test send,
send with a confirmation that shows the recipient count, and the post-incident template.

The composer is one form; its buttons say what to do (`action`): save, preview, test, send,
and the Q/A buttons (add, remove, move up or down) that work without JavaScript. Every press
saves the draft first, so nothing typed is lost. Nothing is sent before validate() is happy.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import announcements as rules
from .. import context
from ..forms import load_catalogue, normalize_email, zone_options
from ..i18n import DEFAULT_TIMEZONES
from ..postincident import prefill_from_incident
from . import bp
from .common import audit, problem_summary, ui_language
from .previews import preview_response, rendered_previews

ACTION = re.compile(
    r"^(save|preview|test|send|qa-add|qa-remove|qa-up|qa-down)(?::(de|en))?(?::(\d{1,2}))?$"
)
MAX_QA_FIELDS = 40  # form rows read per language; validate() caps the real number lower


# --- form <-> draft ------------------------------------------------------------------
def _local_time(value: str | None, zone: str):
    """A datetime-local value typed in `zone` -> an aware datetime (or the text, if invalid)."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=ZoneInfo(zone))
    except ValueError:
        return value


def _pairs(form, lang: str) -> list[dict]:
    pairs = []
    for i in range(MAX_QA_FIELDS):
        q, a = form.get(f"{lang}-qa-{i}-q"), form.get(f"{lang}-qa-{i}-a")
        if q is None and a is None:
            continue
        pairs.append({"q": q or "", "a": a or ""})
    return pairs


def form_to_draft(form, catalogue) -> tuple[dict, dict]:
    """The composer's fields -> (content, audience) as a draft (empty Q/A rows kept)."""
    zone = rules._zone_name(form.get("window_zone"))
    raw = {
        "products": form.get("products", ""),
        "window": {
            "start": _local_time(form.get("window_start"), zone),
            "end": _local_time(form.get("window_end"), zone),
            "zone": zone,
        },
        "audience": {
            "components": (
                list(catalogue.expand(form.getlist("audience_components")))
                if form.get("audience_scope") == "components"
                else None
            ),
            "languages": form.getlist("audience_languages"),
        },
    }
    for lang in rules.LANGUAGES:
        raw[lang] = {
            "title": form.get(f"{lang}-title", ""),
            "intro": form.get(f"{lang}-intro", ""),
            "bullets": form.get(f"{lang}-bullets", ""),
            "qa": _pairs(form, lang),
        }
    return rules.normalize(raw, keep_empty=True)


def local_input(iso: str | None, zone: str) -> str:
    """A stored UTC time as the value of a datetime-local input in `zone`."""
    if not iso:
        return ""
    if iso.startswith(rules.INVALID):
        return iso.removeprefix(rules.INVALID)
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M")


def apply_qa_action(content: dict, verb: str, lang: str, index: int | None) -> str | None:
    """Add, remove or move a Q/A row; returns the anchor to scroll back to."""
    qa = content[lang]["qa"]
    if verb == "qa-add":
        qa.append({"q": "", "a": ""})
        return f"{lang}-qa-{len(qa) - 1}"
    if index is None or not 0 <= index < len(qa):
        return f"{lang}-qa"
    if verb == "qa-remove":
        qa.pop(index)
        return f"{lang}-qa"
    target = index - 1 if verb == "qa-up" else index + 1
    if 0 <= target < len(qa):
        qa[index], qa[target] = qa[target], qa[index]
        return f"{lang}-qa-{target}"
    return f"{lang}-qa-{index}"


def ready_to_send(content: dict, audience: dict, store) -> tuple[dict, dict, list]:
    """The draft as it would go out (empty rows dropped) and what is still wrong with it."""
    final, final_audience = rules.normalize({**content, "audience": audience})
    known = {c["id"] for c in store.list_components()}
    return final, final_audience, rules.validate(final, final_audience, known)


def problems_by_field(problems: list) -> dict[str, list[str]]:
    """Translated messages per form field ("products.3" and "de.bullets" collapse to theirs)."""
    out: dict[str, list[str]] = {}
    for problem in problems:
        key = re.sub(r"^products\.\d+$", "products", problem.field)
        out.setdefault(key, []).append(_(problem.message, **problem.params))
    return out


# --- pages ---------------------------------------------------------------------------
def _announcement(announcement_id: int) -> dict:
    row = context.store().get_announcement(announcement_id)
    if row is None:
        abort(404)
    return row


def _composer(row: dict | None, content: dict, audience: dict, problems: list, status=200):
    store = context.store()
    catalogue = load_catalogue(store)
    zone = content["window"].get("zone") or "Europe/Berlin"
    page = render_template(
        "admin/composer.html",
        announcement=row,
        content=content,
        audience=audience,
        problems=problems_by_field(problems),
        summary=problem_summary(problems),
        catalogue=catalogue,
        chosen=set(audience.get("components") or ()),
        window_start=local_input(content["window"].get("start"), zone),
        window_end=local_input(content["window"].get("end"), zone),
        zone_options=zone_options(zone, ui_language()),
        count=_count(audience),
        test_to=request.form.get("test_to", ""),
        incident=store.get_incident(row["incident_id"]) if row and row["incident_id"] else None,
    )
    return page, status


def _count(audience: dict) -> int:
    """Recipients of a draft's audience; none while no language or no product is chosen."""
    if not audience["languages"] or audience.get("components") == []:
        return 0
    return context.store().count_audience("announcement", audience)


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
    return _composer(None, content, audience, [])[0]


@bp.get("/announcements/<int:announcement_id>")
def announcement(announcement_id: int):
    row = _announcement(announcement_id)
    if row["state"] != "draft":
        return render_template("admin/announcement_view.html", announcement=row)
    store = context.store()
    problems = ready_to_send(row["content"], row["audience"], store)[2]
    return _composer(row, row["content"], row["audience"], problems)[0]


@bp.post("/announcements/new")
@bp.post("/announcements/<int:announcement_id>")
def save_announcement(announcement_id: int | None = None):
    store, now = context.store(), context.now()
    row = _announcement(announcement_id) if announcement_id is not None else None
    if row is not None and row["state"] != "draft":
        flash(_("This announcement was already sent; it cannot be changed."))
        return redirect(url_for(".announcement", announcement_id=announcement_id), 303)
    match = ACTION.match(request.form.get("action", "save"))
    if match is None:
        abort(400)
    verb, lang, index = match.group(1), match.group(2), match.group(3)
    content, audience = form_to_draft(request.form, load_catalogue(store))
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
        problems += _test_address_problems()
    if problems:
        return _composer(row, content, audience, problems, 400)
    if verb == "test":
        return _test_send(announcement_id, final, final_audience)
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


def _test_address_problems() -> list:
    raw = request.form.get("test_to", "").strip()
    try:
        normalize_email(raw)
    except ValueError:
        return [rules.Problem("test_to", rules.N_("Enter the email address for the test."))]
    return []


def _test_send(announcement_id: int, content: dict, audience: dict):
    store, now, settings = context.store(), context.now(), context.settings()
    address = normalize_email(request.form.get("test_to", "").strip())
    expires = rules.expires_at(now, settings.notification_ttl_hours)
    for lang in audience["languages"]:
        store.create_test_send(
            "announcement", content, address, lang, DEFAULT_TIMEZONES[lang], now, expires
        )
    audit(
        "announcement.test_send",
        f"announcement:{announcement_id}",
        to=address,
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


# --- preview -------------------------------------------------------------------------
@bp.get("/announcements/<int:announcement_id>/preview")
def preview_announcement(announcement_id: int):
    row = _announcement(announcement_id)
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


@bp.get("/announcements/<int:announcement_id>/preview/<any(de, en):lang>.html")
def announcement_frame(announcement_id: int, lang: str):
    row = _announcement(announcement_id)
    final = rules.normalize({**row["content"], "audience": row["audience"]})[0]
    return preview_response(final, lang)


# --- send ----------------------------------------------------------------------------
def _send_summary(row: dict):
    store = context.store()
    final, audience, problems = ready_to_send(row["content"], row["audience"], store)
    per_language = {
        lang: store.count_audience("announcement", {**audience, "languages": [lang]})
        for lang in audience["languages"]
    }
    return final, audience, problems, per_language


@bp.get("/announcements/<int:announcement_id>/send")
def confirm_send(announcement_id: int):
    row = _announcement(announcement_id)
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
        previews=rendered_previews(final, audience["languages"]),
        revision=rules.revision(row["content"], row["audience"]),
        component_names=_component_names(audience),
    )


def _component_names(audience: dict) -> list[str]:
    names = {c["id"]: c["name"] for c in context.store().list_components()}
    return [names.get(cid, cid) for cid in audience.get("components") or ()]


@bp.post("/announcements/<int:announcement_id>/send")
def send_announcement(announcement_id: int):
    store, now, settings = context.store(), context.now(), context.settings()
    row = _announcement(announcement_id)
    if row["state"] != "draft":
        flash(_("This announcement was already sent."))
        return redirect(url_for(".announcement", announcement_id=announcement_id), 303)
    final, audience, problems, per_language = _send_summary(row)
    if problems:
        return _composer(row, row["content"], row["audience"], problems, 400)
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
    audit(
        "announcement.send", f"announcement:{announcement_id}", notification=nid, recipients=count
    )
    flash(_("Sending to %(count)s recipients. Progress below.", count=count))
    return redirect(url_for(".notification", notification_id=nid), 303)


# --- drafts from elsewhere -----------------------------------------------------------
@bp.post("/announcements/from-incident")
def announcement_from_incident():
    store, now = context.store(), context.now()
    try:
        incident_id = int(request.form.get("incident_id", ""))
        raw = prefill_from_incident(store, incident_id)
    except (ValueError, LookupError):
        flash(_("Choose an incident from the list."))
        return redirect(url_for(".announcements"), 303)
    content, audience = rules.normalize(raw, keep_empty=True)
    new_id = store.save_announcement(content, audience, _actor(), now, incident_id=incident_id)
    audit("announcement.prefill", f"announcement:{new_id}", incident=incident_id)
    flash(_("Post-incident notice drafted. Please check and complete every answer."))
    return redirect(url_for(".announcement", announcement_id=new_id), 303)


@bp.post("/announcements/<int:announcement_id>/copy")
def copy_announcement(announcement_id: int):
    row = _announcement(announcement_id)
    store, now = context.store(), context.now()
    new_id = store.save_announcement(
        row["content"], row["audience"], _actor(), now, incident_id=row["incident_id"]
    )
    audit("announcement.copy", f"announcement:{new_id}", source=announcement_id)
    flash(_("A new draft with the same texts."))
    return redirect(url_for(".announcement", announcement_id=new_id), 303)


@bp.post("/announcements/<int:announcement_id>/discard")
def discard_announcement(announcement_id: int):
    _announcement(announcement_id)
    if context.store().discard_announcement(announcement_id, context.now()):
        audit("announcement.discard", f"announcement:{announcement_id}")
        flash(_("Draft discarded."))
    return redirect(url_for(".announcements"), 303)
