"""Focused behaviour of the email renderer: times, languages, overrides, safety, structure."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from html import escape
from html.parser import HTMLParser

import pytest

from notifier.emails import labels, times
from notifier.emails.templates import env
from notifier.feed import parse_feed
from notifier.render import PLACEHOLDERS, Email, content_from_entry, render_email

from .test_render_golden import RENDERS, load_content

ENGLISH_NEWEST = "We have identified a faulty configuration change on an SMS gateway as the cause."
HOSTILE = (
    '<script>alert("x")</script><img src=x onerror=alert(1)>'
    '<a href="javascript:alert(2)">click me</a><style>body{display:none}</style>'
)
VOID = {"meta", "br", "img", "hr", "link", "input", "col", "area", "base", "wbr", "source"}


def incident(**changes) -> dict:
    content = load_content("incident_updated_june")
    content.pop("overrides")
    for key, value in changes.items():
        content[key] = value
    return content


def flat(text: str) -> str:
    """Text with wrapping undone, for phrases that may span lines."""
    return " ".join(text.split())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- times -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "lang", "zone", "expected"),
    [
        ("2023-06-27T16:30", "de", "Europe/Berlin", "27. Juni 2023, 18:30 MESZ"),
        ("2024-01-15T09:05", "de", "Europe/Berlin", "15. Januar 2024, 10:05 MEZ"),
        ("2023-06-27T16:30", "en", "UTC", "June 27, 2023, 16:30 UTC"),
        ("2023-06-27T16:30", "de", "UTC", "27. Juni 2023, 16:30 UTC"),
        ("2023-06-27T16:30", "en", "Europe/Berlin", "June 27, 2023, 18:30 CEST"),
        ("2024-01-15T09:05", "en", "Europe/Berlin", "January 15, 2024, 10:05 CET"),
        # English readers in a US zone read a 12-hour clock (issue 13); German ones never do.
        ("2023-06-27T16:30", "en", "America/Los_Angeles", "June 27, 2023, 9:30 AM PDT"),
        ("2024-01-15T09:05", "en", "America/Los_Angeles", "January 15, 2024, 1:05 AM PST"),
        ("2023-06-27T16:30", "de", "America/Los_Angeles", "27. Juni 2023, 09:30 PDT"),
        ("2024-01-15T09:05", "de", "America/Los_Angeles", "15. Januar 2024, 01:05 PST"),
        ("2023-06-27T16:30", "en", "Asia/Kathmandu", "June 27, 2023, 22:15 UTC+5:45"),
        ("2023-06-27T16:30", "en", "America/Sao_Paulo", "June 27, 2023, 13:30 UTC-3"),
    ],
)
def test_times_carry_the_readers_zone_abbreviation(when, lang, zone, expected):
    assert times.format_time(at(when), lang, zone) == expected


def test_same_day_window_is_compact_and_other_windows_are_spelled_out():
    same_day = times.format_window(
        at("2023-06-27T16:30"), at("2023-06-27T18:00"), "de", "Europe/Berlin"
    )
    two_days = times.format_window(at("2023-06-27T16:30"), at("2023-06-28T13:30"), "en", "UTC")
    # The night clocks go forward: the zone changes inside one day, so both ends say theirs.
    dst = times.format_window(at("2023-03-26T00:30"), at("2023-03-26T01:30"), "de", "Europe/Berlin")
    instant = times.format_window(at("2023-06-27T16:30"), at("2023-06-27T16:30"), "en", "UTC")
    assert (same_day, two_days, dst, instant) == (
        "27. Juni 2023, 18:30 – 20:00 MESZ",
        "June 27, 2023, 16:30 UTC – June 28, 2023, 13:30 UTC",
        "26. März 2023, 01:30 MEZ – 26. März 2023, 03:30 MESZ",
        "June 27, 2023, 16:30 UTC",
    )


def test_june_mail_in_berlin_says_mesz_and_january_mail_says_mez():
    june = render_email(load_content("incident_resolved_june"), "de", "Europe/Berlin")
    january = render_email(load_content("incident_resolved_january"), "de", "Europe/Berlin")
    assert "27. Juni 2023, 18:30 MESZ" in june.text and " MEZ" not in june.text
    assert "15. Januar 2024, 10:05 – 12:40 MEZ" in january.text and "MESZ" not in january.text
    assert "MESZ" in june.html and "MESZ" not in january.html


def test_english_mail_in_utc_and_in_los_angeles():
    content = load_content("incident_resolved_june")
    utc = render_email(content, "en", "UTC")
    la = render_email(content, "en", "America/Los_Angeles")
    assert "Start: June 27, 2023, 16:30 UTC" in utc.text
    assert "Start: June 27, 2023, 9:30 AM PDT" in la.text
    assert "All times are shown in the America/Los_Angeles time zone." in flat(la.text)


# --- language ----------------------------------------------------------------------------


class _LangText(HTMLParser):
    """Collects text outside any element marked lang="en" (German prose vs quoted English)."""

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, bool]] = []
        self.outside: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.stack.append((tag, dict(attrs).get("lang") == "en"))

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop()[0] != tag:
            pass

    def handle_data(self, data):
        if not any(english for _, english in self.stack):
            self.outside.append(data)


def test_german_mail_quotes_the_english_original_and_labels_it():
    email = render_email(incident(), "de", "Europe/Berlin")
    lines = email.text.splitlines()
    label = lines.index("Originaltext der Statusseite (Englisch):")
    assert lines[label + 2].startswith("> We have identified a faulty configuration")
    # Every line with English status-page words is a quote line, never German prose.
    for word in ("identified", "investigating", "queued"):
        assert all(line.startswith("> ") for line in lines if word in line), word
    parser = _LangText()
    parser.feed(email.html)
    outside = " ".join(parser.outside)
    assert "Originaltext der Statusseite (Englisch):" in outside
    assert "faulty configuration" not in outside and "still investigating" not in outside
    assert 'lang="en"' in email.html and '<html lang="de"' in email.html


def test_german_translation_from_ops_comes_first_and_the_original_stays():
    content = incident(overrides={"de": {"text": "Wir haben die Ursache gefunden."}})
    email = render_email(content, "de", "Europe/Berlin")
    translation = email.text.index("Wir haben die Ursache gefunden.")
    original = email.text.index("> " + ENGLISH_NEWEST[:40])
    assert translation < email.text.index("Originaltext der Statusseite (Englisch):") < original
    assert "Wir haben die Ursache gefunden." in email.html


def test_english_mail_has_no_german_and_vice_versa():
    english = render_email(load_content("incident_resolved_june"), "en", "UTC")
    german = render_email(load_content("incident_resolved_june"), "de", "Europe/Berlin")
    assert (
        "Hello," in english.text and "Hallo" not in english.text and "Behoben" not in english.text
    )
    assert "Hallo liebe/r Kund:in," in german.text and "\nQ: " not in german.text
    assert "\nF: Ist das Problem vollständig behoben?" in german.text
    assert "\nQ: Is it fully fixed?" in english.text


# --- overrides ---------------------------------------------------------------------------


def test_overrides_replace_title_intro_and_answers_and_add_questions():
    overrides = {
        "de": {
            "title": "Verzögerte Zustellung",
            "summary": "Kurz gesagt: SMS kommen verspätet an.\nWir sind dran.",
            "qa": [
                {"q": "Muss ich etwas tun?", "a": "Nein, gar nichts."},
                {"q": "Wird das berechnet?", "a": "Nein.\n\nVerzögerte SMS kosten nichts extra."},
            ],
        }
    }
    email = render_email(incident(overrides=overrides), "de", "Europe/Berlin")
    questions = re.findall(r"^F: (.+)$", email.text, re.M)
    assert email.subject == "[Ursache gefunden] SMS (EU): Verzögerte Zustellung"
    assert questions == [
        "Was ist passiert?",
        "Was ist betroffen?",
        "Muss ich etwas tun?",
        "Wann höre ich wieder von euch?",
        "Wird das berechnet?",
        "Wo kann ich den Verlauf verfolgen?",
    ]
    assert "Nein, gar nichts." in email.text and "Im Moment nicht." not in email.text
    assert "Kurz gesagt: SMS kommen verspätet an.\nWir sind dran." in email.text
    assert "<p>Nein.</p><p>Verzögerte SMS kosten nichts extra.</p>" in _strip_styles(email.html)
    assert "Kurz gesagt: SMS kommen verspätet an. Wir sind dran.</div>" in email.html
    # Overrides of one language never leak into the other.
    english = render_email(incident(overrides=overrides), "en", "UTC")
    assert "Verzögerte" not in english.text and "Delayed SMS delivery" in english.subject


# --- safety ------------------------------------------------------------------------------


def _hostile_variants() -> list[tuple[str, dict]]:
    base = incident()
    variants = []
    for name, path in [
        ("title", ("incident", "title")),
        ("component", ("incident", "components", 0, "name")),
        ("page name", ("page_name",)),
    ]:
        content = copy.deepcopy(base)
        target = content
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] += HOSTILE
        variants.append((name, content))
    content = copy.deepcopy(base)
    for update in content["updates"]:
        update["text"] += HOSTILE
    variants.append(("update texts", content))
    overrides = {"title": HOSTILE, "summary": HOSTILE, "text": HOSTILE}
    overrides["qa"] = [{"q": HOSTILE + "?", "a": HOSTILE}]
    variants.append(("overrides", dict(base, overrides={"de": overrides, "en": overrides})))
    announcement = load_content("announcement")
    for lang in ("de", "en"):
        block = announcement[lang]
        block["title"] += HOSTILE
        block["intro"] += HOSTILE
        block["bullets"].append(HOSTILE)
        block["qa"].append({"q": "Frage " + HOSTILE, "a": HOSTILE})
    announcement["products"].append(HOSTILE)
    variants.append(("announcement", announcement))
    return variants


@pytest.mark.parametrize(("where", "content"), _hostile_variants(), ids=lambda v: str(v)[:20])
@pytest.mark.parametrize("lang", ["de", "en"])
def test_hostile_markup_is_inert_in_both_parts(where, content, lang):
    email = render_email(content, lang, "Europe/Berlin")
    for part in (email.subject, email.text, email.html):
        lowered = part.lower()
        for bad in ("<script", "alert(", "onerror", "javascript:", "<img", "display:none"):
            assert bad not in lowered, (where, bad)
    for href in _hrefs(email.html):
        assert href.startswith("https://") or href in PLACEHOLDERS.values(), href
    assert _balanced(email.html) == []


def test_markup_like_text_is_escaped_not_interpreted():
    content = incident()
    content["updates"][0]["text"] = "Rates < 5% & latency > 2s for <unknown> clients"
    email = render_email(content, "en", "UTC")
    assert "> Rates < 5% & latency > 2s for clients" in email.text
    assert "Rates &lt; 5% &amp; latency &gt; 2s for clients" in email.html


def test_status_page_links_in_update_text_stay_usable():
    content = incident()
    content["updates"][0]["text"] = (
        'See <a href="https://status.sinch.com/x">details</a> and https://docs.sinch.com/a.'
    )
    email = render_email(content, "en", "UTC")
    assert "> See details (https://status.sinch.com/x) and https://docs.sinch.com/a." in email.text
    assert {"https://status.sinch.com/x", "https://docs.sinch.com/a"} <= set(_hrefs(email.html))
    assert 'rel="noopener noreferrer"' in email.html


@pytest.mark.parametrize(
    "title",
    [
        "Delayed\r\nBcc: victim@example.com",
        "Delayed\nSMS",
        "Delayed\u2028SMS\u0085delivery\x00",
        "Delayed\tSMS   delivery ",
    ],
)
def test_subject_is_a_single_line_whatever_the_title_holds(title):
    content = incident()
    content["incident"]["title"] = title
    for lang in ("de", "en"):
        subject = render_email(content, lang, "UTC").subject
        assert not re.search(r"[\r\n\x00-\x1f\u2028\u2029\u0085]", subject), repr(subject)
        assert "  " not in subject and subject == subject.strip()


def test_long_subjects_are_cut_to_200_characters_with_the_rest_counted():
    components = [{"id": str(i), "name": f"SMS Long Code, Region {i}"} for i in range(30)]
    content = incident()
    content["incident"].update(components=components, title="Delayed delivery " * 30)
    subject = render_email(content, "de", "Europe/Berlin").subject
    assert len(subject) <= 200 and subject.endswith("…")
    assert subject.startswith(
        "[Ursache gefunden] SMS Long Code, Region 0, SMS Long Code, Region 1 +28 weitere: "
    )


# --- links and placeholders --------------------------------------------------------------

NEEDS = {
    "incident_resolved_june": {"preferences_url", "unsubscribe_url"},
    "maintenance_scheduled": {"preferences_url", "unsubscribe_url"},
    "announcement": {"preferences_url", "unsubscribe_url"},
    "confirmation": {"confirm_url"},
    "receipt": {"undo_url", "preferences_url"},
}


@pytest.mark.parametrize("case", sorted(NEEDS))
@pytest.mark.parametrize("lang", ["de", "en"])
def test_every_kind_carries_the_links_it_needs_as_placeholders(case, lang):
    email = render_email(load_content(case), lang, "Europe/Berlin")
    wanted = {PLACEHOLDERS[name] for name in NEEDS[case]}
    hrefs = set(_hrefs(email.html))
    for placeholder in wanted:
        assert placeholder in hrefs, placeholder  # survived escaping and CSS inlining
        assert f"\n{placeholder}\n" in email.text  # on a line of its own: clients link it
    unwanted = set(PLACEHOLDERS.values()) - wanted
    assert not any(p in email.text or p in email.html for p in unwanted)


# --- HTML structure ----------------------------------------------------------------------


def _strip_styles(html: str) -> str:
    return re.sub(r' (style|class|rel)="[^"]*"', "", html)


def _hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"]*)"', html)


class _Structure(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.seen: list[str] = []
        self.classed_without_style: list[str] = []

    def handle_decl(self, decl):
        self.seen.append(decl.lower())

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.seen.append(tag)
        if "class" in attributes and "style" not in attributes:
            self.classed_without_style.append(f"{tag}.{attributes['class']}")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def _balanced(html: str) -> list[str]:
    parser = _Structure()
    parser.feed(html)
    parser.close()
    return parser.problems + [f"unclosed <{t}>" for t in parser.stack]


@pytest.mark.parametrize(("case", "lang", "tz"), RENDERS, ids=lambda v: str(v))
def test_html_is_a_complete_balanced_document_with_inlined_css(case, lang, tz):
    email = render_email(load_content(case), lang, tz)
    parser = _Structure()
    parser.feed(email.html)
    parser.close()
    assert parser.seen[:3] == ["doctype html", "html", "head"]
    assert {"title", "body", "h1"} <= set(parser.seen)
    assert parser.problems == [] and parser.stack == []
    assert email.html.startswith(f'<!DOCTYPE html><html lang="{lang}">')
    # Inlined: every styled element carries its style; only @media rules remain in <style>,
    # and (issue 16) the timeline's few classes, kept once instead of inlined per post.
    kept = {"timeline", "post", "pm", "new"}
    assert [c for c in parser.classed_without_style if c.split(".")[1] not in kept] == []
    style_blocks = re.findall(r"<style>(.*?)</style>", email.html, re.S)
    assert style_blocks[0].strip().startswith("@media")
    assert style_blocks[0].count("{") == style_blocks[0].count("}")
    timeline_rules = (
        "\n.timeline { font-size: 15px; }\n"
        ".post { margin: 0 0 12px 0; padding: 0 0 0 14px; border-left: 4px solid #e5e7eb; }\n"
        ".pm { color: #374151; font-size: 14px; }\n"
        ".new { padding: 1px 6px; background-color: #fff4d6; color: #5c3d00; font-size: 12px; "
        "font-weight: 700; border-radius: 3px; }\n"
        ".post a { color: #0a58ca; overflow-wrap: anywhere; }\n"
    )
    incident_kind = load_content(case)["kind"] in ("incident", "maintenance")
    assert style_blocks[1:] == ([timeline_rules] if incident_kind else [])
    assert 'class="preheader" style="display: none;' in email.html
    # Readable without images or anything fetched from elsewhere.
    for forbidden in ("<img", "<link", "src=", "url(", "<script"):
        assert forbidden not in email.html


@pytest.mark.parametrize(("case", "lang", "tz"), RENDERS, ids=lambda v: str(v))
def test_text_and_html_parts_carry_the_same_questions_and_facts(case, lang, tz):
    email = render_email(load_content(case), lang, tz)
    prefix = labels.WORDS[lang]["q"]
    questions = re.findall(rf"^{prefix} (.+)$", email.text, re.M)
    html_questions = re.findall(rf"<h3[^>]*>{prefix} (.+?)</h3>", email.html)
    assert [q.replace("&amp;", "&") for q in html_questions] == questions
    for fact in re.findall(r"^  • (.+)$", email.text, re.M):
        label, _, value = fact.partition(": ")
        assert (value or label) in email.html.replace("&amp;", "&")


@pytest.mark.parametrize("case", sorted({r[0] for r in RENDERS}))
def test_both_languages_answer_the_same_questions(case):
    content = load_content(case)
    german = render_email(content, "de", "Europe/Berlin").text
    english = render_email(content, "en", "UTC").text
    assert len(re.findall(r"^F: ", german, re.M)) == len(re.findall(r"^Q: ", english, re.M))


def test_copy_templates_offer_the_same_pieces_in_both_languages():
    values = {
        "status": "identified", "phase": "ongoing", "status_label": "", "title": "",
        "products": "", "product_list": "", "components": [], "page_name": "", "page_url": "",
        "link": "", "impact": None, "impact_key": None, "start": "", "end": "",
        "planned_end": "", "window": "", "new_updates": 1, "zone": "UTC",
    }  # fmt: skip
    for kind in ("common", "incident", "maintenance", "announcement", "confirmation", "receipt"):
        names = {}
        for lang in labels.LANGUAGES:
            module = env.get_template(f"{lang}/{kind}.jinja").make_module({"kind": kind, **values})
            names[lang] = {n for n in vars(module) if not n.startswith("_")}
        assert names["de"] == names["en"], kind


def test_words_exist_in_both_languages():
    for table in (labels.STATUS, labels.IMPACT, labels.WORDS):
        assert table["de"].keys() == table["en"].keys()


# --- kinds and phases --------------------------------------------------------------------


def test_ongoing_incident_says_it_is_open_and_new_posts_are_marked():
    # Readers who had an email about this incident before (issue 13: only they read this).
    email = render_email(incident(), "de", "Europe/Berlin", mailed_before=True)
    assert "  • Ende: noch offen" in email.text
    assert "Seit unserer letzten E-Mail gab es 2 neue Meldungen." in email.text
    assert "27. Juni 2023, 19:45 MESZ – Aktualisierung (neu)" in email.text
    assert "27. Juni 2023, 18:30 MESZ – Untersuchung läuft\n" in email.text


@pytest.mark.parametrize(
    ("status", "first_question", "special"),
    [
        ("scheduled", "Was ist geplant?", "Muss ich mich vorbereiten?"),
        ("in_progress", "Was passiert gerade?", "Muss ich etwas tun?"),
        ("verifying", "Was passiert gerade?", "Muss ich etwas tun?"),
        ("completed", "Was wurde gemacht?", "Läuft wieder alles wie gewohnt?"),
    ],
)
def test_maintenance_questions_follow_its_phase(status, first_question, special):
    content = load_content("maintenance_completed")
    content["status"] = status
    content["updates"][0]["status"] = status
    questions = re.findall(r"^F: (.+)$", render_email(content, "de", "Europe/Berlin").text, re.M)
    assert questions[0] == first_question and special in questions


def test_postmortem_explains_itself():
    content = load_content("incident_resolved_june")
    content["status"] = "postmortem"
    content["updates"].insert(0, {"status": "postmortem", "at": "2023-06-30T10:00:00Z",
                                  "text": "Root cause: a configuration push."})  # fmt: skip
    email = render_email(content, "en", "UTC")
    assert email.subject == "[Postmortem] SMS (EU): Delayed SMS delivery"
    assert re.findall(r"^Q: (.+)$", email.text, re.M)[0] == "What is a postmortem?"


def test_rejects_unknown_language_zone_and_kind():
    with pytest.raises(ValueError, match="language 'fr'"):
        render_email(incident(), "fr", "UTC")
    with pytest.raises(ValueError, match="time zone 'Mars/Olympus'"):
        render_email(incident(), "de", "Mars/Olympus")
    with pytest.raises(ValueError, match="kind 'weather'"):
        render_email({"kind": "weather"}, "de", "UTC")


def test_feed_content_without_updates_is_refused_rather_than_sent_half_empty():
    with pytest.raises(ValueError, match="incident content has no updates"):
        render_email(incident(updates=[]), "de", "UTC")


def test_an_update_without_text_gets_no_empty_quote():
    content = incident()
    content["updates"][0]["text"] = "  "
    email = render_email(content, "de", "Europe/Berlin")
    assert (
        "Originaltext der Statusseite (Englisch)" not in email.text.split("Mehr Informationen")[0]
    )
    assert "<blockquote" not in email.html


def test_email_is_a_frozen_value():
    email = render_email({"kind": "receipt"}, "en", "UTC")
    assert isinstance(email, Email)
    with pytest.raises(AttributeError):
        email.subject = "changed"


# --- content from a feed entry -----------------------------------------------------------

UPDATES_HTML = (
    "<p><small>Jun <var data-var='date'>27</var>, <var data-var='time'>17:10</var> UTC</small>"
    "<br><strong>Identified</strong> - Cause found.</p>"
    "<p><small>Jun <var data-var='date'>27</var>, <var data-var='time'>16:30</var> UTC</small>"
    "<br><strong>Investigating</strong> - Looking into it.</p>"
)
ATOM = f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xml:lang="en-US" xmlns="http://www.w3.org/2005/Atom">
  <id>tag:status.sinch.com,2005:/history</id>
  <link rel="alternate" type="text/html" href="https://status.sinch.com"/>
  <title>Sinch Status - Incident History</title>
  <updated>2023-06-27T17:10:00Z</updated>
  <entry>
    <id>tag:status.sinch.com,2005:Incident/1</id>
    <published>2023-06-27T17:10:00Z</published>
    <updated>2023-06-27T17:10:00Z</updated>
    <link rel="alternate" type="text/html" href="https://status.sinch.com/incidents/abc123xyz"/>
    <title>Delayed SMS delivery</title>
    <content type="html">{escape(UPDATES_HTML, quote=False)}</content>
  </entry>
</feed>
"""


