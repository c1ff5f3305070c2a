"""Mail wording (issue 13, item 4).

(a) "since our last email" only for readers who were sent an earlier email about the incident;
a subscriber's first email about it says it is the first. Replayed through the real path: feed
bytes over HTTP -> poll -> notification -> dispatch -> fake SendGrid.
(b) Resolved incidents and completed maintenance are told in the past tense.
(c) A moment in a sentence reads "on <date>, at <time>" / "am <Datum> um <Uhrzeit>".
(d) The clock follows the reader's region: 12-hour for English readers in US zones, 24-hour in
London, UTC and German (notifier/emails/times.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notifier import jobs
from notifier.delivery.mailer import apply_substitutions
from notifier.emails import times
from notifier.emails.message import ZONE_KEY
from notifier.render import incident_content, render_email

from .helpers import add_subscriber, atom, poll_and_mail_through_fakes

KEY = "sms000000013"


@pytest.fixture
def world(app, settings, sendgrid, feed_server):
    url = feed_server.url("/history.atom")
    poll_and_mail_through_fakes(app, settings, sendgrid, url)
    return app


def _cycle(app, feed_server, updates) -> None:
    feed_server.set(
        "/history.atom",
        atom([{"key": KEY, "title": "Delayed SMS delivery", "updates": updates}]),
    )
    jobs.poll(app)
    jobs.dispatch(app)


def _texts(sendgrid, since: int) -> dict[str, str]:
    """The text parts of the accepted requests from request number `since` on, by address."""
    texts = {}
    for request in sendgrid.requests[since:]:
        if request.status != 202:
            continue
        for personalization in request.body["personalizations"]:
            # The reader's times are substitutions (issue 14): fill them in.
            subs = {
                k: v for k, v in personalization["substitutions"].items() if ZONE_KEY.fullmatch(k)
            }
            text = apply_substitutions(request.body["content"][0]["value"], subs)
            texts[personalization["to"][0]["email"]] = text
    return texts


def _paragraph_after(text: str, heading_line: str) -> str:
    """The paragraph that follows the line starting with `heading_line`."""
    paragraphs = text.split("\n\n")
    index = next(i for i, p in enumerate(paragraphs) if p.startswith(heading_line))
    return paragraphs[index + 1]


def test_only_readers_mailed_before_read_since_our_last_email(
    world, db, sendgrid, feed_server, clock
):
    add_subscriber(db, "ann@example.com", now=clock(), language="en")
    t0 = clock() - timedelta(hours=2)
    at = lambda minutes: t0 + timedelta(minutes=minutes)  # noqa: E731
    posts = [(at(0), "Investigating", "Post A.")]
    _cycle(world, feed_server, posts)  # the first poll is a baseline: no mail
    clock.advance(minutes=1)
    posts = [*posts, (at(30), "Identified", "Post B.")]
    _cycle(world, feed_server, posts)
    assert set(_texts(sendgrid, 0)) == {"ann@example.com"}  # Ann's first email

    add_subscriber(db, "ben@example.com", now=clock(), language="en")
    add_subscriber(db, "carl@example.com", now=clock(), language="de")
    before = len(sendgrid.requests)
    clock.advance(minutes=1)
    posts = [*posts, (at(50), "Update", "Post C."), (at(60), "Monitoring", "Post D.")]
    _cycle(world, feed_server, posts)

    sent = _texts(sendgrid, before)
    assert set(sent) == {"ann@example.com", "ben@example.com", "carl@example.com"}
    notification = db.get_notification(db.recent_notifications()[0]["id"])
    content = notification["content"]
    assert sent == {
        "ann@example.com": render_email(content, "en", "UTC", mailed_before=True).text,
        "ben@example.com": render_email(content, "en", "UTC", mailed_before=False).text,
        "carl@example.com": render_email(content, "de", "Europe/Berlin", mailed_before=False).text,
    }
    meta = {"en": "Monitoring · posted", "de": "Wird beobachtet · gemeldet"}
    assert _paragraph_after(sent["ann@example.com"], meta["en"]) == (
        "There have been 2 new posts since our last email. This is the newest; the\n"
        "other new ones are marked “new” in the timeline below."
    )
    assert _paragraph_after(sent["ben@example.com"], meta["en"]) == (
        "This is our first email to you about this incident. The status page has 2\n"
        "new posts about it: this is the newest; the other new ones are marked “new”\n"
        "in the timeline below, along with the earlier posts."
    )
    assert _paragraph_after(sent["carl@example.com"], meta["de"]) == (
        "Dies ist unsere erste E-Mail an dich zu dieser Störung. Auf der Statusseite\n"
        "gibt es 2 neue Meldungen dazu. Hier siehst du die neueste; die übrigen neuen\n"
        "sind unten im Verlauf als „neu“ markiert, zusammen mit den früheren."
    )
    # One request per wording: the recipients of a request share one rendering.
    requests = [r for r in sendgrid.requests[before:] if r.status == 202]
    assert sorted(
        sorted(p["to"][0]["email"] for p in r.body["personalizations"]) for r in requests
    ) == [["ann@example.com"], ["ben@example.com"], ["carl@example.com"]]


def test_mailed_before_counts_only_sent_mails_about_the_same_incident(db, clock):
    now = clock()
    ann = add_subscriber(db, "ann@example.com", now=now)
    ben = add_subscriber(db, "ben@example.com", now=now)
    cat = add_subscriber(db, "cat@example.com", now=now)
    feed = db._query_one(
        "INSERT INTO feeds (url, created_at) VALUES (?, ?) RETURNING id", ["https://f", now]
    )["id"]
    incidents = [
        db._query_one(
            "INSERT INTO incidents (feed_id, key, kind, title, link, first_seen_at, "
            "last_changed_at) VALUES (?, ?, 'incident', 'T', 'https://l', ?, ?) "
            "RETURNING id",
            [feed, key, now, now],
        )["id"]
        for key in ("one", "two")
    ]

    def notification(incident_id: int) -> int:
        return db.create_notification(
            "incident", {"kind": "incident"}, now, now + timedelta(hours=1),
            feed_id=feed, incident_id=incident_id, audience={"components": [], "feed_id": feed},
        )  # fmt: skip

    def delivery(nid: int, subscriber: int, state: str) -> None:
        db._execute(
            "INSERT INTO deliveries (notification_id, subscriber_id, email, language, timezone, "
            "state, next_attempt_at, created_at, updated_at) VALUES (?, ?, 'x@example.com', "
            "'en', 'UTC', ?, ?, ?, ?)",
            [nid, subscriber, state, now, now, now],
        )

    one, two = incidents
    earlier, other_incident, current = notification(one), notification(two), notification(one)
    delivery(earlier, ann, "sent")
    delivery(earlier, ben, "failed")  # never reached Ben: his next mail is his first
    delivery(other_incident, cat, "sent")  # another incident says nothing about this one
    announcement = db.create_notification("announcement", {}, now, now + timedelta(hours=1))

    assert db.mailed_before(current, [ann, ben, cat, None]) == {ann}
    assert db.mailed_before(earlier, [ann, ben, cat]) == set()  # its own delivery is not "before"
    assert db.mailed_before(announcement, [ann, ben, cat]) == set()


def _t(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 10, 5, hour, minute, tzinfo=UTC)


RESOLVED = incident_content(
    kind="incident", page_name="Sinch", page_url="https://status.example.com",
    key="inc1", title="Delayed SMS delivery", link="https://status.example.com/incidents/inc1",
    impact="minor", components=[], scheduled_start=None, scheduled_end=None,
    status="resolved", change="new_update", new_updates=1,
    updates=[("resolved", _t(18, 5), "This incident has been resolved.", True),
             ("investigating", _t(13, 40), "We are investigating delays.")],
)  # fmt: skip
COMPLETED = incident_content(
    kind="maintenance", page_name="Sinch", page_url="https://status.example.com",
    key="mnt1", title="Database maintenance", link="https://status.example.com/incidents/mnt1",
    impact="maintenance", components=[{"id": "c1", "name": "SMS API"}],
    scheduled_start=_t(4), scheduled_end=_t(6), status="completed", change="new_update",
    new_updates=1,
    updates=[("completed", _t(5, 12), "The scheduled maintenance has been completed.", True),
             ("in_progress", _t(4), "Maintenance is in progress.")],
)  # fmt: skip

FOOTER_EN = """\
Kind regards,
The Sinch team

