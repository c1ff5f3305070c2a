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
from ..announcements import N_, Problem
from ..forms import load_catalogue, zone_names, zone_options
from .common import CHANNELS, problem_summary, ui_language

ACTION = re.compile(
    r"^(save|preview|test|send|qa-add|qa-remove|qa-up|qa-down)(?::(de|en))?(?::(\d{1,2}))?\Z"
)
MAX_QA_FIELDS = 40  # form rows read per language; validate() caps the real number lower
# A window is about now. Browsers let a datetime-local field send any year from 1 to 275760;
# years 1 and 9999 cannot even be converted between zones (OverflowError), and a year like
# 0202 is a typo. This range keeps every conversion, in every reader's zone, well inside
# what datetime can hold.
FIRST_YEAR, LAST_YEAR = 2000, 2099
# What a datetime-local field sends (HTML standard, "local date and time strings"): date, "T"
# or a space, hours and minutes, optional seconds and fraction; years of 4 to 6 digits. Checked
# before datetime.fromisoformat(), which also reads week dates and ignores a trailing NUL.
_LOCAL_TIME = re.compile(
    r"([0-9]{4,6})-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,3})?)?"
)
DEFAULT_ZONE = "UTC"  # a form without the field (the composer's select always sends one)


# --- form <-> draft ------------------------------------------------------------------
def _form_zone(form) -> str | None:
    """The window's zone as posted when it is one of the select's options, else None.

    Only names from that list are opened: ZoneInfo() reads any file under the tz directory,
    so "Europe" (a directory) or "__pycache__" raise errors other than "not found".
    """
    zone = form.get("window_zone") or DEFAULT_ZONE
    return zone if zone in zone_names() else None


def _time_problem(field: str, value: str) -> Problem | None:
    """Why a typed datetime-local value cannot be used (None: it can)."""
    match = _LOCAL_TIME.fullmatch(value)
    if match is None:
        return Problem(field, N_("Not a valid date and time."))
    if not FIRST_YEAR <= int(match.group(1)) <= LAST_YEAR:
        message = N_("Give a date in the years %(first)s to %(last)s.")
        return Problem(field, message, {"first": FIRST_YEAR, "last": LAST_YEAR})
    try:
        datetime.fromisoformat(value)
    except ValueError:  # e.g. month 13, 25:00
        return Problem(field, N_("Not a valid date and time."))
    return None


def window_problems(form) -> list[Problem]:
    """What keeps the composer's time window from being read: a zone not in the list, a time
    that is not one, a year outside FIRST_YEAR..LAST_YEAR (field errors, English templates)."""
    problems = []
    if _form_zone(form) is None:
        problems.append(Problem("window.zone", N_("Please choose a time zone from the list.")))
    for name in ("start", "end"):
        value = (form.get(f"window_{name}") or "").strip()
        problem = _time_problem(f"window.{name}", value) if value else None
        if problem is not None:
            problems.append(problem)
    return problems


def _local_time(value: str | None, zone: str):
    """A datetime-local value typed in `zone` -> an aware datetime, or the text marked invalid
    (normalize() would parse unmarked text again, and year 1 overflows when it converts)."""
    value = (value or "").strip()
    if not value:
        return None
    if _time_problem("", value) is not None:
        return f"{rules.INVALID}{value}"
    return datetime.fromisoformat(value).replace(tzinfo=ZoneInfo(zone))


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
    """The composer's fields -> (content, audience) as a draft (empty Q/A rows kept).

    A zone not in the list becomes UTC and an unreadable time stays text (normalize() marks it
    invalid), so this never fails; window_problems() says what was wrong.
    """
    zone = _form_zone(form) or DEFAULT_ZONE
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
        key = re.sub(r"^products\.\d+\Z", "products", problem.field)
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
        channel_counts=audience_channel_counts(audience),
        test_to=request.form.get("test_to", ""),
        incident=store.get_incident(row["incident_id"]) if row and row["incident_id"] else None,
    )
    return page, status


def audience_count(audience: dict) -> int:
    """Recipients of a draft's audience; none while no language or no product is chosen."""
    return sum(audience_channel_counts(audience).values())


def audience_channel_counts(audience: dict) -> dict[str, int]:
    """A draft's recipients per channel (email, slack, teams, webhook), as fan-out picks them:
    channel subscriptions count once verified and while not paused; all 0 while no language or
    no product is chosen."""
    if not audience["languages"] or audience.get("components") == []:
        return dict.fromkeys(CHANNELS, 0)
    return context.store().count_audience_by_channel("announcement", audience)