def test_content_from_entry_is_a_json_snapshot_that_renders():
    entry = parse_feed(ATOM.encode()).entries[0]
    content = content_from_entry(
        entry, "Sinch", "https://status.sinch.com",
        components=[{"id": "c1", "name": "SMS (EU)", "status": "degraded"}], impact="major",
    )  # fmt: skip
    assert json.loads(json.dumps(content)) == content
    assert content == {
        "kind": "incident",
        "page_name": "Sinch",
        "page_url": "https://status.sinch.com",
        "incident": {
            "key": "abc123xyz",
            "title": "Delayed SMS delivery",
            "link": "https://status.sinch.com/incidents/abc123xyz",
            "impact": "major",
            "components": [{"id": "c1", "name": "SMS (EU)"}],
            "scheduled_start": None,
            "scheduled_end": None,
        },
        "status": "identified",
        "change": "new_update",
        "new_updates": 1,
        "updates": [
            {"status": "identified", "at": "2023-06-27T17:10:00Z", "text": "Cause found."},
            {"status": "investigating", "at": "2023-06-27T16:30:00Z", "text": "Looking into it."},
        ],
    }
    email = render_email(content, "de", "Europe/Berlin")
    assert email.subject == "[Ursache gefunden] SMS (EU): Delayed SMS delivery"
    assert "Ursache gefunden · gemeldet am 27. Juni 2023, 19:10 MESZ" in email.text