--
You are receiving this email because this address is subscribed to Sinch
status notifications and this notice matches your selection. It was created
automatically from the status page. All times are shown in the
America/New_York time zone.

In your preferences you choose the products, language and time zone of your
notifications. Unsubscribing takes one click.

Change preferences:
-preferences_url-

Unsubscribe:
-unsubscribe_url-
"""
RESOLVED_EN_NEW_YORK = (
    """\
SINCH · Status notice

Sinch: Delayed SMS delivery
Resolved · October 5, 2026, 9:40 AM – 2:05 PM EDT

Hello,

The incident affecting Sinch has been resolved. The service was impaired on
October 5, 2026, between 9:40 AM and 2:05 PM EDT. We are sorry if this held
up your work. Below you will find what happened and whether there is
anything left for you to do.

In short
--------

  • Status: Resolved
  • Start: October 5, 2026, 9:40 AM EDT
  • End: October 5, 2026, 2:05 PM EDT
  • Affected: Sinch (no individual components named)
  • Impact: Minor

Latest update
-------------

Resolved · posted October 5, 2026, 2:05 PM EDT (new)

Text from the status page:

> This incident has been resolved.

This incident on the status page:
https://status.example.com/incidents/inc1

More information
----------------

Q: What happened?

There was an incident affecting Sinch on October 5, 2026, between 9:40 AM
and 2:05 PM EDT. The status page records it as “Delayed SMS delivery”.

