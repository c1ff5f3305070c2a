"""End to end: feeds served over HTTP -> poll -> notifications -> dispatch -> fake SendGrid."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy

import pytest

from notifier import jobs
from notifier.delivery.mailer import apply_substitutions
from notifier.render import render_email

from .helpers import add_component, add_subscriber, atom, poll_and_mail_through_fakes
from .zone_bodies import zone_filled


@pytest.fixture
def world(app, settings, sendgrid, feed_server, clock):
    """An app polling one local feed and sending through the fake SendGrid."""
    url = feed_server.url("/history.atom")
    poll_and_mail_through_fakes(app, settings, sendgrid, url)
    return app, url


def serve(feed_server, entries):
    feed_server.set("/history.atom", atom(entries))


def cycle(app):
    """What the worker does: one poll (with notifications), then one dispatch run."""
    jobs.poll(app)
    return jobs.dispatch(app)


def mails(sendgrid, start: int = 0):
    """(address, subject) per accepted recipient, from request `start` on; a subject holding
    the reader's times is a substitution (issue 14), filled in here as SendGrid does."""
    out = []
    for request in sendgrid.requests[start:]:
        if request.status != 202:
            continue
        for p in request.body["personalizations"]:
            subject = apply_substitutions(request.body["subject"], p.get("substitutions") or {})
            out.append((p["to"][0]["email"], subject))
    return sorted(out)


def test_feed_changes_become_exactly_the_right_mails(world, db, sendgrid, feed_server, clock):
    app, _ = world
    t0 = clock() - timedelta(hours=1)
    at = lambda minutes: t0 + timedelta(minutes=minutes)  # noqa: E731
    add_subscriber(db, "anna@example.de", now=clock(), language="de")
    add_subscriber(db, "ben@example.com", now=clock(), language="en")
    add_subscriber(db, "maint-only@example.com", now=clock(), incidents=False)
    add_subscriber(db, "pending@example.com", now=clock(), state="pending")
    incident = {"key": "sms000000001", "title": "Delayed SMS delivery",
                "updates": [(at(0), "Investigating", "We are looking into delays.")]}  # fmt: skip
    old = {"key": "old000000001", "title": "Old", "updates": [(at(-900), "Resolved", "Done.")]}

    # 1. Snapshot 1: the silent baseline.
    serve(feed_server, [incident, old])
    stats = cycle(app)
    assert stats.requests == 0 and sendgrid.requests == []
    assert db.list_changes() == []

    # 2. Snapshot 2: a new update -> one mail per matching subscriber, in their language.
    incident["updates"].append((at(30), "Identified", "A faulty gateway is the cause."))
    serve(feed_server, [incident, old])
    clock.advance(minutes=1)
    cycle(app)
    assert mails(sendgrid) == [
        ("anna@example.de", "[Ursache gefunden] Sinch: Delayed SMS delivery"),
        ("ben@example.com", "[Identified] Sinch: Delayed SMS delivery"),
    ]
    german = zone_filled(sendgrid)["anna@example.de"]  # her times filled in (issue 14)
    [notification] = [db.get_notification(n["id"]) for n in db.recent_notifications()]
    expected = render_email(notification["content"], "de", "Europe/Berlin")
    assert german["content"] == [
        {"type": "text/plain", "value": expected.text},
        {"type": "text/html", "value": expected.html},
    ]
    assert "Originaltext der Statusseite" in expected.text
    assert "A faulty gateway is the cause." in expected.text
    assert german["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert german["personalizations"][0]["headers"]["List-Unsubscribe"].startswith(
        "<https://status-notify.example.com/unsubscribe/one-click/"
    )

    # 3. Snapshot 3: only a text edit of an existing update -> stored, no mail.
    sent_so_far = len(sendgrid.requests)
    incident["updates"][1] = (at(30), "Identified", "A faulty gateway is the cause. Fix soon.")
    serve(feed_server, [incident, old])
    clock.advance(minutes=1)
    cycle(app)
    assert len(sendgrid.requests) == sent_so_far
    texts = [u["text"] for u in db.incident_updates(notification["incident_id"])]
    assert texts[0] == "A faulty gateway is the cause. Fix soon."

    # 4. A maintenance lifecycle: scheduled, in progress, completed -> three mails each.
    window = (clock() + timedelta(days=1), clock() + timedelta(days=1, hours=2))
    scheduled = (clock() - timedelta(minutes=5), "Scheduled", "We will upgrade.")
    maintenance = {"key": "mnt000000001", "title": "Database upgrade", "window": window,
                   "updates": [scheduled]}  # fmt: skip
    subjects = []
    for status, text in (("In progress", "Started."), ("Completed", "Finished.")):
        serve(feed_server, [maintenance, incident, old])
        clock.advance(minutes=1)
        start = len(sendgrid.requests)
        cycle(app)
        subjects.append(mails(sendgrid, start))
        maintenance = {**maintenance, "window": None}
        maintenance["updates"] = [*maintenance["updates"], (clock(), status, text)]
    serve(feed_server, [maintenance, incident, old])
    clock.advance(minutes=1)
    start = len(sendgrid.requests)
    cycle(app)
    subjects.append(mails(sendgrid, start))
    recipients = ["anna@example.de", "ben@example.com", "maint-only@example.com"]
    assert [[address for address, _ in batch] for batch in subjects] == [recipients] * 3
    assert [[subject.split("]")[0] + "]" for _, subject in batch] for batch in subjects] == [
        ["[Geplant]", "[Scheduled]", "[Scheduled]"],
        ["[Wartung läuft]", "[In progress]", "[In progress]"],
        ["[Abgeschlossen]", "[Completed]", "[Completed]"],
    ]


