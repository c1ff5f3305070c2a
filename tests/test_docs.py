"""Every environment variable the settings read is documented in the README and app.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SET_BY_PLATFORM = {"DYNO", "PORT"}  # Heroku sets these itself


def variables_read() -> set[str]:
    source = (ROOT / "notifier" / "settings.py").read_text()
    names = set(
        re.findall(
            r'(?:env\.get|_int|_float|_flag|_rate_limit)\(\s*(?:env,\s*)?"([A-Z_]+)"', source
        )
    )
    assert len(names) > 20, names  # the pattern still matches how settings.py reads them
    return names


def test_the_readme_table_lists_every_variable():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", readme, re.M))
    assert variables_read() - SET_BY_PLATFORM - documented == set()


def test_app_json_declares_every_variable():
    declared = set(json.loads((ROOT / "app.json").read_text())["env"])
    assert variables_read() - SET_BY_PLATFORM - declared == set()
