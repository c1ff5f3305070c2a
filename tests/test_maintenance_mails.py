"""Maintenance mails about the window (issue 11): rescheduled, cancelled, reminder.

Whole subjects in both languages and zones, the previous and the new window in the reader's
zone, a running maintenance whose end moved, the reminder's offset in words (singular and
plural), the cancelled wording, no post marked new, content without updates, and the size
rules of tests/test_mail_size.py. The complete mails are the golden files
(tests/golden/maintenance_{rescheduled,cancelled,reminder}_*).
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta

import pytest

from notifier.emails import labels
from notifier.render import SharedEmail, incident_content, render_email

from .test_mail_size import LIMIT, LINK, OMITTED, UNSUBSCRIBE_WITHIN, _as_sent, _text
from .test_render import _balanced
from .test_render_golden import load_content

WINDOW_CASES = [
    "maintenance_rescheduled_june",
    "maintenance_rescheduled_dst",
    "maintenance_rescheduled_in_progress",
    "maintenance_cancelled_january",
    "maintenance_reminder_june",
    "maintenance_reminder_january",
]

SUBJECTS = {
    ("maintenance_rescheduled_june", "de", "Europe/Berlin"): "[Wartung verschoben] SMS (EU): "
    "SMS gateway maintenance in Frankfurt (12. Juni 2026, 04:00 – 06:00 MESZ)",
    ("maintenance_rescheduled_june", "de", "UTC"): "[Wartung verschoben] SMS (EU): "
    "SMS gateway maintenance in Frankfurt (12. Juni 2026, 02:00 – 04:00 UTC)",
    ("maintenance_rescheduled_june", "en", "UTC"): "[Maintenance rescheduled] SMS (EU): "
    "SMS gateway maintenance in Frankfurt (June 12, 2026, 02:00 – 04:00 UTC)",
    ("maintenance_rescheduled_june", "en", "Europe/Berlin"): "[Maintenance rescheduled] "
    "SMS (EU): SMS gateway maintenance in Frankfurt (June 12, 2026, 04:00 – 06:00 CEST)",
    # Past 120 characters with the whole title: the title gives way to the new window.
    ("maintenance_rescheduled_june", "en", "America/New_York"): "[Maintenance rescheduled] "
    "SMS (EU): SMS gateway maintenance… (June 11, 2026, 10:00 PM EDT – June 12, 2026, "
    "12:00 AM EDT)",
    ("maintenance_rescheduled_dst", "de", "Europe/Berlin"): "[Wartung verschoben] Voice, "
    "SIP Trunking: Voice platform upgrade (26. Oktober 2026, 03:00 – 06:00 MEZ)",
    ("maintenance_rescheduled_dst", "en", "Europe/Berlin"): "[Maintenance rescheduled] Voice, "
    "SIP Trunking: Voice platform upgrade (October 26, 2026, 03:00 – 06:00 CET)",
    # Too little room for a title beside this window: the existing rule, no window.
    ("maintenance_rescheduled_dst", "en", "America/New_York"): "[Maintenance rescheduled] "
    "Voice, SIP Trunking: Voice platform upgrade",
    ("maintenance_rescheduled_in_progress", "de", "Europe/Berlin"): "[Wartung verschoben] MMS: "
    "Message store migration (15. Januar 2027, 00:00 – 03:30 MEZ)",
    ("maintenance_rescheduled_in_progress", "en", "UTC"): "[Maintenance rescheduled] MMS: "
    "Message store migration (January 14, 2027, 23:00 UTC – January 15, 2027, 02:30 UTC)",
    ("maintenance_cancelled_january", "de", "Europe/Berlin"): "[Wartung abgesagt] "
    "Conversation API: Conversation API certificate rotation (20. Januar 2027, 04:00 – 06:00 MEZ)",
    ("maintenance_cancelled_january", "de", "UTC"): "[Wartung abgesagt] Conversation API: "
    "Conversation API certificate rotation (20. Januar 2027, 03:00 – 05:00 UTC)",
    ("maintenance_cancelled_january", "en", "UTC"): "[Maintenance cancelled] Conversation API: "
    "Conversation API certificate rotation (January 20, 2027, 03:00 – 05:00 UTC)",
    ("maintenance_cancelled_january", "en", "Europe/Berlin"): "[Maintenance cancelled] "
    "Conversation API: Conversation API certificate rotation (January 20, 2027, 04:00 – 06:00 "
    "CET)",
    ("maintenance_reminder_june", "de", "Europe/Berlin"): "[Erinnerung] SMS (EU): "
    "SMS gateway maintenance in Frankfurt (11. Juni 2026, 00:00 – 03:00 MESZ)",
    ("maintenance_reminder_june", "de", "UTC"): "[Erinnerung] SMS (EU): SMS gateway maintenance "
    "in Frankfurt (10. Juni 2026, 22:00 UTC – 11. Juni 2026, 01:00 UTC)",
    ("maintenance_reminder_june", "en", "UTC"): "[Reminder] SMS (EU): SMS gateway maintenance "
    "in Frankfurt (June 10, 2026, 22:00 UTC – June 11, 2026, 01:00 UTC)",
    ("maintenance_reminder_june", "en", "Europe/Berlin"): "[Reminder] SMS (EU): "
    "SMS gateway maintenance in Frankfurt (June 11, 2026, 00:00 – 03:00 CEST)",
    ("maintenance_reminder_january", "de", "Europe/Berlin"): "[Erinnerung] Numbers API: "
    "Numbers API database maintenance (19. Januar 2027, 06:00 – 07:30 MEZ)",
    ("maintenance_reminder_january", "en", "UTC"): "[Reminder] Numbers API: "
    "Numbers API database maintenance (January 19, 2027, 05:00 – 06:30 UTC)",
    ("maintenance_reminder_january", "en", "America/New_York"): "[Reminder] Numbers API: "
    "Numbers API database maintenance (January 19, 2027, 12:00 AM – 1:30 AM EST)",
}


def _section(text: str, heading: str) -> str:
    """The block under a `heading` / `-------` pair, up to the next blank-line-led heading."""
    start = text.index(f"{heading}\n{'-' * len(heading)}\n\n") + 2 * len(heading) + 3
    end = re.search(r"\n\n[^\n]+\n-+\n", text[start:])
    return text[start : start + end.start()] if end else text[start:]


def _answer(text: str, question: str) -> str:
    paragraphs = text.split("\n\n")
    index = paragraphs.index(question)
    return paragraphs[index + 1]


def _subheading(text: str) -> str:
    """The line(s) under the heading (a one-line heading), unwrapped."""
    return " ".join(text.split("\n\n")[1].split("\n")[1:])


def _paragraph_after(text: str, first_line: str) -> str:
    paragraphs = text.split("\n\n")
    return paragraphs[paragraphs.index(first_line) + 1]


@pytest.mark.parametrize(("case", "lang", "tz"), sorted(SUBJECTS), ids=str)
def test_subjects_say_what_changed_with_the_window_in_the_readers_zone(case, lang, tz):
    subject = SUBJECTS[(case, lang, tz)]
    assert render_email(load_content(case), lang, tz).subject == subject
    assert len(subject) <= 120
    # The shared rendering (issue 14) sends the same subject.
    shared = SharedEmail(load_content(case), lang).for_zone(tz)
    assert shared.substitutions.get(shared.email.subject, shared.email.subject) == subject


@pytest.mark.parametrize(
    ("lang", "tz", "expected"),
    [
        ("de", "Europe/Berlin", [
            "  • Status: Geplant",
            "  • Bisher geplant: 10. Juni 2026, 04:00 – 06:00 MESZ",
            "  • Neu: 12. Juni 2026, 04:00 – 06:00 MESZ",
            "  • Betroffen: SMS (EU)",
        ]),
        ("de", "UTC", [
            "  • Status: Geplant",
            "  • Bisher geplant: 10. Juni 2026, 02:00 – 04:00 UTC",
            "  • Neu: 12. Juni 2026, 02:00 – 04:00 UTC",
            "  • Betroffen: SMS (EU)",
        ]),
        ("en", "UTC", [
            "  • Status: Scheduled",
            "  • Previously: June 10, 2026, 02:00 – 04:00 UTC",
            "  • Now: June 12, 2026, 02:00 – 04:00 UTC",
            "  • Affected: SMS (EU)",
        ]),
        ("en", "America/New_York", [
            "  • Status: Scheduled",
            "  • Previously: June 9, 2026, 10:00 PM EDT – June 10, 2026, 12:00 AM EDT",
            "  • Now: June 11, 2026, 10:00 PM EDT – June 12, 2026, 12:00 AM EDT",
            "  • Affected: SMS (EU)",
        ]),
    ],
)  # fmt: skip
def test_rescheduled_shows_the_previous_and_the_new_window_in_the_readers_zone(lang, tz, expected):
    email = render_email(load_content("maintenance_rescheduled_june"), lang, tz)
    summary = _section(email.text, "Zusammengefasst" if lang == "de" else "In short")
    assert summary.split("\n") == expected
    for line in expected[1:3]:
        label, window = line.removeprefix("  • ").split(": ", 1)
        assert f"<strong>{label}:</strong> {window}" in email.html.replace("\xa0", " ")


def test_rescheduled_across_the_end_of_summer_time_shows_mesz_then_mez():
    text = render_email(load_content("maintenance_rescheduled_dst"), "de", "Europe/Berlin").text
    assert _answer(text, "F: Was hat sich geändert?") == (
        "Die Wartung „Voice platform upgrade“ bei Voice und SIP Trunking findet nicht\n"
        "mehr im Zeitraum 19. Oktober 2026, 03:00 – 06:00 MESZ statt, sondern im\n"
        "Zeitraum 26. Oktober 2026, 03:00 – 06:00 MEZ."
    )


@pytest.mark.parametrize(
    ("lang", "tz", "intro", "answer"),
    [
        (
            "de",
            "Europe/Berlin",
            "die laufende Wartung bei MMS dauert länger als geplant: Ihr geplantes Ende\n"
            "wurde verschoben. Hier siehst du, was das für dich bedeutet.",
            "Die Wartung „Message store migration“ bei MMS läuft seit dem 15. Januar\n"
            "2027, 00:00 MEZ. Ihr geplantes Ende wurde vom 15. Januar 2027, 02:00 MEZ auf\n"
            "den 15. Januar 2027, 03:30 MEZ verschoben.",
        ),
        (
            "en",
            "America/New_York",
            "The maintenance of MMS is taking longer than planned: its planned end has\n"
            "been extended. Here is what it means for you.",
            "The maintenance “Message store migration” on MMS has been running since\n"
            "January 14, 2027, 6:00 PM EST. Its planned end has moved from January 14,\n"
            "2027, 8:00 PM EST to January 14, 2027, 9:30 PM EST.",
        ),
    ],
)
def test_a_running_maintenance_whose_end_moved_says_it_was_extended(lang, tz, intro, answer):
    email = render_email(load_content("maintenance_rescheduled_in_progress"), lang, tz)
    greeting = "Hallo liebe/r Kund:in," if lang == "de" else "Hello,"
    assert _paragraph_after(email.text, greeting) == intro
    question = "F: Was hat sich geändert?" if lang == "de" else "Q: What has changed?"
    assert _answer(email.text, question) == answer
    # It is running: no "will you tell me when it starts", no "plan around the new window".
    assert ("Wann höre ich wieder von euch?" if lang == "de" else "Q: When will I hear") in (
        email.text
    )


@pytest.mark.parametrize(
    ("lang", "intro", "answer"),
    [
        (
            "de",
            "die laufende Wartung bei MMS soll früher enden als geplant: Ihr geplantes\n"
            "Ende wurde vorgezogen. Hier siehst du, was das für dich bedeutet.",
            "Die Wartung „Message store migration“ bei MMS läuft seit dem 15. Januar\n"
            "2027, 00:00 MEZ. Ihr geplantes Ende wurde vom 15. Januar 2027, 02:00 MEZ auf\n"
            "den 15. Januar 2027, 01:30 MEZ vorgezogen.",
        ),
        (
            "en",
            "The maintenance of MMS will end earlier than planned: its planned end has\n"
            "been brought forward. Here is what it means for you.",
            "The maintenance “Message store migration” on MMS has been running since\n"
            "January 15, 2027, 00:00 CET. Its planned end has been brought forward from\n"
            "January 15, 2027, 02:00 CET to January 15, 2027, 01:30 CET.",
        ),
    ],
)
def test_a_running_maintenance_whose_end_moved_earlier_says_so(lang, intro, answer):
    content = load_content("maintenance_rescheduled_in_progress")
    content["incident"]["scheduled_end"] = "2027-01-15T00:30:00Z"
    email = render_email(content, lang, "Europe/Berlin")
    greeting = "Hallo liebe/r Kund:in," if lang == "de" else "Hello,"
    assert _paragraph_after(email.text, greeting) == intro
    question = "F: Was hat sich geändert?" if lang == "de" else "Q: What has changed?"
    assert _answer(email.text, question) == answer


@pytest.mark.parametrize(
    ("minutes", "de", "en"),
    [
        (60, "1 Stunde", "1 hour"),
        (1440, "24 Stunden", "24 hours"),
        (90, "90 Minuten", "90 minutes"),
        (2880, "2 Tagen", "2 days"),
        (1, "1 Minute", "1 minute"),
        (120, "2 Stunden", "2 hours"),
        (1500, "25 Stunden", "25 hours"),
        (10080, "7 Tagen", "7 days"),
    ],
)
def test_the_reminder_offset_is_pluralised_in_both_languages(minutes, de, en):
    assert labels.offset_label("de", minutes) == de
    assert labels.offset_label("en", minutes) == en
    content = load_content("maintenance_reminder_june")
    content["reminder"] = {"offset_minutes": minutes}
    german = render_email(content, "de", "Europe/Berlin")
    english = render_email(content, "en", "UTC")
    # The headline, and the absolute start beside it: a reminder may arrive late.
    assert _subheading(german.text) == (
        f"Erinnerung: Wartung beginnt in {de} · 11. Juni 2026, 00:00 – 03:00 MESZ"
    )
    assert _paragraph_after(german.text, "Hallo liebe/r Kund:in,").replace("\n", " ") == (
        f"zur Erinnerung: Die geplante Wartung bei SMS (EU) beginnt in {de}, am 11. Juni 2026 "
        "um 00:00 MESZ. Hier findest du noch einmal alles, was du dafür wissen musst."
    )
    assert _subheading(english.text) == (
        f"Reminder: maintenance starts in {en} · June 10, 2026, 22:00 UTC – June 11, 2026, "
        "01:00 UTC"
    )
    assert _paragraph_after(english.text, "Hello,").replace("\n", " ") == (
        f"A reminder: the scheduled maintenance of SMS (EU) starts in {en}, on June 10, 2026, "
        "at 22:00 UTC. Here is everything you need to know once more."
    )
    assert f"Reminder: maintenance starts in {en}" in english.html
    assert f"Maintenance of SMS (EU) starts in {en}: June 10, 2026" in english.html  # preheader


def test_a_reminder_without_an_offset_says_soon():
    content = load_content("maintenance_reminder_january")
    del content["reminder"]
    assert _subheading(render_email(content, "de", "Europe/Berlin").text) == (
        "Erinnerung: Wartung beginnt bald · 19. Januar 2027, 06:00 – 07:30 MEZ"
    )
    assert _subheading(render_email(content, "en", "UTC").text) == (
        "Reminder: maintenance starts soon · January 19, 2027, 05:00 – 06:30 UTC"
    )


@pytest.mark.parametrize(
    ("lang", "tz", "expected"),
    [
        (
            "de",
            "Europe/Berlin",
            {
                "intro": "die geplante Wartung bei Conversation API findet nicht wie angekündigt\n"
                "statt: Sie wurde abgesagt. Du musst nichts tun.",
                "summary": "  • Status: Abgesagt\n"
                "  • Abgesagter Zeitraum: 20. Januar 2027, 04:00 – 06:00 MEZ\n"
                "  • Betroffen: Conversation API",
                "F: Findet die Wartung noch statt?": "Nein, nicht wie geplant. Die Wartung "
                "„Conversation API certificate rotation“\nbei Conversation API war für den "
                "Zeitraum 20. Januar 2027, 04:00 – 06:00 MEZ\nangekündigt. Sie wurde abgesagt "
                "und findet in diesem Zeitraum nicht statt.",
                "F: Muss ich etwas tun?": "Nein. Falls du Vorgänge wegen der Wartung verschoben "
                "hast, kannst du sie\nwieder wie gewohnt planen.",
                "F: Was ist mit meinem Kalendereintrag?": "Der Kalendereintrag im Anhang dieser "
                "E-Mail (maintenance.ics) sagt den\nTermin ab. Hast du die Wartung in deinen "
                "Kalender übernommen, öffne den\nAnhang: Dein Kalender markiert den Termin dann "
                "als abgesagt.",
            },
        ),
        (
            "en",
            "UTC",
            {
                "intro": "The scheduled maintenance of Conversation API will not take place as\n"
                "announced: it has been cancelled. There is nothing you need to do.",
                "summary": "  • Status: Cancelled\n"
                "  • Cancelled window: January 20, 2027, 03:00 – 05:00 UTC\n"
                "  • Affected: Conversation API",
                "Q: Will the maintenance still take place?": "Not as planned. The maintenance "
                "“Conversation API certificate rotation” on\nConversation API was announced for "
                "January 20, 2027, 03:00 – 05:00 UTC. It\nhas been cancelled and will not take "
                "place in this window.",
                "Q: Do I need to do anything?": "No. If you moved work out of the way of the "
                "maintenance, you can plan it as\nusual again.",
                "Q: What about my calendar entry?": "The calendar entry attached to this email "
                "(maintenance.ics) cancels the\nevent. If you added the maintenance to your "
                "calendar, open the attachment:\nyour calendar then marks the event as "
                "cancelled.",
            },
        ),
    ],
)
def test_cancelled_says_it_will_not_take_place_and_nothing_is_to_do(lang, tz, expected):
    text = render_email(load_content("maintenance_cancelled_january"), lang, tz).text
    expected = dict(expected)
    greeting = "Hallo liebe/r Kund:in," if lang == "de" else "Hello,"
    assert _paragraph_after(text, greeting) == expected.pop("intro")
    summary = _section(text, "Zusammengefasst" if lang == "de" else "In short")
    assert summary == expected.pop("summary")
    for question, answer in expected.items():
        assert _answer(text, question) == answer
    questions = [p for p in text.split("\n\n") if p.startswith(("F: ", "Q: "))]
    assert questions == (
        [
            "F: Findet die Wartung noch statt?",
            "F: Muss ich etwas tun?",
            "F: Was ist mit meinem Kalendereintrag?",
            "F: Höre ich noch einmal von euch?",
            "F: Wo finde ich weitere Informationen?",
        ]
        if lang == "de"
        else [
            "Q: Will the maintenance still take place?",
            "Q: Do I need to do anything?",
            "Q: What about my calendar entry?",
            "Q: Will I hear from you again?",
            "Q: Where can I find more information?",
        ]
    )


def _marked_new(content: dict) -> dict:
    """`content` as a careless caller might store it: posts marked new, a count of new ones."""
    content = copy.deepcopy(content)
    content["new_updates"] = 3
    for update in content["updates"]:
        update["new"] = True
    return content


@pytest.mark.parametrize("marked", [False, True], ids=["as_contracted", "marked_new"])
@pytest.mark.parametrize(("lang", "tz"), [("de", "Europe/Berlin"), ("en", "UTC")])
@pytest.mark.parametrize("case", WINDOW_CASES)
def test_no_post_is_marked_new_in_a_mail_about_the_window(case, lang, tz, marked):
    content = load_content(case)
    if marked:
        content = _marked_new(content)
    email = render_email(content, lang, tz)
    new = "neu" if lang == "de" else "new"
    assert f"({new})" not in email.text
    assert 'class="new"' not in email.html
    assert "Seit unserer letzten E-Mail" not in email.text
    assert "since our last email" not in email.text
    # Every post is still shown: the newest quoted, the others in the timeline.
    for update in content["updates"]:
        words = " ".join(w for w in email.text.split() if w != ">")
        assert update["text"].split(". ")[0] in words
    if marked:  # the marks change nothing
        assert email == render_email(load_content(case), lang, tz)


@pytest.mark.parametrize(("lang", "tz"), [("de", "Europe/Berlin"), ("en", "UTC")])
@pytest.mark.parametrize("case", WINDOW_CASES)
def test_a_window_change_without_any_post_still_renders(case, lang, tz):
    content = load_content(case)
    content["updates"] = []
    email = render_email(content, lang, tz)
    for word in ("Aktueller Stand", "Latest update", "Bisheriger Verlauf", "Earlier updates"):
        assert word not in email.text
    assert email.subject == render_email(load_content(case), lang, tz).subject
    shared = SharedEmail(content, lang).for_zone(tz)
    assert shared.email.text.count("\n") > 20


def test_new_incident_content_without_updates_is_still_refused():
    content = load_content("maintenance_scheduled")
    content["updates"] = []
    with pytest.raises(ValueError, match="maintenance content has no updates"):
        render_email(content, "en", "UTC")


def test_the_calendar_question_needs_a_window():
    content = load_content("maintenance_reminder_june")
    content["incident"]["scheduled_end"] = None
    text = render_email(content, "en", "UTC").text
    assert "maintenance.ics" not in text
    assert "Q: Can I add the maintenance to my calendar?" not in text


def _long_maintenance(count: int, change: str, **extra) -> dict:
    """A maintenance with `count` long posts (index 0 the newest), none new."""
    t0 = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
    updates = [
        ("scheduled", t0 + timedelta(minutes=10 * (count - index)), _text(index, 1800), False)
        for index in range(count)
    ]
    content = incident_content(
        kind="maintenance",
        page_name="Sinch",
        page_url="https://status.sinch.com",
        key="k1p9d2xq7v3m",
        title="Verlegung des Rechenzentrums / Data centre move",
        link=LINK,
        impact="maintenance",
        components=[{"id": "sms", "name": "SMS"}, {"id": "mms", "name": "MMS"}],
        scheduled_start=datetime(2026, 12, 1, 2, 0, tzinfo=UTC),
        scheduled_end=datetime(2026, 12, 1, 6, 0, tzinfo=UTC),
        status="cancelled" if change == "cancelled" else "scheduled",
        change=change,
        new_updates=0,
        updates=updates,
    )
    return {**content, **extra}


SIZE_CHANGES = {
    "rescheduled": {"previous_window": {"start": "2026-11-20T02:00:00Z", "end": None}},
    "cancelled": {},
    "reminder": {"reminder": {"offset_minutes": 1440}},
}


@pytest.mark.parametrize("count", [1, 3, 41, 200])
@pytest.mark.parametrize("change", sorted(SIZE_CHANGES))
@pytest.mark.parametrize(("lang", "tz"), [("de", "Europe/Berlin"), ("en", "America/St_Johns")])
def test_long_maintenance_stays_under_the_clip_with_the_links_up_top(change, count, lang, tz):
    content = _long_maintenance(count, change, **SIZE_CHANGES[change])
    text, html, links = _as_sent(content, lang, tz)
    data = html.encode("utf-8")
    assert len(data) < LIMIT and len(text.encode("utf-8")) < LIMIT
    assert _balanced(html) == []
    assert 0 <= data.find(links["unsubscribe_url"].encode()) < UNSUBSCRIBE_WITHIN
    assert data.rfind(links["unsubscribe_url"].encode()) > len(data) - 2_000
    shown = {int(i) for i in re.findall(r"\[U(\d{3})\]", html)}
    assert shown == {int(i) for i in re.findall(r"\[U(\d{3})\]", text)}
    assert 0 in shown  # the newest post leads
    pattern, _ = OMITTED[lang]
    omitted = [int(n) for n in re.findall(pattern, text)]
    assert omitted == ([count - len(shown)] if count > len(shown) else [])
    assert 'class="new"' not in html


@pytest.mark.parametrize(
    ("previous", "de", "en"),
    [
        (
            {"start": None, "end": "2026-06-10T04:00:00Z"},
            "bis 10. Juni 2026, 06:00 MESZ",
            "until June 10, 2026, 04:00 UTC",
        ),
        ({"start": "2026-06-10T02:00:00Z", "end": None}, "10. Juni 2026, 04:00 MESZ",
         "June 10, 2026, 02:00 UTC"),
        ({"start": None, "end": None}, "–", "–"),
        ("not a window", "–", "–"),
    ],
)  # fmt: skip
def test_a_previous_window_with_a_missing_end_or_start_still_reads(previous, de, en):
    content = load_content("maintenance_rescheduled_june")
    content["previous_window"] = previous
    german = render_email(content, "de", "Europe/Berlin").text
    english = render_email(content, "en", "UTC").text
    assert f"  • Bisher geplant: {de}\n  • Neu: 12. Juni 2026, 04:00 – 06:00 MESZ" in german
    assert f"  • Previously: {en}\n  • Now: June 12, 2026, 02:00 – 04:00 UTC" in english
    if de == "–":  # no previous window: the answer says only where it is now
        assert _answer(english, "Q: What has changed?") == (
            "The maintenance “SMS gateway maintenance in Frankfurt” on SMS (EU) is now\n"
            "scheduled for June 12, 2026, 02:00 – 04:00 UTC."
        )


def test_a_malformed_reminder_reads_as_soon():
    content = load_content("maintenance_reminder_june")
    content["reminder"] = ["1440"]
    assert _subheading(render_email(content, "en", "UTC").text).startswith(
        "Reminder: maintenance starts soon · "
    )
    content["reminder"] = {"offset_minutes": "ninety"}
    assert _subheading(render_email(content, "de", "UTC").text).startswith(
        "Erinnerung: Wartung beginnt bald · "
    )