def test_known_components_reach_only_their_subscribers(world, db, sendgrid, feed_server, clock):
    app, url = world
    feed_id = db.ensure_feed(url, clock())["id"]
    add_component(db, feed_id, "sms", "SMS (EU)", clock())
    add_component(db, feed_id, "voice", "Voice", clock())
    add_subscriber(db, "sms@example.com", now=clock(), components=["sms"])
    add_subscriber(db, "voice@example.com", now=clock(), components=["voice"])
    entry = {"key": "voice0000001", "title": "Calls drop",
             "updates": [(clock() - timedelta(minutes=9), "Resolved", "Old.")]}  # fmt: skip
    serve(feed_server, [entry])
    cycle(app)
    entry["key"] = "voice0000002"
    entry["updates"] = [(clock(), "Investigating", "Calls drop in Europe.")]
    feed_server.set(
        "/api/v2/incidents.json",
        '{"incidents": [{"id": "voice0000002", "impact": "major", '
        '"components": [{"id": "voice", "name": "Voice"}]}]}',
        headers={"Content-Type": "application/json"},
    )
    serve(feed_server, [entry])
    clock.advance(minutes=1)
    cycle(app)
    assert mails(sendgrid) == [("voice@example.com", "[Investigating] Voice: Calls drop")]


def test_outbox_backend_writes_one_eml_per_recipient(app, db, settings, feed_server, clock):
    url = feed_server.url("/history.atom")
    app.extensions["settings"] = replace(settings, feed_urls=(url,), email_backend="outbox")
    add_subscriber(db, "anna@example.de", now=clock(), language="de")
    entry = {"key": "sms000000001", "title": "Delays",
             "updates": [(clock() - timedelta(hours=2), "Resolved", "Old")]}  # fmt: skip
    serve(feed_server, [entry])
    cycle(app)
    entry["updates"] = [*entry["updates"], (clock(), "Postmortem", "Root cause: a bad deploy.")]
    serve(feed_server, [entry])
    cycle(app)
    [path] = sorted(settings.outbox_path.glob("*.eml"))
    mail = message_from_bytes(path.read_bytes(), policy=default_policy)
    assert mail["To"] == "anna@example.de"
    assert mail["Subject"] == "[Nachbetrachtung] Sinch: Delays"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    one_click = mail["List-Unsubscribe"].strip("<>")
    text = mail.get_body(("plain",)).get_content()
    assert one_click.startswith("https://status-notify.example.com/unsubscribe/one-click/")
    assert "-unsubscribe_url-" not in text and "https://status-notify.example.com/" in text
