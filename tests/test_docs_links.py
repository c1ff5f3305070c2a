"""The repository's own documents point only at files it has (issue 13, item 6).

The README used to send readers to a DESIGN.md that only existed outside the repository. Every
relative link in README.md and docs/*.md must name a file or folder inside the repository (and
a `#section` of a Markdown file one of its headings), and a document named in the text, such
as `DESIGN.md`, must exist too.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_INLINE = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
_MENTION = re.compile(r"(?<![\w/.:-])((?:[\w.-]+/)*[\w-]+\.md)\b")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def links(text: str) -> list[str]:
    """The targets of inline and reference links outside fenced code blocks."""
    prose = _FENCE.sub("", text)
    return _INLINE.findall(prose) + _REFERENCE.findall(prose)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: Path) -> set[str]:
    text = _FENCE.sub("", markdown.read_text(encoding="utf-8"))
    return {slug(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)}


def problems_in(doc: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with the links and document names in `doc`, one line each."""
    text = doc.read_text(encoding="utf-8")
    found = []
    for target in links(text):
        if _SCHEME.match(target):
            continue  # http(s), mailto: not ours to check offline
        path_part, _, anchor = target.partition("#")
        resolved = (doc.parent / unquote(path_part)).resolve() if path_part else doc
        if not resolved.is_relative_to(root):
            found.append(f"{target}: outside the repository")
        elif not resolved.exists():
            found.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            found.append(f"{target}: no heading for #{anchor}")
    for name in _MENTION.findall(re.sub(r"\]\([^)]*\)", "]", text)):  # link targets: above
        if not ((doc.parent / name).exists() or (root / name).exists()):
            found.append(f"{name}: named in the text, not in the repository")
    return found


def test_the_architecture_document_is_in_the_repository_and_the_readme_links_it():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert (ROOT / "docs" / "ARCHITECTURE.md").is_file()
    assert "docs/ARCHITECTURE.md" in links(readme)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_into_the_repository(doc):
    assert problems_in(doc) == []


def test_the_checker_finds_dead_links_missing_sections_and_missing_documents(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "ARCHITECTURE.md").write_text("# Architecture\n\n## CLI contract\n")
    doc = tmp_path / "docs" / "probe.md"
    doc.write_text(
        "# Probe\n\nSee [the design](../DESIGN.md), [a part](ARCHITECTURE.md#no-such-part),\n"
        "[the contract](ARCHITECTURE.md#cli-contract), [here](#probe), [there](#nowhere),\n"
        "[away](../../elsewhere.txt), [web](https://example.com/x.md), the notes in NOTES.md\n"
        "and ARCHITECTURE.md.\n\n```\n[in code](nowhere.txt)\n```\n",
        encoding="utf-8",
    )
    assert problems_in(doc, tmp_path) == [
        "../DESIGN.md: no such file",
        "ARCHITECTURE.md#no-such-part: no heading for #no-such-part",
        "#nowhere: no heading for #nowhere",
        "../../elsewhere.txt: outside the repository",
        "NOTES.md: named in the text, not in the repository",
    ]
