"""Titles and texts with literal '<', '>' and '&' from a feed on their way into mails: escaped in
the HTML part, kept in the subject and the text part, never stripped (issue 10)."""

from __future__ import annotations

import html
import re

import pytest

from notifier.feed import parse_feed
from notifier.render import content_from_entry, render_email

from .feedcases import BRACKET_TITLES, BRACKETS, TITLES
from .feedgen import FORMATS


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_title_with_brackets_is_escaped_not_stripped_in_both_mail_parts(fmt):
    parsed = parse_feed(TITLES.body(fmt)).entries[0]
    content = content_from_entry(parsed, "Sinch", "https://status.sinch.com")
    email = render_email(content, "en", "UTC")
    assert email.subject == "[Investigating] Sinch: Errors on <POST /xms/v1/batches> in EU"
    assert "Sinch: Errors on <POST /xms/v1/batches> in EU" in email.text
    assert "> Calls to <POST /xms/v1/batches> fail with 500 & are retried." in email.text
    assert "<title>[Investigating] Sinch: Errors on &lt;POST /xms/v1/batches&gt; in EU</title>" in (
        email.html
    )
    assert re.findall(r"<h1[^>]*>(.*?)</h1>", email.html) == [
        "Sinch: Errors on &lt;POST /xms/v1/batches&gt; in EU"
    ]
    assert "Calls to &lt;POST /xms/v1/batches&gt; fail with 500 &amp; are retried." in email.html
    assert "<POST" not in email.html


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_arrow_and_ampersands_reach_the_german_mail_as_written(fmt):
    arrow, ampersand = parse_feed(TITLES.body(fmt)).entries[1:]
    for entry, subject in (
        (arrow, "[Wird beobachtet] Sinch: Sinch <-> Meta: delayed WhatsApp messages"),
        (ampersand, "[Behoben] Sinch: SMS & MMS: delays for AT&T customers"),
    ):
        content = content_from_entry(entry, "Sinch", "https://status.sinch.com")
        email = render_email(content, "de", "Europe/Berlin")
        assert email.subject == subject
        assert entry.updates[0].text in email.text


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("n", range(len(BRACKET_TITLES)))
def test_titles_that_look_like_html_tags_reach_the_mail_as_text(fmt, n):
    title = BRACKET_TITLES[n]
    parsed = parse_feed(BRACKETS.body(fmt)).entries[n]
    content = content_from_entry(parsed, "Sinch", "https://status.sinch.com")
    email = render_email(content, "en", "UTC")
    escaped = html.escape(title, quote=False)
    assert email.subject == f"[Investigating] Sinch: {title}"
    assert f"Sinch: {title}" in email.text
    assert f"> Calls to {title} fail." in email.text
    assert f"<title>[Investigating] Sinch: {escaped}</title>" in email.html
    assert re.findall(r"<h1[^>]*>(.*?)</h1>", email.html) == [f"Sinch: {escaped}"]
    assert f"Calls to {escaped} fail." in email.html
    assert title not in email.html
