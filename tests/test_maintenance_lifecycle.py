"""One maintenance, the whole way (issue 11): announced, moved, reminded of, cancelled.

The four parts of the issue meet here, each through its real path: the poller's ingest and the
JSON API's answer record the window changes, notify_changes and the reminder job queue the
mails, the dispatcher sends them with the official library to the fake SendGrid, and every
mail carries the calendar invite of its state. Each reader gets exactly four mails, each the
same as render_email renders for their language and zone, and the calendar feed ends with the
cancelled event.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import timedelta

import icalendar

from notifier import calendar
from notifier.delivery.mailer import apply_substitutions
from notifier.enrich import apply_windows
from notifier.feed import parse_feed
from notifier.notifications import notify_changes
from notifier.poller import ingest
from notifier.reminders import queue_reminders
from notifier.render import render_email

from .feedgen import Page, maintenance, render, scheduled_maintenances_json, utc
from .helpers import add_subscriber
from .test_admin_helpers import admin_settings, login  # noqa: F401  (fixture)
from .test_dispatch import dispatcher, sg_settings  # noqa: F401  (fixture)

PAGE = Page()
FEED_URL = f"{PAGE.url}/history.atom"
KEY = "mnt00000life"
W1 = (utc(2026, 12, 5, 4, 0), utc(2026, 12, 5, 6, 0))
W2 = (utc(2026, 12, 8, 4, 0), utc(2026, 12, 8, 6, 0))
M = maintenance(KEY, "Voice platform upgrade", W1, utc(2026, 11, 26, 9, 0), "We will upgrade.")
DONE = maintenance(
    "mnt00000old3", "Old maintenance", (utc(2026, 11, 1, 4), utc(2026, 11, 1, 5)),
    utc(2026, 10, 30, 9, 0), "Done long ago.",
)  # fmt: skip
READERS = {
    "de@example.com": ("de", "Europe/Berlin"),
    "en@example.com": ("en", "America/New_York"),
}


def poll(db, feed_id, incidents, now):
    body = render("atom", PAGE, incidents)
    return ingest(db, feed_id, parse_feed(body), now, page_url=PAGE.url)


def mails(db, sendgrid, settings, seen: int) -> dict[str, list[tuple]]:
    """Per reader, the mails sent since request number `seen`: (subject, the invite's UID,
    SEQUENCE, STATUS, start, end); each checked whole against render_email and the calendar
    module first."""
    got: dict[str, list[tuple]] = {address: [] for address in READERS}
    for request in sendgrid.requests[seen:]:
        assert request.status == 202
        body = request.body
        nid = int(body["personalizations"][0]["custom_args"]["notification_id"])
        content = db.get_notification(nid)["content"]
        [attachment] = body["attachments"]
        ics = base64.b64decode(attachment["content"])
        for personal in body["personalizations"]:
            address = personal["to"][0]["email"]
            lang, zone = READERS[address]
            subs = personal["substitutions"]
            direct = render_email(content, lang, zone)
            sent = [apply_substitutions(body["subject"], subs)]
            sent += [apply_substitutions(part["value"], subs) for part in body["content"]]
            assert sent == [
                apply_substitutions(p, subs) for p in (direct.subject, direct.text, direct.html)
            ]
            assert attachment == {
                "content": base64.b64encode(calendar.maintenance_event(content, lang)).decode(),
                "type": "text/calendar; method=PUBLISH; charset=UTF-8",
                "filename": "maintenance.ics",
                "disposition": "attachment",
            }
            [event] = icalendar.Calendar.from_ical(ics).walk("VEVENT")
            got[address].append(
                (
                    sent[0],
                    str(event["UID"]),
                    int(event["SEQUENCE"]),
                    str(event["STATUS"]),
                    event.decoded("DTSTART"),
                    event.decoded("DTEND"),
                )
            )
    return got


def test_announced_moved_reminded_cancelled_each_mail_once_with_its_invite(
    app,
    db,
    sg_settings,  # noqa: F811  (fixture from test_dispatch)
    clock,
    sendgrid,
):
    settings = replace(sg_settings, maintenance_reminder_minutes=(1440, 60))
    clock.current = utc(2026, 11, 26, 12, 0)
    feed_id = db.ensure_feed(FEED_URL, clock())["id"]
    poll(db, feed_id, [DONE], clock())  # the baseline: a page with history
    for address, (lang, zone) in READERS.items():
        add_subscriber(db, address, now=clock(), language=lang, timezone=zone)
    uid = f"maintenance-{KEY}@status.sinch.com"

    def step():
        notify_changes(db, settings, clock())
        queue_reminders(db, settings, clock())
        seen = len(sendgrid.requests)
        dispatcher(db, settings, clock).run()
        return mails(db, sendgrid, settings, seen)

    # Announced: the scheduled mail, invite version 0.
    clock.advance(minutes=5)
    poll(db, feed_id, [M, DONE], clock())
    assert step() == {
        "de@example.com": [
            (
                "[Geplant] Sinch: Voice platform upgrade "
                "(5. Dezember 2026, 05:00 – 07:00 MEZ)",
                uid, 0, "CONFIRMED", *W1,
            )
        ],
        "en@example.com": [
            (
                "[Scheduled] Sinch: Voice platform upgrade "
                "(December 4, 2026, 11:00 PM EST – December 5, 2026, 1:00 AM EST)",
                uid, 0, "CONFIRMED", *W1,
            )
        ],
    }  # fmt: skip

    # The banner moves three days on: rescheduled, version 1, the old and the new time.
    clock.advance(hours=2)
    poll(db, feed_id, [M.moved_to(*W2), DONE], clock())
    moved = step()
    assert [m[1:] for m in moved["de@example.com"]] == [(uid, 1, "CONFIRMED", *W2)]
    assert [m[1:] for m in moved["en@example.com"]] == [(uid, 1, "CONFIRMED", *W2)]
    assert moved["de@example.com"][0][0].startswith("[Wartung verschoben] Sinch: ")
    assert moved["en@example.com"][0][0].startswith("[Maintenance rescheduled] Sinch: ")

    # The old window's reminder moment passes: nothing; the new one's: the reminder.
    clock.current = W1[0] - timedelta(hours=24)
    assert step() == {address: [] for address in READERS}
    clock.current = W2[0] - timedelta(hours=24)
    reminded = step()
    assert [m[1:] for m in reminded["de@example.com"]] == [(uid, 1, "CONFIRMED", *W2)]
    assert reminded["de@example.com"][0][0].startswith("[Erinnerung] Sinch: ")
    assert reminded["en@example.com"][0][0].startswith("[Reminder] Sinch: ")

    # The JSON API stops listing it: cancelled, version 2, STATUS:CANCELLED.
    clock.advance(hours=3)
    listing = json.loads(
        scheduled_maintenances_json(PAGE, [(DONE, DONE.window, "completed")] + [
            (maintenance(f"mnt0000other{i}", "Other", W2, utc(2026, 11, 20), "x"), W2,
             "scheduled") for i in range(2)
        ])
    )  # fmt: skip
    # The API had listed it before (only then does its absence mean cancelled).
    apply_windows(
        db, feed_id, json.loads(scheduled_maintenances_json(PAGE, [(M, W2, "scheduled")])),
        clock() - timedelta(minutes=1), full=True,
    )  # fmt: skip
    apply_windows(db, feed_id, listing, clock(), full=True)
    cancelled = step()
    assert [m[1:] for m in cancelled["en@example.com"]] == [(uid, 2, "CANCELLED", *W2)]
    assert cancelled["de@example.com"][0][0].startswith("[Wartung abgesagt] Sinch: ")
    assert cancelled["en@example.com"][0][0].startswith("[Maintenance cancelled] Sinch: ")

    # No 1-hour reminder for a cancelled maintenance, and nothing more at all.
    clock.current = W2[0] - timedelta(hours=1)
    assert step() == {address: [] for address in READERS}
    assert db._scalar("SELECT COUNT(*) AS n FROM deliveries WHERE state <> 'sent'") == 0
    assert db._scalar("SELECT COUNT(*) AS n FROM deliveries") == 8

    # Ops see each of the four in the console: the ledger, its page and both previews.
    admin = app.test_client()
    assert login(admin).status_code == 303
    pages = ["/admin/", "/admin/notifications"]
    for nid in [r["id"] for r in db._query("SELECT id FROM notifications ORDER BY id")]:
        pages += [f"/admin/notifications/{nid}"]
        pages += [f"/admin/notifications/{nid}/preview/{lang}.html" for lang in ("de", "en")]
    assert [(page, admin.get(page).status_code) for page in pages] == [
        (page, 200) for page in pages
    ]
