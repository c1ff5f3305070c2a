"""German and English: complete catalogs, language choice, the remembered switch."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from notifier.i18n import compile_catalogs

ROOT = Path(__file__).resolve().parents[1]
CATALOGS = {
    lang: ROOT / "translations" / lang / "LC_MESSAGES" / "messages.po" for lang in ["de", "en"]
}
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def read_catalog(lang: str):
    with CATALOGS[lang].open("rb") as f:
        return read_po(f)


def source_messages() -> set[str]:
    """Every gettext string in the code and templates, extracted as pybabel would."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    keywords = {**DEFAULT_KEYWORDS, "_l": None}
    found = extract_from_dir(ROOT, method_map, options_map, keywords=keywords)
    return {message for _file, _line, message, _comments, _context in found}


@pytest.mark.parametrize("lang", ["de", "en"])
def test_catalog_has_no_untranslated_fuzzy_or_obsolete_entries(lang):
    catalog = read_catalog(lang)
    problems = []
    for message in catalog:
        if not message.id:
            continue
        if not message.string:
            problems.append(f"untranslated: {message.id!r}")
        elif message.fuzzy:
            problems.append(f"fuzzy: {message.id!r}")
        elif sorted(PLACEHOLDER.findall(message.id)) != sorted(PLACEHOLDER.findall(message.string)):
            problems.append(f"placeholders differ: {message.id!r}")
    assert problems == []
    assert not catalog.fuzzy
    assert list(catalog.obsolete) == []


@pytest.mark.parametrize("lang", ["de", "en"])
def test_every_message_in_code_and_templates_is_in_the_catalog(lang):
    catalog = read_catalog(lang)
    in_catalog = {m.id for m in catalog if m.id}
    assert source_messages() - in_catalog == set()


def test_german_speaks_to_the_reader_with_du():
    formal = re.compile(r"\b(Sie|Ihre?[mnrs]?|Ihnen)\b")
    assert [m.string for m in read_catalog("de") if m.id and formal.search(m.string)] == []


def test_accept_language_picks_german(client):
    html = client.get("/", headers={"Accept-Language": "fr-CH, de;q=0.8, en;q=0.5"}).text
    assert '<html lang="de">' in html
    assert "<h1>Sinch-Statusmeldungen per E-Mail</h1>" in html


def test_unknown_languages_fall_back_to_english(client):
    html = client.get("/", headers={"Accept-Language": "fr, ja"}).text
    assert '<html lang="en">' in html
    assert "<h1>Sinch status updates by email</h1>" in html


def test_language_switch_is_remembered_in_a_cookie(client):
    german = {"Accept-Language": "de"}
    page = client.get("/privacy", headers=german).text
    switch = re.search(r'<a href="(/language/en\?next=[^"]+)"', page).group(1)
    assert switch == "/language/en?next=/privacy"
    response = client.get(switch, headers=german)
    assert (response.status_code, response.headers["Location"]) == (303, "/privacy")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("lang=en;")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    for path in ("/", "/privacy", "/subscribe/check-inbox"):
        assert '<html lang="en">' in client.get(path, headers=german).text, path
    client.get("/language/de?next=/")
    assert '<html lang="de">' in client.get("/", headers={"Accept-Language": "en"}).text


@pytest.mark.parametrize(
    "target",
    ["//evil.example/", "https://evil.example/", "/\\evil.example", "evil", "/ok\r\nX: y", ""],
)
def test_language_switch_only_leads_back_to_this_site(client, target):
    response = client.get("/language/de", query_string={"next": target})
    assert (response.status_code, response.headers["Location"]) == (303, "/")


def test_unknown_language_code_is_404(client):
    assert client.get("/language/fr?next=/").status_code == 404


def test_catalogs_compile_when_missing_or_older_than_the_po(tmp_path):
    translations = tmp_path / "translations"
    shutil.copytree(ROOT / "translations", translations, ignore=shutil.ignore_patterns("*.mo"))
    written = compile_catalogs(translations)
    assert sorted(p.relative_to(translations).as_posix() for p in written) == [
        "de/LC_MESSAGES/messages.mo",
        "en/LC_MESSAGES/messages.mo",
    ]
    assert compile_catalogs(translations) == []  # up to date: nothing to do
    po = translations / "de" / "LC_MESSAGES" / "messages.po"
    mo = po.with_suffix(".mo")
    stat = mo.stat()
    os.utime(po, (stat.st_atime, stat.st_mtime + 10))
    assert compile_catalogs(translations) == [mo]
