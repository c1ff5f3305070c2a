"""No regular expression in the product ends in `$`: `$` also matches before a final newline,
so a validator anchored with it takes "a@example.com\n" for a plain address (it did:
notifier/delivery/mailheaders.py, tests/test_header_injection.py). `\\Z` (or fullmatch) is the
end of the string. This walks every pattern literal handed to the `re` module in notifier/,
so the next one cannot slip in."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "notifier"
RE_FUNCTIONS = {"compile", "match", "search", "fullmatch", "sub", "subn", "split", "findall"}


def _pattern_literals() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "re"
                and node.func.attr in RE_FUNCTIONS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                where = str(path.relative_to(PACKAGE.parent))
                found.append((where, node.lineno, node.args[0].value))
    return found


PATTERNS = _pattern_literals()


def _ends_with_dollar(pattern: str) -> bool:
    """True when the pattern (or one of its top-level alternatives) ends in an unescaped `$`."""
    for end in re.finditer(r"\$", pattern):
        before = pattern[: end.start()]
        escaped = (len(before) - len(before.rstrip("\\"))) % 2 == 1
        rest = pattern[end.end() :]
        if not escaped and (rest == "" or rest.startswith(("|", ")"))):
            return True
    return False


def test_the_walk_finds_the_products_patterns():
    # The walk itself must not silently find nothing (a renamed import, a moved package).
    assert len(PATTERNS) > 30
    assert any(where.endswith("mailheaders.py") for where, _, _ in PATTERNS)


@pytest.mark.parametrize("where, line, pattern", PATTERNS, ids=lambda v: str(v)[:40])
def test_no_pattern_ends_in_a_dollar(where, line, pattern):
    assert not _ends_with_dollar(pattern), f"{where}:{line}: use \\Z, not $: {pattern!r}"


def test_the_check_sees_a_dollar_at_every_end():
    assert _ends_with_dollar(r"^a+$")
    assert _ends_with_dollar(r"(a$|b)")
    assert _ends_with_dollar(r"a$|b")
    assert not _ends_with_dollar(r"^a+\Z")
    assert not _ends_with_dollar(r"cost \$")
    assert not _ends_with_dollar(r"[$]")
