"""Mails lead with what triggered them (issue 16, item 6).

Statuspage lets an update's display time be set earlier than its posting. Detection finds the
one new update; the mail must quote that one first and mark it "new", not the newer-looking post
subscribers already had. Replayed through the real path: feed bytes over HTTP -> poll ->
notification -> dispatch -> fake SendGrid. The whole text parts are written out here; the whole
HTML parts are golden files (tests/golden/lead/; UPDATE_GOLDEN=1 rewrites them).
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest

from notifier import jobs
from notifier.admin.previews import render_preview
from notifier.render import render_email

from .helpers import add_subscriber, atom, poll_and_mail_through_fakes
from .zone_bodies import zone_filled

GOLDEN = Path(__file__).parent / "golden" / "lead"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
KEY = "sms000000001"


@pytest.fixture
def world(app, settings, sendgrid, feed_server):
    url = feed_server.url("/history.atom")
    poll_and_mail_through_fakes(app, settings, sendgrid, url)
    return app


def _cycle(app, feed_server, updates):
    feed_server.set(
        "/history.atom",
        atom([{"key": KEY, "title": "Delayed SMS delivery", "updates": updates}]),
    )
    jobs.poll(app)
    jobs.dispatch(app)


def _sent(sendgrid) -> dict[str, dict]:
    """The accepted request bodies by recipient address, the recipient's times filled in."""
    return zone_filled(sendgrid)


def _local(value: str) -> str:
    """The feed server's page URL (a random port) as one fixed string."""
    return re.sub(r"http://127\.0\.0\.1:\d+", "http://127.0.0.1:PORT", value)


