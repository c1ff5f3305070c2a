"""Subscribers in the ops console: search, the consent record, export, erase, suppress and
unsuppress; all audit-logged by id, never by address."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from notifier import subscriptions

from .helpers import add_subscriber, table
from .test_admin_helpers import (  # noqa: F401  (fixtures)
    admin_client,
    admin_settings,
    audience_world,
    audit_rows,
    post,
)
from .test_subscribe_helpers import confirmed_subscriber


def listed(page: str) -> list[str]:
    return re.findall(r'<a href="/admin/subscribers/\d+">([^<]+)</a>', page)


def test_search_by_address_and_state(admin, db, clock):
    audience_world(db, clock())

    def search(**form):  # a POST: an address in a URL would end up in the access log
        return listed(post(admin, "/admin/subscribers", form).text)

    assert search(q="SMS-EU") == ["en-sms-eu@example.com", "de-sms-eu@example.de"]
    assert search(q="example.de", state="confirmed") == [
        "de-all@example.de",
        "de-voice@example.de",
        "de-sms-eu@example.de",
    ]
    assert search(q="%") == []  # % is no wildcard
    assert search(q="_") == []  # nor is _
    assert len(listed(admin.get("/admin/subscribers").text)) == 8
    assert listed(admin.get("/admin/subscribers?state=suppressed").text) == [
        "suppressed@example.com"
    ]


def test_search_results_page_without_the_term_in_any_url(admin, db, clock):
    from .helpers import add_subscriber

    for i in range(55):
        add_subscriber(db, f"bulk{i:02d}@example.org", now=clock())
    first = post(admin, "/admin/subscribers", {"q": "bulk"}).text
    assert listed(first)[0] == "bulk54@example.org" and len(listed(first)) == 50
    assert "bulk" not in "".join(re.findall(r'(?:href|action)="([^"]*)"', first))
    assert '<input type="hidden" name="q" value="bulk">' in first
    second = post(admin, "/admin/subscribers", {"q": "bulk", "offset": "50"}).text
    assert listed(second) == [f"bulk{i:02d}@example.org" for i in range(4, -1, -1)]


def test_a_subscriber_page_shows_the_consent_record(app, admin, db, settings, clock):
    public = app.test_client()
    row = confirmed_subscriber(public, settings, db, clock, "ada@example.com")
    page = admin.get(f"/admin/subscribers/{row['id']}").text
    assert "ada@example.com" in page
    [consent] = db.list_consents(row["id"])
    assert consent["signup_ip"] == "198.51.100.7"
    assert "198.51.100.7" in page and "2026-11" in page  # the IP and the text version
    assert "Confirmed" in page


def test_export_downloads_everything_and_is_audited(admin, db, clock):
    ids = audience_world(db, clock())
    sid = ids["de-sms-eu@example.de"]
    response = post(admin, f"/admin/subscribers/{sid}/export")
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="subscriber-{sid}.json"'
    )
    data = json.loads(response.data)
    assert data["subscriber"]["email"] == "de-sms-eu@example.de"
    assert data["components"] == [{"id": "sms-eu", "name": "SMS (EU)"}]
    assert set(data) == {
        "exported_at",
        "subscriber",
        "components",
        "consents",
        "confirmation_mails_sent_at",
        "deliveries",
    }
    assert audit_rows(db)[-1] == ("admin", "subscriber.export", f"subscriber:{sid}", None)


def test_erase_needs_the_tick_and_then_removes_everything(admin, db, clock):
    ids = audience_world(db, clock())
    sid = ids["de-voice@example.de"]
    response = post(admin, f"/admin/subscribers/{sid}/erase")
    assert response.headers["Location"] == f"/admin/subscribers/{sid}"
    assert db.get_subscriber(sid) is not None
    response = post(admin, f"/admin/subscribers/{sid}/erase", {"confirm": "yes"})
    assert response.headers["Location"] == "/admin/subscribers"
    assert db.get_subscriber(sid) is None
    assert [
        r for r in table(db, "subscriber_components", "subscriber_id") if r["subscriber_id"] == sid
    ] == []
    assert admin.get(f"/admin/subscribers/{sid}").status_code == 404
    # The audit log names the id only: no copy of the erased address stays behind.
    assert audit_rows(db)[-1] == ("admin", "subscriber.erase", f"subscriber:{sid}", None)
    assert "de-voice" not in json.dumps(table(db, "audit_log"), default=str)


def test_suppress_stops_waiting_mail_and_needs_a_reason(admin, db, clock):
    sid = add_subscriber(db, "noc@example.com", now=clock())
    nid = db.create_notification(
        "announcement", {"kind": "announcement"}, clock(), clock() + timedelta(hours=1)
    )
    db.fan_out(nid, clock())
    response = post(admin, f"/admin/subscribers/{sid}/suppress", {"reason": "  "})
    assert db.get_subscriber(sid)["state"] == "confirmed"
    response = post(admin, f"/admin/subscribers/{sid}/suppress", {"reason": "asked by phone"})
    assert response.headers["Location"] == f"/admin/subscribers/{sid}"
    row = db.get_subscriber(sid)
    assert (row["state"], row["suppressed_reason"], row["suppressed_at"]) == (
        "suppressed",
        "ops: asked by phone",
        clock(),
    )
    assert [(d["state"], d["reason"]) for d in table(db, "deliveries")] == [
        ("suppressed", "ops: asked by phone")
    ]
    assert audit_rows(db)[-1] == (
        "admin",
        "subscriber.suppress",
        f"subscriber:{sid}",
        {"cancelled_deliveries": 1, "previous_state": "confirmed", "reason": "asked by phone"},
    )


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ("confirmed", "confirmed"),  # opted in: back to getting mail
        ("unsubscribed", "unsubscribed"),  # had left before it bounced: stays out
        ("pending", "pending"),  # never confirmed: needs a fresh sign-up
    ],
)
def test_unsuppress_returns_to_where_the_address_was(admin, db, clock, history, expected):
    sid = add_subscriber(db, "x@example.com", now=clock(), state="pending")
    if history in ("confirmed", "unsubscribed"):
        db.update_subscriber(sid, state="confirmed", confirmed_at=clock(), token_nonce=None)
    if history == "unsubscribed":
        clock.advance(minutes=1)
        subscriptions.unsubscribe(db, sid, clock(), "page")
    clock.advance(minutes=1)
    db.suppress_subscriber(sid, "bounce", clock())
    response = post(admin, f"/admin/subscribers/{sid}/unsuppress")
    assert response.headers["Location"] == f"/admin/subscribers/{sid}"
    row = db.get_subscriber(sid)
    assert (row["state"], row["suppressed_reason"], row["suppressed_at"]) == (expected, None, None)
    assert (row["token_nonce"] is not None) == (expected == "pending")  # a fresh sign-up works
    assert audit_rows(db)[-1] == (
        "admin",
        "subscriber.unsuppress",
        f"subscriber:{sid}",
        {"new_state": expected},
    )
    # Twice changes nothing more.
    post(admin, f"/admin/subscribers/{sid}/unsuppress")
    assert audit_rows(db)[-1][1] == "subscriber.unsuppress"
    assert len([r for r in audit_rows(db) if r[1] == "subscriber.unsuppress"]) == 1


def test_a_subscriber_page_shows_the_reminder_preference(admin, db, clock):
    on = add_subscriber(db, "on@example.com", now=clock())
    off = add_subscriber(db, "off@example.com", now=clock())
    db.update_subscriber(off, maintenance_reminders=False)
    no_maintenance = add_subscriber(db, "inc@example.com", now=clock(), maintenance=False)

    def shown(sid):
        page = admin.get(f"/admin/subscribers/{sid}").text
        return re.findall(r"<dt>Maintenance reminders</dt><dd>(\w+)</dd>", page)

    assert (shown(on), shown(off), shown(no_maintenance)) == (["on"], ["off"], [])
