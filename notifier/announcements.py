"""Manual announcements: structure, validation, and the YAML file the `announce` command reads.

Content (stored on the announcement and its notification, rendered by render.py):
    {"kind": "announcement", "products": [..], "window": {"start": iso|None, "end": iso|None,
     "zone": the zone ops typed the times in}, "de": {"title", "intro", "bullets": [..],
     "qa": [{"q", "a"}]}, "en": {...}}
Audience: {"components": [ids] or None (everyone), "languages": ["de", "en"]}.

Problems carry an English message template with %(name)s placeholders, marked with N_ so the
ops console can show it translated (gettext(problem.message, **problem.params)); `str()` of a
problem is the English text the CLI prints.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import unicodedata
import zoneinfo
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from .delivery.wake import work_queued

LANGUAGES = ("de", "en")
LIMITS = {"title": 150, "intro": 3000, "bullet": 300, "bullets": 10, "q": 300, "a": 4000,
          "qa": 20, "product": 100, "products": 10, "summary": 1000, "text": 4000}  # fmt: skip
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029\u0085]")
_LINE_BREAK = re.compile(r"[\r\n]")
INVALID = "invalid:"
# The post-incident template's gaps ("[Please add the cause in one sentence.]"); sending one
# unfilled would tell every customer that nobody read the notice.
_PLACEHOLDER = re.compile(r"\[(?:Bitte|Please) [^\]]*\]")


def N_(message: str) -> str:
    """Mark a message for extraction; it is translated where it is shown."""
    return message


SINGLE_LINE = N_("Must be one line: line breaks and control characters are not allowed here.")
CONTROL = N_("Contains control characters.")
TOO_LONG = N_("At most %(limit)s characters.")


@dataclass(frozen=True)
class Problem:
    field: str  # e.g. "de.title", "en.qa.2.a", "audience.languages"
    message: str  # an N_-marked template
    params: dict = field(default_factory=dict, compare=False)

    def __str__(self) -> str:
        return self.message % self.params if self.params else self.message


class AnnouncementError(ValueError):
    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(f"{p.field}: {p}" for p in problems))
        self.problems = problems


def _text(value, multiline: bool = True) -> str:
    text = "" if value is None else str(value)
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    return text.strip() if multiline else text.strip(" \t")


def _lines(value) -> list:
    if isinstance(value, str):
        return re.split(r"\n", value.replace("\r\n", "\n").replace("\r", "\n"))
    return list(value) if isinstance(value, list | tuple) else []


def normalize(raw: dict, keep_empty: bool = False) -> tuple[dict, dict]:
    """Raw form or YAML data -> (content, audience), trimmed, not validated.

    Empty bullets and Q/A pairs are dropped, unless `keep_empty` (a draft in the composer keeps
    the empty pair ops just added). Products may be a list or one text, one per line or comma.
    """
    content: dict = {"kind": "announcement"}
    products = raw.get("products") or []
    if isinstance(products, str):
        products = re.split(r"[,\n]", products)
    content["products"] = [_text(p) for p in _lines(products) if _text(p)]
    window = raw.get("window") or {}
    zone = _zone_name(window.get("zone"))
    content["window"] = {
        "start": _iso(window.get("start"), zone),
        "end": _iso(window.get("end"), zone),
        "zone": zone,
    }
    for lang in LANGUAGES:
        content[lang] = _normalize_language(raw.get(lang) or {}, keep_empty)
    audience_raw = raw.get("audience") or {}
    components = audience_raw.get("components")
    languages = audience_raw.get("languages")
    if languages is None:  # not given: both; given but empty is a mistake validate() names
        languages = list(LANGUAGES)
    if isinstance(languages, str):
        languages = [languages]
    audience = {
        # None: everyone. A list (even an empty one) means "only these components".
        "components": None if components is None else sorted({str(c) for c in components}),
        "languages": [lang for lang in LANGUAGES if lang in languages],
    }
    return content, audience


def _normalize_language(part: dict, keep_empty: bool) -> dict:
    qa = []
    for item in part.get("qa") or []:
        if not isinstance(item, dict):
            continue
        pair = {"q": _text(item.get("q"), multiline=False), "a": _text(item.get("a"))}
        if keep_empty or pair["q"] or pair["a"]:
            qa.append(pair)
    return {
        "title": _text(part.get("title"), multiline=False),
        "intro": _text(part.get("intro")),
        "bullets": [_text(b, multiline=False) for b in _lines(part.get("bullets")) if _text(b)],
        "qa": qa,
    }


# Window times are read and shown in these years only: a year-1 or year-9999 time overflows
# when it is moved between zones (the composer keeps the same range, admin/drafts.py).
FIRST_YEAR, LAST_YEAR = 2000, 2099


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _zone_name(value) -> str:
    """An IANA zone name, exactly as the tz database spells it; INVALID + the text otherwise
    (ZoneInfo itself would take "Europe" or "__pycache__" as a path and fail oddly)."""
    name = str(value or "UTC").strip()
    return name if name in _zones() else f"{INVALID}{name[:50]}"


def _iso(value, zone: str = "UTC") -> str | None:
    """A time as UTC text; a time without an offset is read in the window's zone, as typed.

    INVALID + the text for anything that is no date and time in FIRST_YEAR..LAST_YEAR.
    """
    if value in (None, ""):
        return None
    local = zoneinfo.ZoneInfo("UTC" if zone.startswith(INVALID) else zone)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=local)
        text = value.isoformat()
    else:
        text = str(value).strip()
        if text.startswith(INVALID):
            return text
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return f"{INVALID}{text[:50]}"
        moment = moment if moment.tzinfo else moment.replace(tzinfo=local)
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        return f"{INVALID}{text[:50]}"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def validate(
    content: dict, audience: dict, known_components: set[str] | None = None
) -> list[Problem]:
    """Everything wrong with an announcement, field by field (empty list: ready to send)."""
    problems: list[Problem] = []
    languages = audience.get("languages") or []
    if not languages:
        problems.append(Problem("audience.languages", N_("Choose at least one language.")))
    components = audience.get("components")
    if components is not None and not components:
        problems.append(
            Problem("audience.components", N_("Choose at least one product, or everyone."))
        )
    unknown = (
        sorted(set(components or ()) - known_components) if known_components is not None else []
    )
    if unknown:
        problems.append(
            Problem(
                "audience.components",
                N_("Unknown product: %(ids)s"),
                {"ids": ", ".join(unknown)},
            )
        )
    problems += _validate_window(content["window"])
    if len(content["products"]) > LIMITS["products"]:
        problems.append(
            Problem("products", N_("At most %(limit)s products."), {"limit": LIMITS["products"]})
        )
    for i, product in enumerate(content["products"]):
        problems += check_line(f"products.{i}", product, LIMITS["product"])
    for lang in LANGUAGES:
        problems += _validate_language(lang, content[lang], required=lang in languages)
    return problems


def _validate_window(window: dict) -> list[Problem]:
    problems = []
    if str(window.get("zone") or "").startswith(INVALID):
        problems.append(Problem("window.zone", N_("Please choose a time zone from the list.")))
    for name in ("start", "end"):
        value = window.get(name)
        if value and value.startswith(INVALID):
            problems.append(Problem(f"window.{name}", N_("Not a valid date and time.")))
    start, end = window.get("start"), window.get("end")
    if start and end and not problems and end < start:
        problems.append(Problem("window.end", N_("The end is before the start.")))
    if end and not start and not problems:
        problems.append(Problem("window.start", N_("Give a start when you give an end.")))
    return problems


def check_line(name: str, value: str, limit: int) -> list[Problem]:
    """A single-line field: a line break in a subject or header would be header injection."""
    if _LINE_BREAK.search(value) or _CONTROL.search(value):
        return [Problem(name, SINGLE_LINE)]
    if len(value) > limit:
        return [Problem(name, TOO_LONG, {"limit": limit})]
    return []


def check_block(name: str, value: str, limit: int) -> list[Problem]:
    if _CONTROL.search(value):
        return [Problem(name, CONTROL)]
    if _PLACEHOLDER.search(value):
        return [Problem(name, N_("Replace the placeholder in square brackets with the facts."))]
    if len(value) > limit:
        return [Problem(name, TOO_LONG, {"limit": limit})]
    return []


def _validate_language(lang: str, part: dict, required: bool) -> list[Problem]:
    problems = []
    empty = not (part["title"] or part["intro"] or part["bullets"] or part["qa"])
    if required and not part["title"]:
        problems.append(Problem(f"{lang}.title", N_("A title is needed (it becomes the subject).")))
    if required and not (part["intro"] or part["bullets"] or part["qa"]):
        problems.append(
            Problem(f"{lang}.intro", N_("Write an introduction, bullets or a question."))
        )
    if not required and empty:
        return problems
    # The title becomes the Subject header: a line break there is a header injection.
    problems += check_line(f"{lang}.title", part["title"], LIMITS["title"])
    problems += check_block(f"{lang}.intro", part["intro"], LIMITS["intro"])
    if len(part["bullets"]) > LIMITS["bullets"]:
        problems.append(
            Problem(
                f"{lang}.bullets", N_("At most %(limit)s bullets."), {"limit": LIMITS["bullets"]}
            )
        )
    for bullet in part["bullets"]:
        problems += check_line(f"{lang}.bullets", bullet, LIMITS["bullet"])
    problems += validate_qa(lang, part["qa"])
    return problems


def validate_qa(lang: str, qa: list[dict], require_answers: bool = True) -> list[Problem]:
    problems = []
    if len(qa) > LIMITS["qa"]:
        problems.append(
            Problem(f"{lang}.qa", N_("At most %(limit)s questions."), {"limit": LIMITS["qa"]})
        )
    for i, item in enumerate(qa):
        if require_answers and (not item["q"] or not item["a"]):
            problems.append(Problem(f"{lang}.qa.{i}", N_("Each question needs an answer.")))
        problems += check_line(f"{lang}.qa.{i}.q", item["q"], LIMITS["q"])
        problems += check_block(f"{lang}.qa.{i}.a", item["a"], LIMITS["a"])
    return problems


def validate_overrides(overrides: dict, require_answers: bool = True) -> list[Problem]:
    """Ops' texts for a feed notification under review (see notifier/emails/incident.py)."""
    problems = []
    for lang in LANGUAGES:
        part = overrides.get(lang) or {}
        problems += check_line(f"{lang}.title", part.get("title", ""), LIMITS["title"])
        problems += check_block(f"{lang}.summary", part.get("summary", ""), LIMITS["summary"])
        problems += check_block(f"{lang}.text", part.get("text", ""), LIMITS["text"])
        problems += validate_qa(lang, part.get("qa") or [], require_answers)
    return problems


