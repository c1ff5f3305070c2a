"""Golden files of every email kind in German and English: the rendered mails are the product.

Inputs are the JSON content snapshots in tests/golden/content/; outputs are
tests/golden/<case>.<lang>.<zone>.txt (subject line + text part) and .html. Any difference
fails. After an intended change, regenerate with
`UPDATE_GOLDEN=1 pytest tests/test_render_golden.py` and read the diff: it is what
subscribers will see.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from notifier.render import render_email

GOLDEN = Path(__file__).parent / "golden"
CONTENT = GOLDEN / "content"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

CASES = sorted(p.stem for p in CONTENT.glob("*.json"))
READERS = [("de", "Europe/Berlin"), ("en", "UTC")]
# English readers in Berlin see CEST/CET; the June and January incidents show both, the
# maintenance moved across the end of summer time both in one mail (issue 11).
EXTRA = [
    ("incident_resolved_june", "en", "Europe/Berlin"),
    ("incident_resolved_january", "en", "Europe/Berlin"),
    ("maintenance_rescheduled_dst", "en", "Europe/Berlin"),
]
RENDERS = [(case, lang, tz) for case in CASES for lang, tz in READERS] + EXTRA


def load_content(case: str) -> dict:
    return json.loads((CONTENT / f"{case}.json").read_text(encoding="utf-8"))


def golden_stem(case: str, lang: str, tz: str) -> str:
    return f"{case}.{lang}.{tz.replace('/', '-').lower()}"


def _check(path: Path, actual: str) -> None:
    if UPDATE:
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"{path.name} is missing; run with UPDATE_GOLDEN=1 and review it"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{path.name} differs; if intended, UPDATE_GOLDEN=1 and review"


def test_every_kind_has_a_golden_case():
    kinds = {load_content(case)["kind"] for case in CASES}
    assert kinds == {
        "incident",
        "maintenance",
        "announcement",
        "confirmation",
        "receipt",
        "channel_notice",
    }


@pytest.mark.parametrize(("case", "lang", "tz"), RENDERS, ids=lambda v: str(v))
def test_email_matches_golden(case, lang, tz):
    email = render_email(load_content(case), lang, tz)
    stem = golden_stem(case, lang, tz)
    _check(GOLDEN / f"{stem}.txt", f"Subject: {email.subject}\n\n{email.text}")
    _check(GOLDEN / f"{stem}.html", email.html)


def test_no_stale_golden_files():
    expected = {f"{golden_stem(*r)}.{ext}" for r in RENDERS for ext in ("txt", "html")}
    present = {p.name for p in GOLDEN.iterdir() if p.is_file()}
    if UPDATE:
        for name in present - expected:
            (GOLDEN / name).unlink()
        return
    assert present == expected


# A template line ending in a block tag loses its newline (Jinja's trim_blocks), gluing the next
# word to a time: "04:00 UTCand is planned" (found in the in-progress maintenance mail). Every
# time abbreviation a golden file shows must end at a word boundary.
_GLUED = re.compile(r"\b(?:UTC|GMT|MESZ|MEZ|CEST|CET|EDT|EST|PDT|PST)(?=[^\W\d_])")


@pytest.mark.parametrize(("case", "lang", "tz"), RENDERS, ids=lambda v: str(v))
def test_no_word_is_glued_to_a_time(case, lang, tz):
    email = render_email(load_content(case), lang, tz)
    for part in (email.subject, email.text, email.html):
        assert _GLUED.findall(part) == [], f"{case} {lang} {tz}: {_GLUED.search(part)!r}"
