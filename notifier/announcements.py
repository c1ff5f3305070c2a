"""Manual announcements: structure, validation, the post-incident template, send and test send.

Content (stored on the announcement and its notification, rendered by render.py):
    {"kind": "announcement", "products": [..], "window": {"start": iso|None, "end": iso|None},
     "de": {"title", "intro", "bullets": [..], "qa": [{"q", "a"}]}, "en": {...}}
Audience: {"components": [ids] or None (everyone), "languages": ["de", "en"]}.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

LANGUAGES = ("de", "en")
LIMITS = {"title": 150, "intro": 3000, "bullet": 300, "bullets": 10, "q": 300, "a": 4000,
          "qa": 20, "product": 100, "products": 10}  # fmt: skip
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029]")
_LINE_BREAK = re.compile(r"[\r\n]")


@dataclass(frozen=True)
class Problem:
    field: str  # e.g. "de.title", "en.qa.2.a", "audience.languages"
    message: str


class AnnouncementError(ValueError):
    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


def _text(value, multiline: bool = True) -> str:
    text = "" if value is None else str(value)
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    return text.strip() if multiline else text.strip(" \t")


def normalize(raw: dict) -> tuple[dict, dict]:
    """Raw form or YAML data -> (content, audience), trimmed, empty rows dropped; not validated."""
    content = {"kind": "announcement"}
    products = raw.get("products") or []
    if isinstance(products, str):
        products = [p for p in re.split(r"[,\n]", products)]
    content["products"] = [_text(p) for p in products if _text(p)]
    window = raw.get("window") or {}
    content["window"] = {"start": _iso(window.get("start")), "end": _iso(window.get("end"))}
    for lang in LANGUAGES:
        part = raw.get(lang) or {}
        bullets = part.get("bullets") or []
        if isinstance(bullets, str):
            bullets = bullets.split("\n")
        content[lang] = {
            "title": _text(part.get("title"), multiline=False),
            "intro": _text(part.get("intro")),
            "bullets": [_text(b) for b in bullets if _text(b)],
            "qa": [
                {"q": _text(item.get("q")), "a": _text(item.get("a"))}
                for item in part.get("qa") or []
                if isinstance(item, dict) and (_text(item.get("q")) or _text(item.get("a")))
            ],
        }
    audience_raw = raw.get("audience") or {}
    components = audience_raw.get("components")
    languages = audience_raw.get("languages") or list(LANGUAGES)
    audience = {
        "components": sorted({str(c) for c in components}) if components else None,
        "languages": [lang for lang in LANGUAGES if lang in languages],
    }
    return content, audience


def _iso(value) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return f"invalid:{value}"
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def validate(content: dict, audience: dict) -> list[Problem]:
    """Everything wrong with an announcement, field by field (empty list: ready to send)."""
    problems: list[Problem] = []
    languages = audience.get("languages") or []
    if not languages:
        problems.append(Problem("audience.languages", "Choose at least one language."))
    for field in ("start", "end"):
        value = content["window"].get(field)
        if value and value.startswith("invalid:"):
            problems.append(Problem(f"window.{field}", "Not a valid date and time."))
    start, end = content["window"]["start"], content["window"]["end"]
    valid = start and end and not start.startswith("invalid") and not end.startswith("invalid")
    if valid and end < start:
        problems.append(Problem("window.end", "The end is before the start."))
    if len(content["products"]) > LIMITS["products"]:
        problems.append(Problem("products", f"At most {LIMITS['products']} products."))
    for i, product in enumerate(content["products"]):
        problems += _check_line(f"products.{i}", product, LIMITS["product"])
    for lang in LANGUAGES:
        problems += _validate_language(lang, content[lang], required=lang in languages)
    return problems


def _check_line(field: str, value: str, limit: int) -> list[Problem]:
    if _LINE_BREAK.search(value) or _CONTROL.search(value):
        return [Problem(field, "Must be a single line without control characters.")]
    if len(value) > limit:
        return [Problem(field, f"At most {limit} characters.")]
    return []


def _check_block(field: str, value: str, limit: int) -> list[Problem]:
    if _CONTROL.search(value):
        return [Problem(field, "Contains control characters.")]
    if len(value) > limit:
        return [Problem(field, f"At most {limit} characters.")]
    return []


def _validate_language(lang: str, part: dict, required: bool) -> list[Problem]:
    problems = []
    empty = not (part["title"] or part["intro"] or part["bullets"] or part["qa"])
    if required and not part["title"]:
        problems.append(Problem(f"{lang}.title", "A title is needed (it becomes the subject)."))
    if required and not (part["intro"] or part["bullets"] or part["qa"]):
        problems.append(Problem(f"{lang}.intro", "Write an introduction, bullets or a Q&A."))
    if not required and empty:
        return problems
    # The title becomes the Subject header: a line break there is a header injection.
    problems += _check_line(f"{lang}.title", part["title"], LIMITS["title"])
    problems += _check_block(f"{lang}.intro", part["intro"], LIMITS["intro"])
    if len(part["bullets"]) > LIMITS["bullets"]:
        problems.append(Problem(f"{lang}.bullets", f"At most {LIMITS['bullets']} bullets."))
    for i, bullet in enumerate(part["bullets"]):
        problems += _check_line(f"{lang}.bullets.{i}", bullet, LIMITS["bullet"])
    if len(part["qa"]) > LIMITS["qa"]:
        problems.append(Problem(f"{lang}.qa", f"At most {LIMITS['qa']} questions."))
    for i, item in enumerate(part["qa"]):
        if not item["q"] or not item["a"]:
            problems.append(Problem(f"{lang}.qa.{i}", "Each question needs an answer."))
        problems += _check_line(f"{lang}.qa.{i}.q", item["q"], LIMITS["q"])
        problems += _check_block(f"{lang}.qa.{i}.a", item["a"], LIMITS["a"])
    return problems


def load_file(path: Path) -> tuple[dict, dict]:
    """Read an announcement YAML file (same shape as the composer) -> (content, audience)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise AnnouncementError([Problem("file", f"cannot read {path}: {exc}")]) from None
    if not isinstance(data, dict):
        raise AnnouncementError([Problem("file", "the YAML must be a mapping")])
    return normalize(data)


def expires_at(now: datetime, ttl_hours: int) -> datetime:
    return now + timedelta(hours=ttl_hours)
