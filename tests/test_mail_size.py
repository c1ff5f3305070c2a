"""Mails stay under Gmail's clip (issue 16, item 8).

Gmail clips an HTML part past ~102 KB and hides the rest, the footer's preferences and
unsubscribe links included, behind "[Message clipped]". Generated incidents of 1 to 200 updates
with long (partly multi-byte German) texts, in both languages, rendered by render_email (what
dispatch sends) and put through the SendGrid request body and SendGrid's per-recipient
substitutions: the HTML part as the recipient gets it stays under 90 KB, the unsubscribe link
sits in its first 20 KB, earlier updates left out are linked exactly when there are any, and no
new update (nor the newest one) is ever left out.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from notifier.delivery.mailer import (
    Message,
    Recipient,
    SendGridBackend,
    apply_substitutions,
    build_request_body,
)
from notifier.render import PLACEHOLDERS, SharedEmail, incident_content, render_email
from notifier.settings import Settings
from notifier.tokens import recipient_links

from .test_render import _balanced

LIMIT = 90_000
UNSUBSCRIBE_WITHIN = 20_000
LINK = "https://status.sinch.com/incidents/k1p9d2xq7v3m"
T0 = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
SETTINGS = Settings(
    app_env="test",
    secret_key="test-secret-key-that-is-long-enough-for-tokens",
    database_url="sqlite:///unused.db",
    public_base_url="https://status-notifications.sinch-customer-services.example.com",
)
OMITTED = {
    "en": (r"(\d+) earlier updates? on the status page", "1 earlier update on the status page"),
    "de": (
        r"(\d+) frühere Meldung(?:en)? auf der Statusseite",
        "1 frühere Meldung auf der Statusseite",
    ),
}
ENGLISH = (
    "Messages to carriers in the EU region are delayed by up to 40 minutes; we rerouted part of "
    "the traffic through https://status.sinch.com/api/v2/reroute?region=eu&window=45m and keep "
    "watching queue depths, delivery receipts and retries on every affected route. "
)
# Multi-byte text (ä, ö, ü, ß, „“, –, €) costs two or three bytes a character.
GERMAN = (
    "Größere Verzögerungen bei Zustellberichten für Empfänger in Österreich, Dänemark und "
    "Südtirol – betroffen sind „Übermittlungsbestätigungen“ über 1.000 € Volumen; wir prüfen "
    "die Warteschlangen gemäß Störungsplan und übernehmen Nachrichten später automatisch. "
)
POSTMORTEM = ("Root cause analysis. " + ENGLISH + GERMAN) * 120  # ~40,000 characters


def _text(index: int, length: int) -> str:
    """A post's text: its marker first (it survives any shortening), then `length` chars."""
    body = ((GERMAN + ENGLISH) * (length // 300 + 1))[:length]
    return f"[U{index:03d}] {body}"


def _content(count: int, new: set[int], *, change: str = "new_update") -> dict:
    """An incident with `count` updates; index 0 is the newest by display time (a postmortem of
    ~40,000 characters), `new` the indexes that triggered the notification."""
    updates = []
    for index in range(count):
        status = "postmortem" if index == 0 and count > 1 else "identified"
        text = POSTMORTEM if status == "postmortem" else _text(index, 900 + (index * 37) % 1400)
        if status == "postmortem":
            text = f"[U000] {text}"
        at = T0 + timedelta(minutes=10 * (count - index))
        updates.append((status, at, text, index in new))
    return incident_content(
        kind="incident",
        page_name="Sinch",
        page_url="https://status.sinch.com",
        key="k1p9d2xq7v3m",
        title="Verzögerte SMS-Zustellung in der EU / Delayed SMS delivery in the EU",
        link=LINK,
        impact="major",
        components=[{"id": "sms", "name": "SMS"}, {"id": "mms", "name": "MMS"}],
        scheduled_start=None,
        scheduled_end=None,
        status=updates[min(new)][0],
        change=change,
        new_updates=len(new),
        updates=updates,
    )


def _as_sent(content: dict, lang: str, tz: str) -> tuple[str, str, dict[str, str]]:
    """(text part, HTML part, links) as one recipient gets them: what dispatch builds
    (SharedEmail for the reader's zone -> mailer.Message -> the Mail Send body, issue 14) with
    SendGrid's substitutions (the links' and the zone's), checked against render_email."""
    mail = SharedEmail(content, lang).for_zone(tz)
    email = mail.email
    links = recipient_links(SETTINGS, 4_294_967, "n0nce-with-some-length")
    substitutions = {PLACEHOLDERS[k]: v for k, v in links.items() if k in PLACEHOLDERS}
    substitutions.update(mail.substitutions)
    message = Message(1, "incident", "Sinch Status <status@sinch.example>", email.subject,
                      email.text, email.html, {"List-Id": "<status.sinch.example>"})  # fmt: skip
    recipient = Recipient(1, "anna@example.de", substitutions, {})
    body = build_request_body(message, [recipient])
    subs = body["personalizations"][0]["substitutions"]
    text, html = (apply_substitutions(part["value"], subs) for part in body["content"])
    direct = render_email(content, lang, tz)
    assert [text, html] == [apply_substitutions(p, subs) for p in (direct.text, direct.html)]
    return text, html, links


SIZES = [*range(1, 13), 20, 39, 40, 41, 42, 60, 90, 120, 150, 199, 200]
SCENARIOS = {
    "newest": lambda n: {0},
    "three_newest": lambda n: set(range(min(3, n))),
    "backdated": lambda n: {n // 2},  # a post shown between older ones, but new
    "new_incident": lambda n: set(range(n)),  # every post new at once
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("count", SIZES)
@pytest.mark.parametrize(
    ("lang", "tz"), [("de", "Europe/Berlin"), ("en", "UTC"), ("en", "America/St_Johns")]
)
def test_long_incidents_stay_under_the_clip_with_the_links_up_top(scenario, count, lang, tz):
    new = SCENARIOS[scenario](count)
    change = "new_incident" if scenario == "new_incident" else "new_update"
    text, html, links = _as_sent(_content(count, new, change=change), lang, tz)
    data = html.encode("utf-8")

    assert len(data) < LIMIT
    assert len(text.encode("utf-8")) < LIMIT
    assert _balanced(html) == []  # cut texts never leave a tag open
    assert 0 <= data.find(links["unsubscribe_url"].encode()) < UNSUBSCRIBE_WITHIN
    assert 0 <= data.find(links["preferences_url"].encode()) < UNSUBSCRIBE_WITHIN
    # The footer keeps its links too.
    assert data.rfind(links["unsubscribe_url"].encode()) > len(data) - 2_000

    shown_html = {int(i) for i in re.findall(r"\[U(\d{3})\]", html)}
    shown_text = {int(i) for i in re.findall(r"\[U(\d{3})\]", text)}
    assert shown_html == shown_text
    assert new | {0} <= shown_html  # nothing new, nor the newest post, is left out
    omitted = count - len(shown_html)
    pattern, one = OMITTED[lang]
    counts_html = [int(n) for n in re.findall(pattern, html)]
    counts_text = [int(n) for n in re.findall(pattern, text)]
    if omitted:
        assert counts_html == counts_text == [omitted]
        label = one if omitted == 1 else re.search(pattern, html).group(0)
        assert f'<a href="{LINK}"' in html.split(label)[0].rsplit("<p", 1)[1]
        assert f"{label}:\n{LINK}\n" in text
        # Left out are the oldest: every post newer than the last one shown is there.
        earlier = [i for i in range(count) if i not in new]
        assert [i for i in earlier if i in shown_html] == earlier[: len(earlier) - omitted]
    else:
        assert counts_html == counts_text == []


@pytest.mark.parametrize(("lang", "tz"), [("de", "Europe/Berlin"), ("en", "UTC")])
def test_new_updates_lead_in_the_order_they_carry_their_mark(lang, tz):
    """Three new posts, one backdated below an older one: the newest new one is quoted, the
    other two open the timeline marked new, then the older posts newest first."""
    content = _content(6, {1, 2, 4})
    email = render_email(content, lang, tz)
    order = [int(i) for i in re.findall(r"\[U(\d{3})\]", email.text)]
    assert order == [1, 2, 4, 0, 3, 5]
    new_label = "neu" if lang == "de" else "new"
    marks = re.findall(r"\[U(\d{3})\]|\((" + new_label + r")\)", email.text)
    assert [m[1] or int(m[0]) for m in marks] == [new_label, 1, new_label, 2, new_label, 4, 0, 3, 5]
    assert email.html.count(f'<span class="new">{new_label}</span>') == 3


def test_content_stored_before_the_marks_falls_back_to_the_newest(lang="en"):
    """A notification stored before issue 16 has no `new` marks: its newest `new_updates`
    posts (by display time) are the new ones, as they always were."""
    content = _content(5, {0, 1})
    for update in content["updates"]:
        update.pop("new", None)
    email = render_email(content, lang, "UTC")
    order = [int(i) for i in re.findall(r"\[U(\d{3})\]", email.text)]
    assert order == [0, 1, 2, 3, 4]
    assert email.html.count('<span class="new">new</span>') == 2


@pytest.mark.parametrize(("lang", "tz"), [("de", "Europe/Berlin"), ("en", "UTC")])
def test_the_longest_mail_goes_through_sendgrid_under_the_clip(sendgrid, lang, tz):
    """The 200-post incident through the real sendgrid library to the local fake SendGrid."""
    content = _content(200, {0, 1, 2})
    email = render_email(content, lang, tz)
    links = recipient_links(SETTINGS, 4_294_967, "n0nce-with-some-length")
    substitutions = {PLACEHOLDERS[k]: v for k, v in links.items() if k in PLACEHOLDERS}
    backend = SendGridBackend("SG.test-key", sendgrid.base_url, 2.0)
    message = Message(1, "incident", "Sinch Status <status@sinch.example>", email.subject,
                      email.text, email.html, {"List-Id": "<status.sinch.example>"})  # fmt: skip
    result = backend.send(message, [Recipient(1, "anna@example.de", substitutions, {})])
    assert result.outcome == "accepted"
    [request] = sendgrid.requests
    subs = request.body["personalizations"][0]["substitutions"]
    html = apply_substitutions(request.body["content"][1]["value"], subs).encode("utf-8")
    assert len(html) < LIMIT
    assert 0 <= html.find(links["unsubscribe_url"].encode()) < UNSUBSCRIBE_WITHIN
