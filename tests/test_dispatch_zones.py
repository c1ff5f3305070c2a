"""Requests that don't multiply with time zones (issue 14, item 2), against the fake SendGrid.

160 readers: 40 zones x 2 languages x 2 wordings ("since our last email" or a first mail).
Before issue 14 dispatch rendered per (language, zone, wording) and sent 160 requests; now
one rendering per (language, wording) carries every zone's times as substitutions: 4 requests,
and each reader still gets, byte for byte, the mail rendered for their zone. With
SEND_BATCH_SIZE=25, 80 readers of one language and wording in 40 zones take 4 requests (the
claim takes one request's worth of rows at a time), where they took 40.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from notifier.delivery.mailer import apply_substitutions
from notifier.render import PLACEHOLDERS, SharedEmail, render_email

from .helpers import add_subscriber, dispatched_envelope, table
from .test_dispatch import CONTENT, dispatcher, without_tokens

ZONES = [
    "UTC", "Europe/Berlin", "Europe/London", "Europe/Paris", "Europe/Helsinki", "Europe/Moscow",
    "Atlantic/Azores", "Africa/Lagos", "Africa/Johannesburg", "Africa/Cairo", "Asia/Dubai",
    "Asia/Tehran", "Asia/Karachi", "Asia/Kolkata", "Asia/Calcutta", "Asia/Kathmandu",
    "Asia/Jakarta", "Asia/Shanghai", "Asia/Singapore", "Asia/Seoul", "Asia/Tokyo",
    "Australia/Perth", "Australia/Adelaide", "Australia/Sydney", "Australia/Lord_Howe",
    "Pacific/Auckland", "Pacific/Chatham", "Pacific/Kiritimati", "Pacific/Honolulu",
    "America/Anchorage", "America/Los_Angeles", "America/Phoenix", "America/Denver",
    "America/Chicago", "America/Mexico_City", "America/New_York", "America/Bogota",
    "America/St_Johns", "America/Argentina/Buenos_Aires", "Etc/GMT+12",
]  # fmt: skip


@pytest.fixture
def sg_settings(settings, sendgrid):
    return replace(
        settings,
        email_backend="sendgrid",
        sendgrid_api_key=sendgrid.api_key,
        sendgrid_api_host=sendgrid.base_url,
        sendgrid_timeout_seconds=2.0,
        mail_from="Sinch Status <status@sinch.example>",
        list_id="Sinch status <status.sinch.example>",
    )


def _incident_notifications(db, now) -> tuple[int, int]:
    """(earlier, current): two notifications about one incident, the current one fanned out."""
    feed = db._query_one(
        "INSERT INTO feeds (url, created_at) VALUES (?, ?) RETURNING id", ["https://f", now]
    )["id"]
    incident = db._query_one(
        "INSERT INTO incidents (feed_id, key, kind, title, link, first_seen_at, last_changed_at) "
        "VALUES (?, 'abc123', 'incident', 'T', 'https://l', ?, ?) RETURNING id",
        [feed, now, now],
    )["id"]
    earlier, current = (
        db.create_notification(
            "incident",
            CONTENT,
            now,
            now + timedelta(hours=24),
            feed_id=feed,
            incident_id=incident,
            audience={},
        )
        for _ in range(2)
    )
    return earlier, current


def test_readers_in_forty_zones_share_one_request_per_language_and_wording(
    db, sg_settings, clock, sendgrid
):
    now = clock()
    earlier, current = _incident_notifications(db, now)
    readers = {}  # subscriber id -> (address, language, zone, mailed before)
    for lang in ("de", "en"):
        for index, zone in enumerate(ZONES):
            for again in (False, True):
                address = f"{lang}-{index:02d}-{'again' if again else 'first'}@example.com"
                sid = add_subscriber(db, address, now=now, language=lang, timezone=zone)
                readers[sid] = (address, lang, zone, again)
                if again:  # they got the earlier mail about this incident
                    db._execute(
                        "INSERT INTO deliveries (notification_id, subscriber_id, email, language, "
                        "timezone, state, next_attempt_at, created_at, updated_at) "
                        "VALUES (?, ?, ?, ?, ?, 'sent', ?, ?, ?)",
                        [earlier, sid, address, lang, zone, now, now, now],
                    )
    db.fan_out(current, now)

    stats = dispatcher(db, sg_settings, clock).run()

    assert (stats.requests, stats.sent, stats.failed) == (4, 160, 0)
    assert all(r.status == 202 for r in sendgrid.requests)
    by_address = {a: (sid, lang, zone, again) for sid, (a, lang, zone, again) in readers.items()}
    shape = []
    for request in sendgrid.requests:
        people = [by_address[p["to"][0]["email"]] for p in request.body["personalizations"]]
        # One language and one wording per request, readers of many zones in it.
        assert len({(lang, again) for _, lang, _, again in people}) == 1
        shape.append((people[0][1], people[0][3], len(people), len({z for _, _, z, _ in people})))
    assert sorted(shape) == [
        ("de", False, 40, 40), ("de", True, 40, 40), ("en", False, 40, 40), ("en", True, 40, 40),
    ]  # fmt: skip

    rows = {d["email"]: d for d in table(db, "deliveries") if d["notification_id"] == current}
    base = sg_settings.public_base_url
    for address in (
        "de-13-again@example.com",  # Asia/Kolkata: +05:30
        "en-37-first@example.com",  # America/St_Johns: NST/NDT, -03:30
        "en-26-again@example.com",  # Pacific/Chatham: +13:45, the next day
    ):
        sid, lang, zone, again = by_address[address]
        [request] = [
            r.body
            for r in sendgrid.requests
            if any(p["to"][0]["email"] == address for p in r.body["personalizations"])
        ]
        [personal] = [p for p in request["personalizations"] if p["to"][0]["email"] == address]
        mail = SharedEmail(CONTENT, lang, mailed_before=again).for_zone(zone)
        assert mail.group == ("shared", 0)
        nonce = db._scalar("SELECT link_nonce FROM subscribers WHERE id = ?", [sid])
        assert without_tokens(personal, sg_settings, (sid, nonce)) == {
            "to": [{"email": address}],
            "substitutions": {
                "-preferences_url-": f"{base}/preferences/<token>",
                "-unsubscribe_url-": f"{base}/unsubscribe/<token>",
                **mail.substitutions,
            },
            "headers": {"List-Unsubscribe": f"<{base}/unsubscribe/one-click/<token>>"},
            "custom_args": {
                "delivery_id": str(rows[address]["id"]),
                "notification_id": str(current),
            },
        }
        assert {k: v for k, v in request.items() if k != "personalizations"} == (
            dispatched_envelope(mail.email, "incident")
        )
        # What the reader gets is what render_email renders for their zone and wording.
        subs = personal["substitutions"]
        direct = render_email(CONTENT, lang, zone, mailed_before=again)
        got = [apply_substitutions(request["subject"], subs)]
        got += [apply_substitutions(part["value"], subs) for part in request["content"]]
        assert got == [
            apply_substitutions(p, subs) for p in (direct.subject, direct.text, direct.html)
        ]
        assert not any(key in got[1] + got[2] for key in PLACEHOLDERS.values())

    # A few of the times exactly as each reader reads them.
    mails = {
        a: apply_substitutions(r.body["content"][0]["value"], p["substitutions"])
        for r in sendgrid.requests
        for p in r.body["personalizations"]
        for a in [p["to"][0]["email"]]
    }
    assert "seit 26. November 2026, 16:30 IST" in mails["de-13-again@example.com"]
    assert "since November 26, 2026, 7:30 AM NST" in mails["en-37-first@example.com"]
    assert "since November 27, 2026, 12:45 AM UTC+13:45" in mails["en-26-again@example.com"]


def test_a_batch_is_filled_with_readers_of_any_zone(db, sg_settings, clock, sendgrid):
    now = clock()
    settings = replace(sg_settings, send_batch_size=25)
    for index, zone in enumerate(ZONES * 2):
        add_subscriber(db, f"r{index:02d}@example.com", now=now, language="en", timezone=zone)
    nid = db.create_notification("incident", CONTENT, now, now + timedelta(hours=24), audience={})
    db.fan_out(nid, now)

    stats = dispatcher(db, settings, clock).run()

    assert (stats.requests, stats.sent, stats.failed) == (4, 80, 0)
    # Requests after the first are in flight together (SEND_CONCURRENCY): any arrival order.
    sizes = sorted(len(r.body["personalizations"]) for r in sendgrid.requests)
    assert sizes == [5, 25, 25, 25]
    assert len({r.body["content"][0]["value"] for r in sendgrid.requests}) == 1


def test_a_reader_in_an_unknown_zone_fails_alone_and_broken_content_fails_its_rows(
    db, sg_settings, clock, sendgrid
):
    now = clock()
    add_subscriber(db, "berlin@example.com", now=now, language="de", timezone="Europe/Berlin")
    add_subscriber(db, "mars@example.com", now=now, language="de", timezone="Mars/Olympus")
    nid = db.create_notification("incident", CONTENT, now, now + timedelta(hours=24), audience={})
    db.fan_out(nid, now)
    broken = {**CONTENT, "updates": []}
    bad = db.create_notification("incident", broken, now, now + timedelta(hours=24), audience={})
    db.fan_out(bad, now)

    stats = dispatcher(db, sg_settings, clock).run()

    assert (stats.requests, stats.sent, stats.failed) == (1, 1, 3)
    assert sorted(
        (d["notification_id"], d["email"], d["state"], d["reason"]) for d in table(db, "deliveries")
    ) == [
        (nid, "berlin@example.com", "sent", None),
        (nid, "mars@example.com", "failed",
         "render error: ValueError: unknown time zone 'Mars/Olympus'"),
        (bad, "berlin@example.com", "failed",
         "render error: ValueError: incident content has no updates"),
        (bad, "mars@example.com", "failed",
         "render error: ValueError: unknown time zone 'Mars/Olympus'"),
    ]  # fmt: skip


def test_a_request_of_one_zone_has_its_times_filled_in_and_no_zone_substitutions(
    db, sg_settings, clock, sendgrid
):
    """Claims come sorted by zone: with few zones nearly every request holds one zone. Its
    times are then filled into the content (SharedEmail.filled), so each personalization
    carries its links only; a request of two zones still carries them per recipient."""
    now = clock()
    settings = replace(sg_settings, send_batch_size=5, send_concurrency=1)
    readers = {}
    for index, zone in enumerate(["Europe/Berlin"] * 6 + ["UTC"] * 4):
        address = f"r{index}@example.com"
        readers[address] = (
            add_subscriber(db, address, now=now, language="de", timezone=zone),
            zone,
        )
    nid = db.create_notification("incident", CONTENT, now, now + timedelta(hours=24), audience={})
    db.fan_out(nid, now)

    stats = dispatcher(db, settings, clock).run()

    assert (stats.requests, stats.sent, stats.failed) == (2, 10, 0)
    one_zone, two_zones = (r.body for r in sendgrid.requests)
    assert [p["to"][0]["email"] for p in one_zone["personalizations"]] == [
        f"r{i}@example.com" for i in range(5)
    ]
    assert [p["to"][0]["email"] for p in two_zones["personalizations"]] == [
        f"r{i}@example.com" for i in range(5, 10)
    ]
    base = sg_settings.public_base_url
    links = {
        "-preferences_url-": f"{base}/preferences/<token>",
        "-unsubscribe_url-": f"{base}/unsubscribe/<token>",
    }
    rows = {d["email"]: d for d in table(db, "deliveries")}
    berlin = render_email(CONTENT, "de", "Europe/Berlin")
    assert {k: v for k, v in one_zone.items() if k != "personalizations"} == (
        dispatched_envelope(berlin, "incident")
    )
    shared = SharedEmail(CONTENT, "de")
    assert {k: v for k, v in two_zones.items() if k != "personalizations"} == (
        dispatched_envelope(shared.for_zone("UTC").email, "incident")
    )
    for request, zoned in ((one_zone, False), (two_zones, True)):
        for personal in request["personalizations"]:
            address = personal["to"][0]["email"]
            sid, zone = readers[address]
            nonce = db._scalar("SELECT link_nonce FROM subscribers WHERE id = ?", [sid])
            zone_subs = shared.for_zone(zone).substitutions if zoned else {}
            assert without_tokens(personal, sg_settings, (sid, nonce)) == {
                "to": [{"email": address}],
                "substitutions": {**links, **zone_subs},
                "headers": {"List-Unsubscribe": f"<{base}/unsubscribe/one-click/<token>>"},
                "custom_args": {
                    "delivery_id": str(rows[address]["id"]),
                    "notification_id": str(nid),
                },
            }
            # Either way the reader gets what render_email renders for their zone.
            subs = personal["substitutions"]
            direct = render_email(CONTENT, "de", zone)
            got = [apply_substitutions(request["subject"], subs)]
            got += [apply_substitutions(part["value"], subs) for part in request["content"]]
            assert got == [
                apply_substitutions(p, subs) for p in (direct.subject, direct.text, direct.html)
            ]
