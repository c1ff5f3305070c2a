"""Helpers shared by the subscription tests (no tests in here).

They drive the real pages through the test client: fetch the form for its CSRF token and
signed start stamp, let the injected clock pass the minimum fill-in time, post.
"""

from __future__ import annotations

import re
from datetime import datetime

from notifier import tokens

TABLES = {  # table -> a total order for before/after comparisons on either backend
    "subscribers": "id",
    "subscriber_components": "subscriber_id, component_id",
    "consents": "id",
    "confirmation_sends": "id",
    "notifications": "id",
    "deliveries": "id",
}
UA = "Mozilla/5.0 (X11; Linux x86_64) test-browser"


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden field {name}"
    return match.group(1)


def form_tokens(client, path: str = "/", **kwargs) -> dict:
    """The CSRF token (and the sign-up form's start stamp) from a GET of `path`."""
    html = client.get(path, **kwargs).get_data(as_text=True)
    found = {"csrf_token": hidden(html, "csrf_token")}
    if 'name="started"' in html:
        found["started"] = hidden(html, "started")
    return found


def signup_data(email: str = "ada@example.com", **overrides) -> dict:
    data = {
        "email": email,
        "language": "de",
        "timezone": "Europe/Berlin",
        "scope": "all",
        "notify_incidents": "y",
        "notify_maintenance": "y",
        "website": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def signup(
    client,
    clock,
    email: str = "ada@example.com",
    ip: str = "198.51.100.7",
    page_language: str = "de-DE,de;q=0.9,en;q=0.5",
    **fields,
):
    """Load the form, take 5 s to fill it in, send it; returns the POST response."""
    environ = {"REMOTE_ADDR": ip, "HTTP_USER_AGENT": UA, "HTTP_ACCEPT_LANGUAGE": page_language}
    found = form_tokens(client, environ_base=environ)
    clock.advance(seconds=5)
    return client.post(
        "/subscribe", data={**found, **signup_data(email, **fields)}, environ_base=environ
    )


def snapshot(db) -> dict[str, list[dict]]:
    """Every row of the subscription tables, for before/after comparisons."""
    return {
        table: db._query(f"SELECT * FROM {table} ORDER BY {order}")
        for table, order in TABLES.items()
    }


def subscriber(db, email: str = "ada@example.com") -> dict:
    row = db.get_subscriber_by_email(email)
    assert row is not None, f"no subscriber {email}"
    return row


def link(settings, purpose: str, row: dict, now: datetime) -> str:
    """The path of a signed link, as the mail would carry it (an undo link: the receipt of the
    unsubscribe `row` shows, so pass the row as it is after that unsubscribe)."""
    if purpose == tokens.CONFIRM:
        nonce = row["token_nonce"]
    elif purpose == tokens.UNDO:
        nonce = tokens.undo_nonce(row["link_nonce"], row["unsubscribed_at"])
        assert nonce, "an undo link needs the row after its unsubscribe"
    else:
        nonce = row["link_nonce"]
    token = tokens.make_token(settings.secret_key, purpose, row["id"], nonce, now=now)
    prefix = {
        tokens.CONFIRM: "/confirm/",
        tokens.MANAGE: "/preferences/",
        tokens.UNDO: "/unsubscribe/undo/",
    }[purpose]
    return prefix + token


def post_button(client, path: str, **kwargs):
    """Open a page with a button form and press it (CSRF token from that page)."""
    found = form_tokens(client, path, **kwargs)
    return client.post(path, data={"csrf_token": found["csrf_token"]}, **kwargs)


def confirm(client, settings, db, clock, email: str = "ada@example.com", **kwargs):
    path = link(settings, tokens.CONFIRM, subscriber(db, email), clock())
    return post_button(client, path, **kwargs)


def confirmed_subscriber(client, settings, db, clock, email: str = "ada@example.com") -> dict:
    assert signup(client, clock, email).status_code == 303
    assert confirm(client, settings, db, clock, email).status_code == 303
    return subscriber(db, email)


def personal_mails(db, kind: str) -> list[dict]:
    """Personal notifications of a kind with their deliveries' recipient and state."""
    return db._query(
        "SELECT n.id, n.kind, n.audience, d.subscriber_id, d.email, d.state "
        "FROM notifications n JOIN deliveries d ON d.notification_id = n.id "
        "WHERE n.kind = ? ORDER BY n.id",
        [kind],
    )


def seed_catalogue(db, now: datetime, url: str = "https://status.sinch.com/history.atom") -> int:
    """A small Statuspage-shaped catalogue: two groups with members and one lone component."""
    feed = db.ensure_feed(url, now)
    db.record_poll_success(feed["id"], now, title="Sinch Status - Incident History")
    db.replace_components(
        feed["id"],
        [
            {"id": "grp-sms", "name": "SMS", "group": True, "position": 1},
            {"id": "sms-eu", "name": "SMS (EU)", "group_id": "grp-sms", "position": 2},
            {"id": "sms-us", "name": "SMS (US)", "group_id": "grp-sms", "position": 3},
            {"id": "voice", "name": "Voice", "position": 4},
            {"id": "grp-engage", "name": "Sinch Engage", "group": True, "position": 5},
            {"id": "engage-chat", "name": "Chat", "group_id": "grp-engage", "position": 6},
            {"id": "grp-empty", "name": "Empty group", "group": True, "position": 7},
        ],
        now,
    )
    return feed["id"]
