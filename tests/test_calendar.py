"""Calendar invites (issue 11, item 3): the maintenance.ics of maintenance mails, and the
private calendar feed.

The .ics is read back with `icalendar` and with `vobject`, an independent parser. Dispatch runs
the real `sendgrid` library against tests/fake_sendgrid.py, which validates each request
against SendGrid's official schema; the outbox writes real .eml files.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser

import icalendar
import pytest
import vobject

from app import create_app
from notifier import calendar, subscriptions, tokens
from notifier.delivery.dispatch import Dispatcher
from notifier.delivery.mailer import Message, OutboxBackend, Recipient, SendGridBackend
from notifier.notifications import incident_content
from notifier.render import SharedEmail, render_email
from tests.fake_sendgrid import sendgrid  # noqa: F401

from .helpers import add_component, add_subscriber, dispatched_envelope, table
from .test_dispatch import sg_settings  # noqa: F401  (fixture)
from .test_dispatch_zones import ZONES
from .test_methods import dump_tables

MIME = "text/calendar; method=PUBLISH; charset=UTF-8"


def maintenance(change="new_incident", *, sequence=None, status="scheduled", **window) -> dict:
    """A maintenance content dict as notifier.render.incident_content builds it."""
    content = {
        "kind": "maintenance",
        "page_name": "Sinch",
        "page_url": "https://status.sinch.com",
        "incident": {
            "key": "6w7lf30qkgqq",
            "title": "SMS API database maintenance",
            "link": "https://status.sinch.com/incidents/6w7lf30qkgqq",
            "impact": "maintenance",
            "components": [
                {"id": "sms-eu", "name": "SMS (EU)"},
                {"id": "voice", "name": "Voice"},
            ],
            "scheduled_start": window.get("start", "2026-06-30T22:00:00Z"),
            "scheduled_end": window.get("end", "2026-07-01T01:30:00Z"),
        },
        "status": status,
        "change": change,
        "new_updates": 1 if change in ("new_incident", "new_update") else 0,
        "updates": [
            {"status": "scheduled", "at": "2026-06-20T09:15:00Z", "text": "We will upgrade."},
        ],
    }
    if sequence is not None:
        content["incident"]["window_sequence"] = sequence
    return content


def events(ics: bytes) -> list:
    return icalendar.Calendar.from_ical(ics).walk("VEVENT")


# --- the .ics itself ------------------------------------------------------------------
def test_the_maintenance_ics_in_english_whole():
    ics = calendar.maintenance_event(maintenance(), "en")
    assert ics.decode("utf-8") == (
        "BEGIN:VCALENDAR\r\n"
        "VERSION:2.0\r\n"
        "PRODID:-//Sinch//status-notifier//EN\r\n"
        "CALSCALE:GREGORIAN\r\n"
        "METHOD:PUBLISH\r\n"
        "BEGIN:VEVENT\r\n"
        "SUMMARY:Maintenance: SMS (EU)\\, Voice – SMS API database maintenance\r\n"
        "DTSTART:20260630T220000Z\r\n"
        "DTEND:20260701T013000Z\r\n"
        "DTSTAMP:20260620T091500Z\r\n"
        "UID:maintenance-6w7lf30qkgqq@status.sinch.com\r\n"
        "SEQUENCE:0\r\n"
        "DESCRIPTION:Scheduled maintenance on the Sinch status page.\\nAffected: SMS\r\n"
        "  (EU)\\, Voice\\nDetails and current status: https://status.sinch.com/incide\r\n"
        " nts/6w7lf30qkgqq\r\n"
        "LAST-MODIFIED:20260620T091500Z\r\n"
        "STATUS:CONFIRMED\r\n"
        "TRANSP:OPAQUE\r\n"
        "URL:https://status.sinch.com/incidents/6w7lf30qkgqq\r\n"
        "END:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )
    # RFC 5545 3.1: lines of at most 75 octets, CRLF.
    assert all(len(line) <= 75 for line in ics.split(b"\r\n"))


@pytest.mark.parametrize(
    ("lang", "summary", "description"),
    [
        (
            "de",
            "Wartung: SMS (EU), Voice – SMS API database maintenance",
            "Geplante Wartung auf der Statusseite von Sinch.\nBetroffen: SMS (EU), Voice\n"
            "Details und aktueller Stand: https://status.sinch.com/incidents/6w7lf30qkgqq",
        ),
        (
            "en",
            "Maintenance: SMS (EU), Voice – SMS API database maintenance",
            "Scheduled maintenance on the Sinch status page.\nAffected: SMS (EU), Voice\n"
            "Details and current status: https://status.sinch.com/incidents/6w7lf30qkgqq",
        ),
    ],
)
def test_both_parsers_read_the_same_event_in_the_mails_language(lang, summary, description):
    ics = calendar.maintenance_event(maintenance(sequence=3), lang)
    cal = icalendar.Calendar.from_ical(ics)
    assert (str(cal["METHOD"]), str(cal["VERSION"])) == ("PUBLISH", "2.0")
    [event] = cal.walk("VEVENT")
    assert {
        "uid": str(event["UID"]),
        "summary": str(event["SUMMARY"]),
        "description": str(event["DESCRIPTION"]),
        "start": event.decoded("DTSTART"),
        "end": event.decoded("DTEND"),
        "stamp": event.decoded("DTSTAMP"),
        "sequence": event.decoded("SEQUENCE"),
        "status": str(event["STATUS"]),
        "url": str(event["URL"]),
    } == {
        "uid": "maintenance-6w7lf30qkgqq@status.sinch.com",
        "summary": summary,
        "description": description,
        "start": datetime(2026, 6, 30, 22, 0, tzinfo=UTC),
        "end": datetime(2026, 7, 1, 1, 30, tzinfo=UTC),
        "stamp": datetime(2026, 6, 20, 9, 15, tzinfo=UTC),
        "sequence": 3,
        "status": "CONFIRMED",
        "url": "https://status.sinch.com/incidents/6w7lf30qkgqq",
    }
    # The second, independent parser reads the same.
    parsed = vobject.readOne(ics.decode("utf-8"))
    v = parsed.vevent
    assert parsed.method.value == "PUBLISH"
    assert {
        "uid": v.uid.value,
        "summary": v.summary.value,
        "description": v.description.value,
        "start": v.dtstart.value,
        "end": v.dtend.value,
        "sequence": v.sequence.value,
        "status": v.status.value,
        "url": v.url.value,
    } == {
        "uid": "maintenance-6w7lf30qkgqq@status.sinch.com",
        "summary": summary,
        "description": description,
        "start": datetime(2026, 6, 30, 22, 0, tzinfo=UTC),
        "end": datetime(2026, 7, 1, 1, 30, tzinfo=UTC),
        "sequence": "3",
        "status": "CONFIRMED",
        "url": "https://status.sinch.com/incidents/6w7lf30qkgqq",
    }
    assert v.dtstart.value.utcoffset() == timedelta(0)


def test_uid_stays_while_the_window_moves_and_is_cancelled_sequence_and_status_follow():
    scheduled = maintenance()
    rescheduled = maintenance(
        "rescheduled", sequence=1, start="2027-01-14T23:00:00Z", end="2027-01-15T01:00:00Z"
    )
    rescheduled["previous_window"] = {
        "start": "2026-06-30T22:00:00Z",
        "end": "2026-07-01T01:30:00Z",
    }
    cancelled = maintenance(
        "cancelled",
        sequence=2,
        status="cancelled",
        start="2027-01-14T23:00:00Z",
        end="2027-01-15T01:00:00Z",
    )
    reminder = maintenance(
        "reminder", sequence=1, start="2027-01-14T23:00:00Z", end="2027-01-15T01:00:00Z"
    )
    reminder["reminder"] = {"offset_minutes": 1440}
    seen = []
    for content in (scheduled, rescheduled, reminder, cancelled):
        for lang in ("de", "en"):
            [event] = events(calendar.maintenance_event(content, lang))
            seen.append(
                (
                    lang,
                    str(event["UID"]),
                    event.decoded("SEQUENCE"),
                    str(event["STATUS"]),
                    event.decoded("DTSTART"),
                    event.decoded("DTEND"),
                    str(event["SUMMARY"]).split(":")[0],
                )
            )
    uid = "maintenance-6w7lf30qkgqq@status.sinch.com"
    june = (datetime(2026, 6, 30, 22, tzinfo=UTC), datetime(2026, 7, 1, 1, 30, tzinfo=UTC))
    january = (datetime(2027, 1, 14, 23, tzinfo=UTC), datetime(2027, 1, 15, 1, tzinfo=UTC))
    assert seen == [
        ("de", uid, 0, "CONFIRMED", *june, "Wartung"),
        ("en", uid, 0, "CONFIRMED", *june, "Maintenance"),
        ("de", uid, 1, "CONFIRMED", *january, "Wartung"),
        ("en", uid, 1, "CONFIRMED", *january, "Maintenance"),
        ("de", uid, 1, "CONFIRMED", *january, "Wartung"),
        ("en", uid, 1, "CONFIRMED", *january, "Maintenance"),
        ("de", uid, 2, "CANCELLED", *january, "Wartung abgesagt"),
        ("en", uid, 2, "CANCELLED", *january, "Maintenance cancelled"),
    ]


def test_which_mails_carry_the_ics_and_that_it_does_not_depend_on_the_zone():
    content = maintenance()
    berlin = render_email(content, "de", "Europe/Berlin")
    tokyo = render_email(content, "de", "Asia/Tokyo")
    ics = calendar.maintenance_event(content, "de")
    assert (
        berlin.attachments
        == tokyo.attachments
        == (calendar.Attachment("maintenance.ics", MIME, ics),)
    )
    # The shared rendering (issue 14) carries the same file for every zone.
    shared = SharedEmail(content, "de")
    assert {shared.for_zone(z).email.attachments for z in ZONES} == {berlin.attachments}
    # Same content, same bytes: DTSTAMP comes from the content, not the clock.
    assert calendar.maintenance_event(copy.deepcopy(content), "de") == ics
    # No window, or not maintenance: no attachment.
    no_window = maintenance()
    no_window["incident"]["scheduled_end"] = None
    incident = maintenance()
    incident["kind"] = "incident"
    for other in (no_window, incident, {"kind": "confirmation"}):
        assert render_email(other, "en", "UTC").attachments == ()
        assert SharedEmail(other, "en").for_zone("UTC").email.attachments == ()


def test_an_end_not_after_the_start_leaves_dtend_out_and_no_link_falls_back_to_the_page_host():
    content = maintenance(start="2026-06-30T22:00:00Z", end="2026-06-30T22:00:00Z")
    content["page_url"] = ""
    [event] = events(calendar.maintenance_event(content, "en"))
    assert "DTEND" not in event
    assert str(event["UID"]) == "maintenance-6w7lf30qkgqq@status.sinch.com"
    with pytest.raises(ValueError, match="language"):
        calendar.maintenance_event(content, "fr")


def test_title_products_and_link_read_as_in_the_mail():
    content = maintenance()
    content["incident"]["title"] = "Database <b>upgrade</b>\n now"
    content["incident"]["link"] = "javascript:alert(1)"
    content["overrides"] = {"de": {"title": "Datenbank-Upgrade"}}
    de, en = (events(calendar.maintenance_event(content, lang))[0] for lang in ("de", "en"))
    assert str(de["SUMMARY"]) == "Wartung: SMS (EU), Voice – Datenbank-Upgrade"
    assert str(en["SUMMARY"]) == "Maintenance: SMS (EU), Voice – Database upgrade now"
    assert "URL" not in en and "javascript" not in str(en["DESCRIPTION"])
    assert str(en["DESCRIPTION"]) == (
        "Scheduled maintenance on the Sinch status page.\nAffected: SMS (EU), Voice"
    )


# --- dispatch: SendGrid and the outbox ----------------------------------------------------


def test_the_attachment_travels_once_per_language_request_for_readers_in_forty_zones(
    db,
    sg_settings,  # noqa: F811  (fixture from test_dispatch)
    clock,
    sendgrid,  # noqa: F811
):
    now = clock()
    content = maintenance()
    nid = db.create_notification(
        "maintenance", content, now, now + timedelta(hours=24), audience={}
    )
    for lang in ("de", "en"):
        for index, zone in enumerate(ZONES):
            add_subscriber(
                db, f"{lang}-{index:02d}@example.com", now=now, language=lang, timezone=zone
            )
    db.fan_out(nid, now)

    backend = SendGridBackend(sendgrid.api_key, sendgrid.base_url, 2.0)
    stats = Dispatcher(db, backend, sg_settings, clock).run()

    assert (stats.requests, stats.sent, stats.failed) == (2, 80, 0)
    assert [(r.status, r.errors) for r in sendgrid.requests] == [(202, []), (202, [])]
    # The fake validated each request against the official schema where ../shared has it
    # (a user's clone has none; test_mailer checks the attachment object against it too).
    for request in sendgrid.requests:
        lang = request.body["personalizations"][0]["to"][0]["email"][:2]
        assert len(request.body["personalizations"]) == 40
        email = SharedEmail(content, lang).for_zone("UTC").email
        ics = calendar.maintenance_event(content, lang)
        attachment = {
            "content": base64.b64encode(ics).decode("ascii"),
            "type": MIME,
            "filename": "maintenance.ics",
            "disposition": "attachment",
        }
        envelope = {k: v for k, v in request.body.items() if k != "personalizations"}
        assert envelope == {
            **dispatched_envelope(email, "maintenance"),
            "attachments": [attachment],
        }
        assert base64.b64decode(request.body["attachments"][0]["content"]) == ics
    assert {d["state"] for d in table(db, "deliveries")} == {"sent"}


def test_the_fake_refuses_an_attachment_that_is_not_base64(sendgrid):  # noqa: F811
    backend = SendGridBackend(sendgrid.api_key, sendgrid.base_url, 2.0)
    message = Message(
        1, "maintenance", "Sinch Status <status@sinch.example>", "S", "text", "<p>h</p>", {},
        (calendar.Attachment("maintenance.ics", MIME, b"x"),),
    )  # fmt: skip
    good = backend.send(message, [Recipient(1, "a@example.com", {}, {})])
    assert good.outcome == "accepted"
    body = dict(sendgrid.requests[0].body)
    body["attachments"] = [{**body["attachments"][0], "content": "not base64!"}]
    backend._post(body, 2.0)
    assert sendgrid.requests[1].errors == [
        {
            "message": "The attachment content must be base64 encoded.",
            "field": "attachments.0.content",
            "help": None,
        }
    ]


def test_the_outbox_eml_has_the_calendar_part(tmp_path, db, settings, clock):
    now = clock()
    content = maintenance()
    nid = db.create_notification(
        "maintenance", content, now, now + timedelta(hours=24), audience={}
    )
    add_subscriber(db, "leser@example.com", now=now, language="de", timezone="Europe/Berlin")
    db.fan_out(nid, now)
    outbox = OutboxBackend(tmp_path / "outbox", clock=clock)

    stats = Dispatcher(db, outbox, settings, clock).run()

    assert (stats.sent, stats.failed) == (1, 0)
    [path] = (tmp_path / "outbox").iterdir()
    mail = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert mail.get_content_type() == "multipart/mixed"
    [alternative, part] = mail.iter_parts()
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    assert (part.get_content_type(), part.get_filename(), part.get_content_disposition()) == (
        "text/calendar",
        "maintenance.ics",
        "attachment",
    )
    assert (part.get_param("method"), part.get_param("charset")) == ("PUBLISH", "UTF-8")
    assert part["Content-Transfer-Encoding"] == "base64"
    assert part.get_payload(decode=True) == calendar.maintenance_event(content, "de")
    # The text and HTML parts are the mail as rendered, links filled in.
    direct = render_email(content, "de", "Europe/Berlin")
    assert mail["Subject"] == direct.subject
    assert (
        alternative.get_body(("plain",)).get_content().split("\n")[:3]
        == (direct.text.split("\n")[:3])
    )


# --- the calendar feed ----------------------------------------------------------------------
def _incident(db, feed, key, *, start, end, components, updates, sequence=0, cancelled=None,
              kind="maintenance"):  # fmt: skip
    now = datetime(2026, 11, 1, tzinfo=UTC)
    iid = db._query_one(
        "INSERT INTO incidents (feed_id, key, kind, title, link, components, impact, "
        "scheduled_start_at, scheduled_end_at, first_seen_at, last_changed_at, window_sequence, "
        "cancelled_at) VALUES (?, ?, ?, ?, ?, ?, 'maintenance', ?, ?, ?, ?, ?, ?) RETURNING id",
        [feed, key, kind, f"Title {key}", f"https://status.sinch.com/incidents/{key}",
         json.dumps(components), start, end, now, now, sequence, cancelled],
    )["id"]  # fmt: skip
    for seq, (status, at) in enumerate(updates):
        db._execute(
            "INSERT INTO updates (incident_id, posted_at, status, seq, text, first_seen_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [iid, at, status, seq, f"{status} text", at],
        )
    return iid


@pytest.fixture
def world(db, clock):
    """A page with components and a group, maintenance in every state, and subscribers."""
    now = clock()  # 2026-11-26 12:00 UTC
    feed = db._query_one(
        "INSERT INTO feeds (url, title, page_url, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        ["https://status.sinch.com/history.atom", "Sinch Status - Incident History",
         "https://status.sinch.com", now],
    )["id"]  # fmt: skip
    add_component(db, feed, "sms-eu", "SMS (EU)", now)
    add_component(db, feed, "voice", "Voice", now)
    add_component(db, feed, "grp-voice", "Voice products", now)
    db._execute(
        "INSERT INTO group_memberships (group_id, component_id, feed_id, group_name, "
        "component_name, first_seen_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ["grp-voice", "voice", feed, "Voice products", "Voice", now, now],
    )
    day = timedelta(days=1)
    posted = now - 3 * day
    h, sms = timedelta(hours=1), ["sms-eu"]

    def add(key, start, hours, components=sms, **kw):
        end = None if start is None else start + hours * h
        return _incident(db, feed, key, start=start, end=end, components=components, **kw)

    m = {
        "upcoming": add("up", now + 2 * day, 2, updates=[("scheduled", posted)]),
        "running": add("run", now - h, 2, ["voice"], sequence=1,
                       updates=[("scheduled", posted), ("in_progress", now - h)]),
        "ended_early": add("early", now - 2 * h, 4,
                           updates=[("in_progress", now - 2 * h), ("completed", now - h)]),
        "past": add("past", now - 3 * day, 2, updates=[("scheduled", now - 5 * day)]),
        "cancelled": add("cxl", now + 5 * day, 1, sequence=2, cancelled=now - 2 * day,
                         updates=[("scheduled", posted)]),
        "cancelled_long_ago": add("old", now + 9 * day, 1, sequence=1, cancelled=now - 8 * day,
                                  updates=[("scheduled", now - 20 * day)]),
        "whole_page": add("all", now + 3 * day, 1, [], updates=[("scheduled", posted)]),
        "incident": add("inc", None, 0, kind="incident", updates=[("investigating", posted)]),
    }  # fmt: skip
    s = {
        "all": add_subscriber(db, "all@example.com", now=now, language="en"),
        "sms": add_subscriber(db, "sms@example.com", now=now, language="de", components=["sms-eu"]),
        "group": add_subscriber(db, "group@example.com", now=now, components=["grp-voice"]),
        "no_maint": add_subscriber(db, "nomaint@example.com", now=now, maintenance=False),
        "pending": add_subscriber(db, "pending@example.com", now=now, state="pending"),
    }
    return {"feed": feed, "maintenance": m, "subscribers": s}


def feed_url(db, settings, subscriber_id: int) -> str:
    row = db.get_subscriber(subscriber_id)
    links = tokens.calendar_links(settings, row["id"], row["link_nonce"])
    assert links["webcal"] == "webcal://" + links["https"].split("://", 1)[1]
    return links["https"].removeprefix(settings.public_base_url)


def feed_events(response) -> list[tuple]:
    cal = icalendar.Calendar.from_ical(response.data)
    assert (str(cal["METHOD"]), str(cal["X-PUBLISHED-TTL"])) == ("PUBLISH", "PT1H")
    found = [
        (str(e["UID"]).split("@")[0], str(e["STATUS"]), e.decoded("SEQUENCE"))
        for e in cal.walk("VEVENT")
    ]
    # The second, independent parser reads the same events.
    parsed = vobject.readOne(response.get_data(as_text=True))
    assert [
        (v.uid.value.split("@")[0], v.status.value, int(v.sequence.value))
        for v in getattr(parsed, "vevent_list", [])
    ] == found
    return found


def test_each_subscriber_gets_their_maintenance(client, db, settings, world):
    got = {}
    for name, sid in world["subscribers"].items():
        response = client.get(feed_url(db, settings, sid))
        got[name] = (
            response.status_code,
            (feed_events(response) if response.status_code == 200 else None),
        )
    assert got == {
        "all": (200, [
            ("maintenance-run", "CONFIRMED", 1), ("maintenance-up", "CONFIRMED", 0),
            ("maintenance-all", "CONFIRMED", 0), ("maintenance-cxl", "CANCELLED", 2),
        ]),
        "sms": (200, [
            ("maintenance-up", "CONFIRMED", 0), ("maintenance-all", "CONFIRMED", 0),
            ("maintenance-cxl", "CANCELLED", 2),
        ]),
        "group": (200, [("maintenance-run", "CONFIRMED", 1), ("maintenance-all", "CONFIRMED", 0)]),
        "no_maint": (200, []),
        "pending": (404, None),
    }  # fmt: skip
    # An empty calendar still has its name, in the subscriber's language (English here).
    empty = client.get(feed_url(db, settings, world["subscribers"]["no_maint"]))
    assert str(icalendar.Calendar.from_ical(empty.data)["X-WR-CALNAME"]) == "Sinch maintenance"


def test_the_feed_answer_and_its_events_are_the_mails_events(client, db, settings, world, clock):
    sid = world["subscribers"]["sms"]
    response = client.get(feed_url(db, settings, sid))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert response.headers["Cache-Control"] == "private, no-cache"
    cal = icalendar.Calendar.from_ical(response.data)
    assert str(cal["X-WR-CALNAME"]) == "Sinch-Wartungen"  # the subscriber's language
    assert str(cal["REFRESH-INTERVAL"].to_ical().decode()) == "PT1H"
    # The upcoming maintenance reads exactly as the attachment of a mail about it.
    incident = db.get_incident(world["maintenance"]["upcoming"])
    change = {"type": "new_incident", "status": "scheduled", "count": 1, "update_id": None,
              "detected_at": None}  # fmt: skip
    names = {c["id"]: c["name"] for c in db.list_components(world["feed"])}
    content = incident_content(db, change, incident, names)
    [mailed] = events(calendar.maintenance_event(content, "de"))
    [listed] = [e for e in cal.walk("VEVENT") if str(e["UID"]) == str(mailed["UID"])]
    assert listed.to_ical() == mailed.to_ical()
    # ETag: a poll with the same one gets 304 and no body.
    again = client.get(
        feed_url(db, settings, sid), headers={"If-None-Match": response.headers["ETag"]}
    )
    assert (again.status_code, again.data) == (304, b"")
    assert response.headers["ETag"] == f'"{hashlib.sha256(response.data).hexdigest()[:32]}"'


def test_bad_tokens_unsubscribed_and_erased_get_one_plain_404(client, db, settings, world, clock):
    sid = world["subscribers"]["all"]
    good = feed_url(db, settings, sid)
    row = db.get_subscriber(sid)
    forged = tokens.make_token("another-secret", tokens.CALENDAR, sid, row["link_nonce"])
    manage = tokens.make_token(settings.secret_key, tokens.MANAGE, sid, row["link_nonce"])
    other_nonce = tokens.calendar_token(settings.secret_key, sid, secrets.token_urlsafe(8))
    bad = [f"/calendar/{t}.ics" for t in (forged, manage, other_nonce, "x", "a" * 600)]
    answers = [client.get(url) for url in bad]
    subscriptions.unsubscribe(db, sid, clock(), "page")
    answers.append(client.get(good))
    db.update_subscriber(sid, state="confirmed", unsubscribed_at=None)
    assert client.get(good).status_code == 200  # back while the subscription lives
    subscriptions.erase(db, sid)
    answers.append(client.get(good))
    assert {(a.status_code, a.mimetype, a.data) for a in answers} == {
        (404, "text/plain", b"Not found\n")
    }


def test_get_and_head_change_nothing(app, client, db, settings, world):
    url = feed_url(db, settings, world["subscribers"]["all"])
    before = dump_tables(db)
    get = client.get(url)
    head = client.head(url)
    assert (get.status_code, head.status_code, head.data) == (200, 200, b"")
    assert head.headers["ETag"] == get.headers["ETag"]
    assert dump_tables(db) == before
    assert client.post(url).status_code == 405


def test_the_feed_is_rate_limited_per_address(app, db, settings, world):
    # The limits are attached when the app is built: one with a low limit, on the same database.
    limited = create_app(replace(settings, rate_limit_one_click="2 per minute"))
    limited.extensions["clock"] = app.extensions["clock"]
    client = limited.test_client()
    url = feed_url(db, settings, world["subscribers"]["all"])
    codes = [client.get(url).status_code for _ in range(3)]
    refused = client.get(url)
    limited.extensions["store"].close()
    assert codes == [200, 200, 429]
    assert (refused.mimetype, refused.data) == ("text/plain", b"Too many requests\n")
    assert "Retry-After" in refused.headers


@pytest.mark.parametrize("lang", ["de", "en"])
def test_the_preferences_page_shows_the_feed(client, db, settings, world, clock, lang):
    sid = world["subscribers"]["all"]
    db.update_subscriber(sid, language=lang)
    row = db.get_subscriber(sid)
    manage = tokens.make_token(
        settings.secret_key, tokens.MANAGE, sid, row["link_nonce"], now=clock()
    )
    page = client.get(f"/preferences/{manage}").get_data(as_text=True)
    links = tokens.calendar_links(settings, sid, row["link_nonce"])
    heading = {"de": "Wartungen in deinem Kalender", "en": "Maintenance in your calendar"}[lang]
    assert heading in page
    assert f'href="{links["webcal"]}"' in page and f'href="{links["https"]}"' in page
    # Not for a subscription that has no feed.
    subscriptions.unsubscribe(db, sid, clock(), "page")
    page = client.get(f"/preferences/{manage}").get_data(as_text=True)
    assert "<html lang=" in page and "/calendar/" not in page
