"""Unsubscribe (page and RFC 8058 one-click), cancelled deliveries, the receipt, and undo."""

from __future__ import annotations

from datetime import timedelta

from notifier import tokens

from .test_subscribe_helpers import (
    confirm,
    confirmed_subscriber,
    form_tokens,
    link,
    personal_mails,
    post_button,
    signup,
    snapshot,
    subscriber,
)


def manage_token(settings, row, clock) -> str:
    return tokens.make_token(
        settings.secret_key, tokens.MANAGE, row["id"], row["link_nonce"], now=clock()
    )


def queue_incident_and_announcement(db, clock) -> list[int]:
    """Two pending deliveries for every confirmed subscriber, as the worker would make them."""
    now = clock()
    ids = []
    for kind in ("incident", "announcement"):
        nid = db.create_notification(kind, {"title": kind}, now, now + timedelta(hours=24))
        db.fan_out(nid, now)
        ids.append(nid)
    return ids


def test_unsubscribe_get_shows_a_button_and_changes_nothing(client, settings, db, clock):
    row = confirmed_subscriber(client, settings, db, clock)
    before = snapshot(db)
    for path in (
        f"/unsubscribe/{manage_token(settings, row, clock)}",
        f"/unsubscribe/one-click/{manage_token(settings, row, clock)}",
    ):
        response = client.get(path, follow_redirects=True)
        assert response.status_code == 200
        assert "Ja, abmelden" in response.get_data(as_text=True)
    assert snapshot(db) == before


def test_unsubscribe_page_post_stops_everything_and_queues_a_receipt(client, settings, db, clock):
    row = confirmed_subscriber(client, settings, db, clock)
    notifications = queue_incident_and_announcement(db, clock)
    clock.advance(hours=2)
    response = post_button(client, f"/unsubscribe/{manage_token(settings, row, clock)}")
    assert (response.status_code, response.headers["Location"]) == (303, "/unsubscribed")
    assert subscriber(db) == {
        **row,
        "state": "unsubscribed",
        "unsubscribed_at": clock(),
        "updated_at": clock(),
    }
    rows = db._query(
        "SELECT notification_id, state, reason, updated_at FROM deliveries "
        "WHERE notification_id IN (?, ?) ORDER BY id",
        notifications,
    )
    assert rows == [
        {
            "notification_id": nid,
            "state": "cancelled",
            "reason": "unsubscribed (page)",
            "updated_at": clock(),
        }
        for nid in notifications
    ]
    assert [(m["kind"], m["state"]) for m in personal_mails(db, "receipt")] == [
        ("receipt", "pending")
    ]
    assert db.list_consents(row["id"])[0]["withdrawn_at"] == clock()
    page = client.get("/unsubscribed").get_data(as_text=True)
    assert "<h1>You are unsubscribed</h1>" in page


def test_one_click_post_needs_no_cookie_or_csrf_and_answers_200(app, settings, db, clock):
    browser = app.test_client()
    row = confirmed_subscriber(browser, settings, db, clock)
    notifications = queue_incident_and_announcement(db, clock)
    provider = app.test_client()  # a mailbox provider's server: no session, no token
    response = provider.post(
        f"/unsubscribe/one-click/{manage_token(settings, row, clock)}",
        data={"List-Unsubscribe": "One-Click"},
    )
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "Du bist abgemeldet.\n"
    assert "Set-Cookie" not in response.headers
    assert subscriber(db)["state"] == "unsubscribed"
    states = db._query(
        "SELECT state, reason FROM deliveries WHERE notification_id IN (?, ?)", notifications
    )
    assert states == [{"state": "cancelled", "reason": "unsubscribed (one-click)"}] * 2
    assert len(personal_mails(db, "receipt")) == 1
    # A provider retrying the POST changes nothing and sends no second receipt.
    before = snapshot(db)
    assert provider.post(response.request.path).status_code == 200
    assert snapshot(db) == before


def test_one_click_with_a_bad_token_is_a_short_404(client, db):
    before = snapshot(db)
    response = client.post("/unsubscribe/one-click/forged-token")
    assert (response.status_code, response.get_data(as_text=True)) == (
        404,
        "This link is invalid or has expired.\n",
    )
    assert snapshot(db) == before


def test_unsubscribing_a_pending_sign_up_calls_it_off_without_a_receipt(
    client, settings, db, clock
):
    signup(client, clock)
    row = subscriber(db)
    confirm_path = link(settings, tokens.CONFIRM, row, clock())
    client.post(f"/unsubscribe/one-click/{manage_token(settings, row, clock)}")
    assert (subscriber(db)["state"], subscriber(db)["token_nonce"]) == ("unsubscribed", None)
    assert personal_mails(db, "receipt") == []
    assert [m["state"] for m in personal_mails(db, "confirmation")] == ["cancelled"]
    csrf = form_tokens(client)["csrf_token"]
    assert client.post(confirm_path, data={"csrf_token": csrf}).status_code == 404