def load_file(path: Path) -> tuple[dict, dict]:
    """Read an announcement YAML file (same shape as the composer) -> (content, audience)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        message = N_("Cannot read %(path)s: %(error)s")
        raise AnnouncementError([Problem("file", message, {"path": path, "error": exc})]) from None
    if not isinstance(data, dict):
        raise AnnouncementError([Problem("file", N_("The file must hold a YAML mapping."))])
    try:
        return normalize(data)
    except (AttributeError, TypeError) as exc:  # e.g. `de: just a string`
        message = N_("Unexpected structure: %(error)s")
        raise AnnouncementError([Problem("file", message, {"error": exc})]) from None


def revision(content: dict, audience: dict) -> str:
    """A short fingerprint: the send button carries it, so a draft changed in another tab after
    the confirmation page was shown is not sent unseen."""
    data = json.dumps([content, audience], sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def expires_at(now: datetime, ttl_hours: int) -> datetime:
    return now + timedelta(hours=ttl_hours)


def recipients_by_language(store, audience: dict) -> dict[str, int]:
    """How many confirmed subscribers each chosen language reaches."""
    return {
        lang: store.count_audience("announcement", {**audience, "languages": [lang]})
        for lang in audience["languages"]
    }


# Marks a test send's subject; the same word in German and English, in the subjects' bracket
# style ("[Hinweis] …", "[Notice] …").
TEST_MARKER = "[TEST]"


def queue_test_sends(
    store, content: dict, audience: dict, address: str, now: datetime, ttl_hours: int
) -> None:
    """One test mail per chosen language to any address; the worker sends them. Each title,
    and so each subject ("[Hinweis] [TEST] …", "[Notice] [TEST] …"), carries TEST_MARKER."""
    from .i18n import DEFAULT_TIMEZONES

    marked = {
        **content,
        **{
            lang: {**content[lang], "title": f"{TEST_MARKER} {content[lang].get('title') or ''}"}
            for lang in audience["languages"]
            if isinstance(content.get(lang), dict)
        },
    }
    for lang in audience["languages"]:
        store.create_test_send(
            "announcement", marked, address, lang, DEFAULT_TIMEZONES[lang], now,
            expires_at(now, ttl_hours),
        )  # fmt: skip
    work_queued(store, now)
