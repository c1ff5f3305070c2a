"""Review mode in the ops console: the queue, editing both languages, approve, discard, and the
timeout that sends whatever nobody reviewed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from notifier import jobs
from notifier.feed import parse_feed
from notifier.notifications import notify_changes, release_reviews
from notifier.poller import ingest

from .helpers import add_subscriber, atom
from .test_admin_helpers import (  # noqa: F401  (fixtures)
    admin_client,
    admin_settings,
    audit_rows,
    deliveries,
    mail_through_fake_sendgrid,
    post,
    received,
)

EDITS = {
    "de-title": "SMS in der EU verzögert",
    "de-summary": "SMS in der EU kommen gerade verspätet an. Wir sind dran.",
    "de-text": "Wir untersuchen Verzögerungen bei der SMS-Zustellung.",
    "de-qa-0-q": "Gehen SMS verloren?",
    "de-qa-0-a": "Nein, sie kommen nur später an.",
    "en-title": "",
    "en-summary": "",
    "en-text": "",
}


@pytest.fixture
def pending(db, settings, clock):
    """One incident notification waiting for review, and two subscribers."""
    add_subscriber(db, "anna@example.de", now=clock(), language="de")
    add_subscriber(db, "ben@example.com", now=clock(), language="en")
    feed_id = db.ensure_feed("https://status.example.com/history.atom", clock())["id"]
    t0 = clock() - timedelta(minutes=5)
    old = {
        "key": "old000000001",
        "title": "Old",
        "updates": [(t0 - timedelta(days=9), "Resolved", "Done.")],
    }
    ingest(db, feed_id, parse_feed(atom([old])), clock())  # the silent baseline
    new = {
        "key": "sms000000001",
        "title": "Delayed SMS delivery",
        "updates": [(t0, "Investigating", "We are looking into SMS delays.")],
    }
    ingest(db, feed_id, parse_feed(atom([new, old])), clock())
    [nid] = notify_changes(db, replace(settings, review_mode=True), clock())
    return nid


def test_the_queue_lists_what_waits_with_its_deadline(admin, pending, clock):
    page = admin.get("/admin/review").text
    assert "Delayed SMS delivery" in page
    assert "2026-11-26 12:15:00 UTC" in page  # detected at 12:00, 15 minutes to review
    assert "in 15 min" in page
    assert f'href="/admin/review/{pending}"' in page
    assert "Notifications waiting for review: 1" in admin.get("/admin/").text


def test_ops_edit_both_languages_and_it_still_waits(admin, db, pending):
    response = post(admin, f"/admin/review/{pending}", {"action": "save", **EDITS})
    assert response.headers["Location"] == f"/admin/review/{pending}"
    notification = db.get_notification(pending)
    assert notification["content"]["overrides"] == {
        "de": {
            "title": "SMS in der EU verzögert",
            "summary": "SMS in der EU kommen gerade verspätet an. Wir sind dran.",
            "text": "Wir untersuchen Verzögerungen bei der SMS-Zustellung.",
            "qa": [{"q": "Gehen SMS verloren?", "a": "Nein, sie kommen nur später an."}],
        }
    }
    assert notification["review_state"] == "pending"
    assert deliveries(db) == []
    page = admin.get(f"/admin/review/{pending}").text
    assert 'value="SMS in der EU verzögert"' in page
    assert "[Untersuchung läuft] Sinch: SMS in der EU verzögert" in page  # the preview
    assert "[Investigating] Sinch: Delayed SMS delivery" in page
    assert audit_rows(db)[-1] == ("admin", "review.edit", f"notification:{pending}", None)


def test_a_question_row_can_be_added_before_approving(admin, db, pending):
    response = post(admin, f"/admin/review/{pending}", {"action": "qa-add:en"})
    assert response.headers["Location"] == f"/admin/review/{pending}#en-qa-0"
    assert db.get_notification(pending)["content"]["overrides"]["en"]["qa"] == [{"q": "", "a": ""}]
    # An unanswered question can be saved, not approved.
    half = {"en-qa-0-q": "Is my data safe?", "en-qa-0-a": ""}
    assert post(admin, f"/admin/review/{pending}", {"action": "save", **half}).status_code == 303
    response = post(admin, f"/admin/review/{pending}", {"action": "approve", **half})
    assert response.status_code == 400
    assert "Each question needs an answer." in response.text
    assert db.get_notification(pending)["review_state"] == "pending"


def test_approve_sends_the_edited_texts(admin, db, pending, mail, app):
    response = post(admin, f"/admin/review/{pending}", {"action": "approve", **EDITS})
    assert response.headers["Location"] == f"/admin/notifications/{pending}"
    notification = db.get_notification(pending)
    assert (notification["review_state"], notification["reviewed_by"]) == ("approved", "admin")
    assert deliveries(db) == [
        (pending, "anna@example.de", "de", "pending", None),
        (pending, "ben@example.com", "en", "pending", None),
    ]
    jobs.dispatch(app)
    assert received(mail) == [
        ("anna@example.de", "[Untersuchung läuft] Sinch: SMS in der EU verzögert"),
        ("ben@example.com", "[Investigating] Sinch: Delayed SMS delivery"),
    ]
    german = next(r for r in mail.accepted_requests() if "Untersuchung" in r.body["subject"])
    text = german.body["content"][0]["value"]
    assert "Wir untersuchen Verzögerungen bei der SMS-Zustellung." in text
    assert "Nein, sie kommen nur später an." in text
    assert audit_rows(db)[-1] == (
        "admin",
        "review.approve",
        f"notification:{pending}",
        {"recipients": 2},
    )


def test_discard_sends_nothing_ever(admin, db, pending, clock):
    response = post(admin, f"/admin/review/{pending}", {"action": "discard"})
    assert response.headers["Location"] == "/admin/review"
    clock.advance(minutes=30)
    assert release_reviews(db, clock()) == []
    assert db.get_notification(pending)["review_state"] == "discarded"
    assert deliveries(db) == []
    assert "Nothing waits for review." in admin.get("/admin/review").text


def test_an_unreviewed_notification_goes_out_unchanged_after_the_timeout(
    admin, db, pending, clock, mail, app
):
    clock.advance(minutes=14)
    assert release_reviews(db, clock()) == []
    clock.advance(minutes=1)
    assert release_reviews(db, clock()) == [pending]  # what the worker runs every minute
    jobs.dispatch(app)
    assert received(mail) == [
        ("anna@example.de", "[Untersuchung läuft] Sinch: Delayed SMS delivery"),
        ("ben@example.com", "[Investigating] Sinch: Delayed SMS delivery"),
    ]
    assert "Nothing waits for review." in admin.get("/admin/review").text
    ledger = admin.get(f"/admin/notifications/{pending}").text
    assert "Sent unchanged after the review time" in ledger
    # Approving it late changes nothing and sends nothing twice.
    response = post(admin, f"/admin/review/{pending}", {"action": "approve", **EDITS})
    assert response.headers["Location"] == f"/admin/notifications/{pending}"
    assert "overrides" not in db.get_notification(pending)["content"]
    assert [d[3] for d in deliveries(db)] == ["sent", "sent"]


def test_a_line_break_in_a_title_is_refused_and_not_saved(admin, db, pending):
    edits = {**EDITS, "de-title": "SMS\r\nBcc: victim@example.com"}
    response = post(admin, f"/admin/review/{pending}", {"action": "approve", **edits})
    assert response.status_code == 400
    assert '<p class="field-error" id="de-title-error">Must be one line' in response.text
    notification = db.get_notification(pending)
    assert (notification["review_state"], "overrides" in notification["content"]) == (
        "pending",
        False,
    )
    assert deliveries(db) == []