def undo_path(settings, row, now) -> str:
    return link(settings, tokens.UNDO, row, now)


def test_undo_restores_the_subscription_without_a_new_opt_in(client, settings, db, clock):
    row = confirmed_subscriber(client, settings, db, clock)
    client.post(f"/unsubscribe/one-click/{manage_token(settings, row, clock)}")
    path = undo_path(settings, subscriber(db), clock())  # as the receipt carries it
    clock.advance(days=6)
    before = snapshot(db)
    page = client.get(path)
    assert (page.status_code, snapshot(db)) == (200, before)
    assert "Ja, wieder anmelden" in page.get_data(as_text=True)
    response = post_button(client, path)
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/preferences/")
    assert subscriber(db) == {**row, "updated_at": clock()}
    assert db.list_consents(row["id"])[0]["withdrawn_at"] is None
    assert len(personal_mails(db, "confirmation")) == 1  # no new opt-in mail
    # The receipt had not gone out yet: after the undo it would say the opposite of the truth.
    [receipt] = db._query(
        "SELECT d.state, d.reason FROM deliveries d JOIN notifications n "
        "ON n.id = d.notification_id WHERE n.kind = 'receipt'"
    )
    assert receipt == {"state": "cancelled", "reason": "unsubscribe undone"}
    followed = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Schön, dass du wieder da bist!" in followed


def test_undo_links_die_after_seven_days_use_or_a_fresh_sign_up(client, settings, db, clock):
    row = confirmed_subscriber(client, settings, db, clock)
    client.post(f"/unsubscribe/one-click/{manage_token(settings, row, clock)}")
    path = undo_path(settings, subscriber(db), clock())
    csrf = form_tokens(client)["csrf_token"]

    clock.advance(days=7, seconds=1)
    before = snapshot(db)
    assert client.post(path, data={"csrf_token": csrf}).status_code == 404
    assert snapshot(db) == before

    clock.advance(days=-1)
    assert client.post(path, data={"csrf_token": csrf}).status_code == 303
    before = snapshot(db)
    assert client.post(path, data={"csrf_token": csrf}).status_code == 404  # used
    assert snapshot(db) == before

    client.post(f"/unsubscribe/one-click/{manage_token(settings, row, clock)}")
    clock.advance(hours=1)
    fresh = undo_path(settings, subscriber(db), clock())
    signup(client, clock)  # a fresh opt-in rotates the link nonce: old links die
    assert client.post(fresh, data={"csrf_token": csrf}).status_code == 404
    assert subscriber(db)["state"] == "pending"
    assert confirm(client, settings, db, clock).status_code == 303


def test_an_old_receipt_cannot_undo_a_later_deliberate_unsubscribe(client, settings, db, clock):
    """Unsubscribe, undo, unsubscribe again on purpose: the first receipt's undo link (still
    inside its seven days) must not bring the address back; the second receipt's does."""
    row = confirmed_subscriber(client, settings, db, clock)
    one_click = f"/unsubscribe/one-click/{manage_token(settings, row, clock)}"
    client.post(one_click)
    first_undo = undo_path(settings, subscriber(db), clock())
    csrf = form_tokens(client)["csrf_token"]
    assert client.post(first_undo, data={"csrf_token": csrf}).status_code == 303
    clock.advance(hours=1)
    assert subscriber(db)["state"] == "confirmed"
    assert client.post(one_click).status_code == 200  # the very same mail's link, again
    clock.advance(hours=1)
    before = snapshot(db)
    for method in ("GET", "HEAD", "POST"):
        response = client.open(first_undo, method=method, data={"csrf_token": csrf})
        assert response.status_code == 404, method
    assert snapshot(db) == before
    assert subscriber(db)["state"] == "unsubscribed"
    second_undo = undo_path(settings, subscriber(db), clock())
    assert client.post(second_undo, data={"csrf_token": csrf}).status_code == 303
    assert subscriber(db)["state"] == "confirmed"


def test_after_an_undo_every_earlier_mail_can_still_unsubscribe(app, settings, db, clock):
    """The undo kills only its own link: the one-click URL and the unsubscribe and preferences
    links of mails from before (and of the receipt) keep working, as mailbox providers expect."""
    client = app.test_client()
    row = confirmed_subscriber(client, settings, db, clock)
    token = manage_token(settings, row, clock)
    assert client.post(f"/unsubscribe/one-click/{token}").status_code == 200
    csrf = form_tokens(client)["csrf_token"]
    undo = undo_path(settings, subscriber(db), clock())
    assert client.post(undo, data={"csrf_token": csrf}).status_code == 303
    clock.advance(days=2)
    assert client.get(f"/preferences/{token}").status_code == 200
    assert client.get(f"/unsubscribe/{token}").status_code == 200
    provider = app.test_client()
    response = provider.post(f"/unsubscribe/one-click/{token}")
    assert (response.status_code, response.get_data(as_text=True)) == (200, "Du bist abgemeldet.\n")
    assert subscriber(db)["state"] == "unsubscribed"
