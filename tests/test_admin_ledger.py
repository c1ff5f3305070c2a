"""The delivery ledger: counts and rows with attempts, resend (one, failed, expired) that
never reaches anyone who left, the pause switch, and the live progress endpoint."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from notifier import jobs, subscriptions
from notifier.announcements import normalize

from .helpers import table
from .test_admin_helpers import (  # noqa: F401  (fixtures)
    admin_client,
    admin_settings,
    audience_world,
    audit_rows,
    deliveries,
    login,
    mail_through_fake_sendgrid,
    post,
    received,
)

ANNOUNCEMENT = {
    "products": ["SMS (EU)"],
    "de": {"title": "Hinweis zu SMS", "intro": "Alles gut."},
    "en": {"title": "About SMS", "intro": "All good."},
}
REJECTED = {"de-voice@example.de", "en-all@example.com", "de-all@example.de"}


@pytest.fixture
def sent(db, clock):
    """An announcement to everyone (5 confirmed subscribers), queued; returns its notification."""
    people = audience_world(db, clock())
    content, audience = normalize(ANNOUNCEMENT)
    draft = db.save_announcement(content, audience, "admin", clock())
    nid, count = db.send_announcement(
        draft, content, audience, clock(), clock() + timedelta(hours=2)
    )
    assert count == 5
    return nid, people


@pytest.fixture
def failed(sent, mail, app):
    """Dispatched with three addresses refused by SendGrid (permanent 400s)."""
    mail.rejected_addresses = set(REJECTED)
    jobs.dispatch(app)
    mail.rejected_addresses = set()
    return sent


def states(db, nid) -> dict[str, str]:
    return {d[1]: d[3] for d in deliveries(db, nid)}


def test_the_ledger_shows_counts_rows_attempts_and_reasons(admin, db, failed):
    nid, _ = failed
    page = admin.get(f"/admin/notifications/{nid}").text
    counts = dict(re.findall(r'data-count="(\w+)">(\d+)<', page))
    assert counts == {
        "sent": "2",
        "pending": "0",
        "failed": "3",
        "expired": "0",
        "cancelled": "0",
        "total": "5",
    }
    rows = re.findall(r'<tr data-delivery="([^"]+)" data-state="(\w+)">', page)
    assert sorted(rows) == sorted(
        [(email, "failed") for email in REJECTED]
        + [("de-sms-eu@example.de", "sent"), ("en-sms-eu@example.com", "sent")]
    )
    assert "Does not contain a valid address." in page  # SendGrid's reason, per row
    message_id = db._query("SELECT message_id FROM deliveries WHERE state = 'sent'")[0]
    assert message_id["message_id"] in page
    assert 'data-resend="failed"' in page and "Resend all failed (3)" in page

    search = post(admin, f"/admin/notifications/{nid}", {"q": "VOICE", "state": "failed"}).text
    assert re.findall(r'<tr data-delivery="([^"]+)"', search) == ["de-voice@example.de"]
    assert "Matching rows: 1" in search
    sent_only = admin.get(f"/admin/notifications/{nid}?state=sent").text
    assert len(re.findall(r"<tr data-delivery=", sent_only)) == 2


def test_resend_failed_reaches_only_those_still_subscribed(admin, db, failed, mail, app, clock):
    nid, people = failed
    subscriptions.unsubscribe(db, people["de-voice@example.de"], clock(), "page")
    db.suppress_subscriber(people["en-all@example.com"], "bounce", clock())
    before = len(mail.accepted_requests())
    response = post(admin, f"/admin/notifications/{nid}/resend", {"which": "failed"})
    [resend] = [n for n in table(db, "notifications") if n["resend_of"] == nid]
    assert response.headers["Location"] == f"/admin/notifications/{resend['id']}"
    assert deliveries(db, resend["id"]) == [
        (resend["id"], "de-all@example.de", "de", "pending", None)
    ]
    jobs.dispatch(app)
    # The unsubscribe receipt goes out too; of the announcement, only one new mail.
    new_requests = [r for r in mail.accepted_requests()[before:] if "SMS" in r.body["subject"]]
    assert [p["to"][0]["email"] for r in new_requests for p in r.body["personalizations"]] == [
        "de-all@example.de"
    ]
    assert audit_rows(db)[-1] == (
        "admin",
        "resend",
        f"notification:{nid}",
        {"which": "failed", "new_notification": resend["id"], "deliveries": 1},
    )
    # Pressing it again sends nothing twice.
    again = post(admin, f"/admin/notifications/{nid}/resend", {"which": "failed"})
    assert again.headers["Location"] == f"/admin/notifications/{nid}"
    assert "Nothing to resend" in admin.get(again.headers["Location"]).text
    assert len([n for n in table(db, "notifications") if n["resend_of"] == nid]) == 1


def test_resend_one_row(admin, db, failed, mail, app):
    nid, _ = failed
    [row] = [d for d in table(db, "deliveries") if d["email"] == "de-voice@example.de"]
    response = post(
        admin, f"/admin/notifications/{nid}/resend", {"which": "one", "delivery_id": row["id"]}
    )
    new_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert deliveries(db, new_id) == [(new_id, "de-voice@example.de", "de", "pending", None)]
    jobs.dispatch(app)
    assert ("de-voice@example.de", "[Hinweis] SMS (EU): Hinweis zu SMS") in received(mail)
    assert states(db, nid)["de-voice@example.de"] == "failed"  # the original row stays as it was


def test_resend_expired_after_the_notification_went_stale(admin, db, sent, mail, app, clock):
    nid, people = sent
    clock.advance(hours=3)  # past expires_at: nothing goes out automatically
    stats = jobs.dispatch(app)
    assert login(admin).status_code == 303  # the session timed out meanwhile
    assert (stats.expired, received(mail)) == (5, [])
    assert set(states(db, nid).values()) == {"failed"}
    page = admin.get(f"/admin/notifications/{nid}").text
    assert 'data-count="expired">5<' in page and "Resend all expired (5)" in page
    # Since then, one address complained: it must not get the resend.
    db.suppress_subscriber(people["en-sms-eu@example.com"], "spam report", clock())
    response = post(admin, f"/admin/notifications/{nid}/resend", {"which": "expired"})
    new_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert [d[1] for d in deliveries(db, new_id)] == [
        "de-all@example.de",
        "de-sms-eu@example.de",
        "de-voice@example.de",
        "en-all@example.com",
    ]
    jobs.dispatch(app)
    assert [r[0] for r in received(mail)] == [
        "de-all@example.de",
        "de-sms-eu@example.de",
        "de-voice@example.de",
        "en-all@example.com",
    ]


def test_resend_with_a_bad_selection_is_refused(admin, db, failed):
    nid, _ = failed
    assert post(admin, f"/admin/notifications/{nid}/resend", {"which": "all"}).status_code == 400
    assert post(admin, f"/admin/notifications/{nid}/resend", {"which": "one"}).status_code == 400
    assert post(admin, "/admin/notifications/999/resend", {"which": "failed"}).status_code == 404


def test_pause_and_resume_sending(admin, db, sent, mail, app):
    nid, _ = sent
    response = post(admin, "/admin/sending/pause", {"reason": "Wrong text went out"})
    assert response.headers["Location"] == "/admin/"
    assert db.sending_paused() == "Wrong text went out (admin)"
    page = admin.get(f"/admin/notifications/{nid}").text
    assert "Sending is paused." in page and "Wrong text went out (admin)" in page
    stats = jobs.dispatch(app)
    assert (stats.halted, received(mail)) == ("sending paused: Wrong text went out (admin)", [])
    response = post(
        admin, "/admin/sending/resume", {"next": f"/admin/notifications/{nid}?state=sent"}
    )
    assert response.headers["Location"] == f"/admin/notifications/{nid}?state=sent"
    assert db.sending_paused() is None
    jobs.dispatch(app)
    assert len(received(mail)) == 5
    assert [r[1:] for r in audit_rows(db)[-2:]] == [
        ("sending.pause", None, {"reason": "Wrong text went out"}),
        ("sending.resume", None, {"was": "Wrong text went out (admin)"}),
    ]


def test_a_refused_api_key_shows_a_banner_until_ops_resume(admin, db, sent, mail, app):
    mail.auth_mode = 401
    jobs.dispatch(app)
    reason = db.sending_paused()
    assert reason.startswith("SendGrid refused the API key (HTTP 401)")
    page = admin.get("/admin/").text
    assert "Sending is paused." in page and "sending_paused" in page  # banner and alert
    assert [a["kind"] for a in db.open_alerts()] == ["sending_paused"]
    mail.auth_mode = None
    post(admin, "/admin/sending/resume")
    assert (db.sending_paused(), db.open_alerts()) == (None, [])
    jobs.dispatch(app)
    assert len(received(mail)) == 5
    assert "Sending is paused." not in admin.get("/admin/").text


def test_live_progress_follows_the_dispatch(admin, db, sent, mail, app):
    nid, _ = sent
    live = admin.get(f"/admin/live.json?ids={nid},999,x").json
    assert live == {
        "progress": {
            str(nid): {
                "id": nid,
                "sent": 0,
                "pending": 5,
                "failed": 0,
                "expired": 0,
                "cancelled": 0,
                "duplicates": 0,
                "total": 5,
            }
        },
        "paused": None,
        "review_pending": 0,
    }
    mail.rejected_addresses = {"de-all@example.de"}
    jobs.dispatch(app)
    progress = admin.get(f"/admin/live.json?ids={nid}").json["progress"][str(nid)]
    assert (progress["sent"], progress["failed"], progress["pending"]) == (4, 1, 0)


def test_rows_flag_possible_duplicates_and_show_the_webhook_event(admin, db, failed, clock):
    nid, _ = failed
    [row] = [d for d in table(db, "deliveries") if d["email"] == "de-sms-eu@example.de"]
    db._execute("UPDATE deliveries SET possible_duplicate = 1 WHERE id = ?", [row["id"]])
    db.record_provider_event(row["id"], "delivered", clock())
    page = admin.get(f"/admin/notifications/{nid}?subscriber={row['subscriber_id']}").text
    assert len(re.findall(r"<tr data-delivery=", page)) == 1
    cells = re.search(r'<tr data-delivery="de-sms-eu@example.de".*?</tr>', page, re.S).group(0)
    assert "possible duplicate" in cells
    assert "delivered" in cells and row["message_id"] in cells
    assert "Possibly sent twice: 1" in page
