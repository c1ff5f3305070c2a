"""The composer's form and page: fields <-> draft (content, audience), Q/A row buttons,
validation messages per field, and the page itself (shared by editing and sending)."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import abort, render_template, request
from flask_babel import gettext as _

from .. import announcements as rules
from .. import context
from ..forms import load_catalogue, zone_options
from .common import problem_summary, ui_language

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


def qa_pairs(form, lang: str) -> list[dict]:
    """The Q/A rows of one language as posted (raw text, empty rows included)."""
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
            "qa": qa_pairs(form, lang),
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
def announcement_or_404(announcement_id: int) -> dict:
    row = context.store().get_announcement(announcement_id)
    if row is None:
        abort(404)
    return row


def composer_page(row: dict | None, content: dict, audience: dict, problems: list, status=200):
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
        count=audience_count(audience),
        test_to=request.form.get("test_to", ""),
        incident=store.get_incident(row["incident_id"]) if row and row["incident_id"] else None,
    )
    return page, status


def audience_count(audience: dict) -> int:
    """Recipients of a draft's audience; none while no language or no product is chosen."""
    if not audience["languages"] or audience.get("components") == []:
        return 0
    return context.store().count_audience("announcement", audience)