def _golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(actual, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == actual, f"{name} differs (UPDATE_GOLDEN=1)"


TEXT_EN = """\
SINCH · Status notice

Sinch: Delayed SMS delivery
Identified · since November 26, 2026, 10:00 UTC

Hello,

We have found the cause of the incident affecting Sinch and are working on a
fix. Here is the current state, with answers to the most important
questions.

In short
--------

  • Status: Identified
  • Start: November 26, 2026, 10:00 UTC
  • End: not yet resolved
  • Affected: Sinch (no individual components named)

Latest update
-------------

Identified · posted November 26, 2026, 10:20 UTC (new)

Text from the status page:

> Correction: the delays began at 09:50, not 10:00. Messages sent between
> 09:50 and 10:20 may arrive late.

This incident on the status page:
https://status.example.com/incidents/sms000000001

More information
----------------

Q: What happened?

Since November 26, 2026, 10:00 UTC, there has been an incident affecting
Sinch. The status page lists it as “Delayed SMS delivery”. The cause has
been identified and our team is working on a fix. The details are in the
status page text under “Latest update”.

Q: What is affected?

The status page does not link this incident to individual Sinch components.
The text quoted under “Latest update” describes which features are impaired.

Q: Do I need to do anything?

Not right now. If messages or requests fail during this time, check their
status once the incident is resolved and send them again if needed. If your
business is badly affected, please get in touch with our support team.

Q: When will I hear from you again?

We will email you again as soon as the status page posts news, and in any
case once the incident is resolved. You can check the status page yourself
at any time in between.

Q: Where can I follow updates?

All posts about this incident are here:
https://status.example.com/incidents/sms000000001

The status of all services is on http://127.0.0.1:PORT

Earlier updates
---------------

Previous posts, as written on the status page.

November 26, 2026, 10:30 UTC – Identified

> A faulty gateway is the cause.

November 26, 2026, 10:00 UTC – Investigating

> We are looking into delays.

Kind regards,
The Sinch team

--
You are receiving this email because this address is subscribed to Sinch
status notifications and this notice matches your selection. It was created
automatically from the status page. All times are shown in the UTC time
zone.

In your preferences you choose the products, language and time zone of your
notifications. Unsubscribing takes one click.

Change preferences:
-preferences_url-

Unsubscribe:
-unsubscribe_url-
"""

TEXT_DE = """\
SINCH · Statusmeldung

Sinch: Delayed SMS delivery
Ursache gefunden · seit 26. November 2026, 11:00 MEZ

Hallo liebe/r Kund:in,

bei der Störung von Sinch kennen wir jetzt die Ursache und arbeiten an der
Behebung. Hier ist der aktuelle Stand, dazu die wichtigsten Fragen und
Antworten.

Zusammengefasst
---------------

  • Status: Ursache gefunden
  • Beginn: 26. November 2026, 11:00 MEZ
  • Ende: noch offen
  • Betroffen: Sinch (keine einzelnen Komponenten genannt)

Aktueller Stand
---------------

Ursache gefunden · gemeldet am 26. November 2026, 11:20 MEZ (neu)

Originaltext der Statusseite (Englisch):

> Correction: the delays began at 09:50, not 10:00. Messages sent between
> 09:50 and 10:20 may arrive late.

Zum Vorfall auf der Statusseite:
https://status.example.com/incidents/sms000000001

Mehr Informationen
------------------

F: Was ist passiert?

Seit dem 26. November 2026, 11:00 MEZ gibt es eine Störung bei Sinch. Auf
der Statusseite heißt der Vorfall „Delayed SMS delivery“. Die Ursache ist
gefunden; unser Team arbeitet an der Lösung. Die Einzelheiten stehen im
Originaltext der Statusseite unter „Aktueller Stand“.

F: Was ist betroffen?

Die Statusseite ordnet diesen Vorfall keinen einzelnen Komponenten von Sinch
zu. Welche Funktionen eingeschränkt sind, beschreibt der Originaltext der
Statusseite.

F: Muss ich etwas tun?

Im Moment nicht. Falls in dieser Zeit Nachrichten oder Anfragen
fehlschlagen, prüfe nach der Behebung ihren Status und sende sie bei Bedarf
erneut. Wenn dein Betrieb stark betroffen ist, melde dich gern bei unserem
Support.

F: Wann höre ich wieder von euch?

Sobald die Statusseite einen neuen Stand meldet, schicken wir dir eine
weitere E-Mail, spätestens wenn die Störung behoben ist. Zwischendurch
kannst du jederzeit selbst auf der Statusseite nachsehen.

F: Wo kann ich den Verlauf verfolgen?

Alle Meldungen zu diesem Vorfall stehen hier:
https://status.example.com/incidents/sms000000001

Den Zustand aller Dienste siehst du auf http://127.0.0.1:PORT

Bisheriger Verlauf
------------------

Frühere Meldungen, im englischen Original der Statusseite.

26. November 2026, 11:30 MEZ – Ursache gefunden

> A faulty gateway is the cause.

26. November 2026, 11:00 MEZ – Untersuchung läuft

> We are looking into delays.

Viele Grüße
Dein Sinch-Team

--
Du bekommst diese E-Mail, weil du für diese Adresse Statusmeldungen von
Sinch abonniert hast und diese Meldung zu deiner Auswahl passt. Sie wurde
automatisch aus den Meldungen der Statusseite erstellt. Alle Zeitangaben
beziehen sich auf die Zeitzone Europe/Berlin.

In deinen Einstellungen legst du fest, zu welchen Produkten, in welcher
Sprache und in welcher Zeitzone du informiert wirst. Abmelden geht mit einem
Klick.

Einstellungen ändern:
-preferences_url-

Abmelden:
-unsubscribe_url-
"""


def test_a_backdated_update_leads_the_mail_marked_new(world, db, sendgrid, feed_server, clock):
    add_subscriber(db, "anna@example.de", now=clock(), language="de")
    add_subscriber(db, "ben@example.com", now=clock(), language="en")
    t0 = clock() - timedelta(hours=2)  # 10:00 UTC
    at = lambda minutes: t0 + timedelta(minutes=minutes)  # noqa: E731
    known = [
        (at(0), "Investigating", "We are looking into delays."),
        (at(30), "Identified", "A faulty gateway is the cause."),
    ]
    _cycle(world, feed_server, known)  # the silent baseline
    assert sendgrid.requests == []

    # Posted now, but shown at 10:20: older-looking than the 10:30 post subscribers already had.
    backdated = (
        at(20),
        "Identified",
        "Correction: the delays began at 09:50, not 10:00. "
        "Messages sent between 09:50 and 10:20 may arrive late.",
    )
    clock.advance(minutes=1)
    _cycle(world, feed_server, [*known, backdated])

    sent = _sent(sendgrid)
    assert sorted(sent) == ["anna@example.de", "ben@example.com"]
    [row] = db.recent_notifications()
    content = db.get_notification(row["id"])["content"]
    assert [(u["at"], u.get("new", False)) for u in content["updates"]] == [
        ("2026-11-26T10:30:00Z", False),
        ("2026-11-26T10:20:00Z", True),
        ("2026-11-26T10:00:00Z", False),
    ]
    for address, lang, tz, text in (
        ("ben@example.com", "en", "UTC", TEXT_EN),
        ("anna@example.de", "de", "Europe/Berlin", TEXT_DE),
    ):
        body = sent[address]
        assert body["subject"] == (
            "[Identified] Sinch: Delayed SMS delivery"
            if lang == "en"
            else "[Ursache gefunden] Sinch: Delayed SMS delivery"
        )
        [plain, html] = [{**part, "value": _local(part["value"])} for part in body["content"]]
        assert plain == {"type": "text/plain", "value": text}
        assert html["type"] == "text/html"
        html = html["value"]
        _golden(f"backdated_update.{lang}.{tz.replace('/', '-').lower()}.html", html)
        # The lead quotes the new post; the timeline holds the two older ones, none marked new.
        quote = re.search(r'<blockquote class="quote".*?</blockquote>', html, re.S).group(0)
        assert "Correction: the delays began at 09:50" in quote
        assert html.count("Correction: the delays began") == 1
        assert html.count('class="new"') == 1  # the lead's mark; the older posts carry none
        # What dispatch sent is what the preview (and review) renders from the same content.
        assert body["content"][1]["value"] == render_email(content, lang, tz).html
        assert body["content"][0]["value"] == render_email(content, lang, tz).text
    # Ops reviewing it (or a resend, which copies the content) see the same lead.
    with world.app_context():
        _, preview = render_preview(content, "en")
    quote = re.search(r'<blockquote class="quote".*?</blockquote>', preview, re.S).group(0)
    assert "Correction: the delays began at 09:50" in quote


def test_several_new_updates_lead_newest_first_then_the_rest_by_time(
    world, db, sendgrid, feed_server, clock
):
    add_subscriber(db, "ben@example.com", now=clock(), language="en")
    t0 = clock() - timedelta(hours=2)
    at = lambda minutes: t0 + timedelta(minutes=minutes)  # noqa: E731
    known = [
        (at(0), "Investigating", "Post A."),
        (at(30), "Identified", "Post B."),
    ]
    _cycle(world, feed_server, known)
    # One poll brings two posts: one shown at 10:40, one backdated to 10:10.
    clock.advance(minutes=1)
    _cycle(world, feed_server, [*known, (at(10), "Investigating", "Post C."),
                                (at(40), "Monitoring", "Post D.")])  # fmt: skip

    [row] = db.recent_notifications()
    content = db.get_notification(row["id"])["content"]
    assert [(u["text"], u.get("new", False)) for u in content["updates"]] == [
        ("Post D.", True),
        ("Post B.", False),
        ("Post C.", True),
        ("Post A.", False),
    ]
    text = _sent(sendgrid)["ben@example.com"]["content"][0]["value"]
    lines = [line for line in text.splitlines() if re.search(r"posted|UTC –|^> Post", line)]
    assert lines == [
        "Monitoring · posted November 26, 2026, 10:40 UTC (new)",
        "> Post D.",
        "November 26, 2026, 10:10 UTC – Investigating (new)",
        "> Post C.",
        "November 26, 2026, 10:30 UTC – Identified",
        "> Post B.",
        "November 26, 2026, 10:00 UTC – Investigating",
        "> Post A.",
    ]
    # Ben's first email about this incident (the first poll was a baseline): issue 13.
    assert (
        "This is our first email to you about this incident. The status page has 2\n"
        "new posts about it: this is the newest; the other new ones are marked “new”\n"
        "in the timeline below, along with the earlier posts.\n"
    ) in text