def test_content_from_a_real_maintenance_feed_keeps_the_window(shared_feed):
    entry = next(e for e in parse_feed(shared_feed).entries if e.key == "6w7lf30qkgqq")
    content = content_from_entry(entry, "GitHub", "https://www.githubstatus.com")
    assert (content["kind"], content["status"]) == ("maintenance", "scheduled")
    assert content["incident"]["scheduled_start"] == "2022-10-05T04:00:00Z"
    email = render_email(content, "en", "UTC")
    assert email.subject == (
        "[Scheduled] GitHub: GitHub Enterprise Importer Maintenance "
        "(October 5, 2022, 04:00 – 05:00 UTC)"
    )


@pytest.fixture
def shared_feed() -> bytes:
    from .conftest import shared_fixture

    return shared_fixture(
        "statuspage", "githubstatus_history_2022-09-30_maintenance-scheduled.atom"
    ).read_bytes()


def test_a_non_web_incident_link_never_becomes_a_link():
    import copy
    import json
    from pathlib import Path

    from notifier.render import render_email

    content = json.loads(
        (Path(__file__).parent / "golden" / "content" / "incident_new_june.json").read_text()
    )
    hostile = copy.deepcopy(content)
    hostile["incident"]["link"] = "javascript:alert(1)//x/incidents/abc"
    hostile["page_url"] = "data:text/html,hi"
    email = render_email(hostile, "en", "UTC")
    assert "javascript:" not in email.html and "data:text" not in email.html
    assert "javascript:" not in email.text