Q: Is it fully fixed?

Yes. The status page has reported the incident as resolved since October 5,
2026, 2:05 PM EDT. If something still does not work as expected for you,
please let our support team know.

Q: What was affected?

The status page does not link this incident to individual Sinch components.
The text quoted under “Latest update” describes which features were
impaired. Its impact was rated “Minor” there.

Q: Is there anything left for me to do?

Usually not. It is worth checking messages and requests from the time of the
incident: anything that failed can be sent again if needed. If you still
notice something afterwards, our support team is happy to help.

Q: Will I find out what caused it?

If we publish a postmortem for this incident, you will find it on the status
page at https://status.example.com/incidents/inc1

Q: Where can I follow updates?

All posts about this incident are here:
https://status.example.com/incidents/inc1

The status of all services is on https://status.example.com

Earlier updates
---------------

Previous posts, as written on the status page.

October 5, 2026, 9:40 AM EDT – Investigating

> We are investigating delays.

"""
    + FOOTER_EN
)


def test_resolved_incident_in_english_is_past_tense_with_a_us_clock_in_new_york():
    assert render_email(RESOLVED, "en", "America/New_York").text == RESOLVED_EN_NEW_YORK


def test_resolved_incident_in_german_is_past_tense():
    text = render_email(RESOLVED, "de", "Europe/Berlin").text
    assert _paragraph_after(text, "Hallo liebe/r Kund:in,") == (
        "die Störung bei Sinch ist behoben. Der Dienst war am 5. Oktober 2026\n"
        "zwischen 15:40 und 20:05 MESZ eingeschränkt. Es tut uns leid, falls dich das\n"
        "bei deiner Arbeit aufgehalten hat. Was passiert ist und ob du jetzt noch\n"
        "etwas tun solltest, liest du hier."
    )
    assert _paragraph_after(text, "F: Was war betroffen?") == (
        "Die Statusseite ordnet diesen Vorfall keinen einzelnen Komponenten von Sinch\n"
        "zu. Welche Funktionen eingeschränkt waren, beschreibt der Originaltext der\n"
        "Statusseite. Die Auswirkung war dort als „Gering“ eingestuft."
    )


def test_an_ongoing_incident_stays_in_the_present_tense():
    ongoing = incident_content(**{**_ARGS, "status": "investigating", "change": "new_incident"})
    text = render_email(ongoing, "en", "UTC").text
    assert _paragraph_after(text, "Q: What is affected?") == (
        "The status page does not link this incident to individual Sinch components.\n"
        "The text quoted under “Latest update” describes which features are impaired.\n"
        "Its impact is rated “Minor” there."
    )


_ARGS = dict(
    kind="incident", page_name="Sinch", page_url="https://status.example.com",
    key="inc2", title="Delayed SMS delivery", link="https://status.example.com/incidents/inc2",
    impact="minor", components=[], scheduled_start=None, scheduled_end=None,
    new_updates=1, updates=[("investigating", _t(13, 40), "We are investigating.", True)],
)  # fmt: skip

COMPLETED_EN_NEW_YORK = (
    """\
SINCH · Status notice

SMS API: Database maintenance
Completed · October 5, 2026, 12:00 AM – 1:12 AM EDT

Hello,

The maintenance of SMS API has been completed. Thank you for your patience.

In short
--------

  • Status: Completed
  • Start: October 5, 2026, 12:00 AM EDT
  • End: October 5, 2026, 1:12 AM EDT
  • Affected: SMS API

Latest update
-------------

Completed · posted October 5, 2026, 1:12 AM EDT (new)

Text from the status page:

> The scheduled maintenance has been completed.

This maintenance on the status page:
https://status.example.com/incidents/mnt1

More information
----------------

Q: What was done?

We carried out the scheduled maintenance “Database maintenance” on SMS API.
It was completed on October 5, 2026, at 1:12 AM EDT.

Q: Is everything back to normal?

Yes. The maintenance is complete, and no further limitations from it are
expected.

Q: Do I need to do anything?

No. If anything seems unusual since the maintenance, please contact our
support team.

Q: Where can I find more information?

All posts about this maintenance are here:
https://status.example.com/incidents/mnt1

The status of all services is on https://status.example.com

Earlier updates
---------------

Previous posts, as written on the status page.

October 5, 2026, 12:00 AM EDT – In progress

> Maintenance is in progress.

"""
    + FOOTER_EN
)


def test_completed_maintenance_in_english_says_on_the_date_at_the_time():
    assert render_email(COMPLETED, "en", "America/New_York").text == COMPLETED_EN_NEW_YORK


COMPLETED_DE_BERLIN = """\
SINCH · Statusmeldung

SMS API: Database maintenance
Abgeschlossen · 5. Oktober 2026, 06:00 – 07:12 MESZ

Hallo liebe/r Kund:in,

die Wartung bei SMS API ist abgeschlossen. Danke für deine Geduld in dieser
Zeit.

Zusammengefasst
---------------

  • Status: Abgeschlossen
  • Beginn: 5. Oktober 2026, 06:00 MESZ
  • Ende: 5. Oktober 2026, 07:12 MESZ
  • Betroffen: SMS API

Aktueller Stand
---------------

Abgeschlossen · gemeldet am 5. Oktober 2026, 07:12 MESZ (neu)

Originaltext der Statusseite (Englisch):

> The scheduled maintenance has been completed.

Zur Wartung auf der Statusseite:
https://status.example.com/incidents/mnt1

Mehr Informationen
------------------

F: Was wurde gemacht?

Wir haben die geplante Wartung „Database maintenance“ bei SMS API
durchgeführt. Sie wurde am 5. Oktober 2026 um 07:12 MESZ abgeschlossen.

F: Läuft wieder alles wie gewohnt?

Ja. Die Wartung ist abgeschlossen, Einschränkungen durch sie sind nicht mehr
zu erwarten.

F: Muss ich etwas tun?

Nein. Falls dir seit der Wartung etwas ungewöhnlich vorkommt, melde dich bei
unserem Support.

F: Wo finde ich weitere Informationen?

Alle Meldungen zu dieser Wartung stehen hier:
https://status.example.com/incidents/mnt1

Den Zustand aller Dienste siehst du auf https://status.example.com

Bisheriger Verlauf
------------------

Frühere Meldungen, im englischen Original der Statusseite.

5. Oktober 2026, 06:00 MESZ – Wartung läuft

> Maintenance is in progress.

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


def test_completed_maintenance_in_german_says_am_datum_um_uhrzeit():
    assert render_email(COMPLETED, "de", "Europe/Berlin").text == COMPLETED_DE_BERLIN


@pytest.mark.parametrize(
    ("lang", "tz", "locale", "expected"),
    [
        ("en", "America/New_York", "en_US", "October 5, 2026, 2:05 PM EDT"),
        ("en", "America/Los_Angeles", "en_US", "October 5, 2026, 11:05 AM PDT"),
        ("en", "Asia/Calcutta", "en_IN", "October 5, 2026, 11:35 PM IST"),  # a tz alias
        ("en", "Europe/London", "en_GB", "October 5, 2026, 19:05 BST"),
        ("en", "Europe/Berlin", "en_DE", "October 5, 2026, 20:05 CEST"),
        ("en", "Asia/Tokyo", "en_JP", "October 6, 2026, 03:05 JST"),
        ("en", "UTC", "en", "October 5, 2026, 18:05 UTC"),  # no region: 24 hours
        ("en", "America/Sao_Paulo", "en", "October 5, 2026, 15:05 UTC-3"),  # no en_BR
        ("de", "America/New_York", "de", "5. Oktober 2026, 14:05 EDT"),  # German: 24 hours
        ("de", "Europe/Berlin", "de_DE", "5. Oktober 2026, 20:05 MESZ"),
    ],
)
def test_the_clock_follows_the_readers_region(lang, tz, locale, expected):
    assert times.clock_locale(lang, tz) == locale
    assert times.format_time(_t(18, 5), lang, tz) == expected


def test_phrases_for_moments_and_spans_in_sentences():
    start, end = _t(13, 40), _t(18, 5)
    assert [
        times.format_on(end, "en", "America/New_York"),
        times.format_on(end, "de", "Europe/Berlin"),
        times.format_between(start, end, "en", "America/New_York"),
        times.format_between(start, end, "de", "Europe/Berlin"),
        times.format_between(start, end + timedelta(days=1), "en", "Europe/London"),
        times.format_between(start, end + timedelta(days=1), "de", "Europe/Berlin"),
    ] == [
        "on October 5, 2026, at 2:05 PM EDT",
        "am 5. Oktober 2026 um 20:05 MESZ",
        "on October 5, 2026, between 9:40 AM and 2:05 PM EDT",
        "am 5. Oktober 2026 zwischen 15:40 und 20:05 MESZ",
        "between October 5, 2026, 14:40 BST and October 6, 2026, 19:05 BST",
        "zwischen dem 5. Oktober 2026, 15:40 MESZ und dem 6. Oktober 2026, 20:05 MESZ",
    ]
