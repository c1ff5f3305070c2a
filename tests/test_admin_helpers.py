"""Fixtures and helpers shared by the ops console tests (no tests in here).

Import the fixtures into a test module (`from .test_admin_helpers import admin_client,
admin_settings`): `settings` extends the shared one with a built-in admin password (a fast
hash: tests log in often), `admin` is a test client logged in as that user.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from werkzeug.security import generate_password_hash

ADMIN_PASSWORD = "correct horse battery staple"
# pbkdf2 with few rounds: the production default (scrypt) would add ~50 ms per login.
ADMIN_HASH = generate_password_hash(ADMIN_PASSWORD, method="pbkdf2:sha256:1000")
OPS_IP = "203.0.113.10"


@pytest.fixture(name="settings")
def admin_settings(settings):
    return replace(settings, admin_password_hash=ADMIN_HASH)


def csrf_token(client, path: str = "/admin/login") -> str:
    html = client.get(path, follow_redirects=True).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client, username: str = "admin", password: str = ADMIN_PASSWORD, ip: str = OPS_IP):
    token = csrf_token(client)
    return client.post(
        "/admin/login",
        data={"csrf_token": token, "username": username, "password": password, "next": ""},
        environ_base={"REMOTE_ADDR": ip},
    )


@pytest.fixture(name="admin")
def admin_client(app):
    """A test client logged in as the built-in admin."""
    client = app.test_client()
    response = login(client)
    assert (response.status_code, response.headers["Location"]) == (303, "/admin/")
    return client


def post(client, path: str, data: dict | None = None, **kwargs):
    """POST a form with the session's CSRF token, as the page's own form would."""
    token = csrf_token(client, "/admin/")
    return client.post(path, data={"csrf_token": token, **(data or {})}, **kwargs)


def audit_rows(db) -> list[tuple]:
    """(actor, action, target, detail) of every audit entry, oldest first."""
    return [(r["actor"], r["action"], r["target"], r["detail"]) for r in reversed(db.list_audit())]


def composer_form(**overrides) -> dict:
    """A complete bilingual announcement as the composer posts it."""
    data = {
        "products": "SMS (EU)",
        "window_start": "2026-11-26T09:30",
        "window_end": "2026-11-26T11:00",
        "window_zone": "Europe/Berlin",
        "de-title": "Verzögerte SMS-Zustellung",
        "de-intro": "heute Morgen kamen SMS in der EU verspätet an.",
        "de-bullets": "Alles läuft wieder normal.\nDu musst nichts tun.",
        "de-qa-0-q": "Was ist passiert?",
        "de-qa-0-a": "Ein Gateway war überlastet.",
        "en-title": "Delayed SMS delivery",
        "en-intro": "This morning SMS in the EU arrived late.",
        "en-bullets": "Everything works normally again.\nYou need to do nothing.",
        "en-qa-0-q": "What happened?",
        "en-qa-0-a": "A gateway was overloaded.",
        "audience_scope": "all",
        "audience_languages": ["de", "en"],
        "action": "save",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden field {name}"
    return match.group(1)


def send_through(app, settings, sendgrid) -> None:
    """Point the app's mail at the fake SendGrid (the official library, a local server)."""
    app.extensions["settings"] = replace(
        settings,
        email_backend="sendgrid",
        sendgrid_api_key=sendgrid.api_key,
        sendgrid_api_host=sendgrid.base_url,
        sendgrid_timeout_seconds=10.0,  # a loaded CI machine answers late, not never
        mail_from="Sinch Status <status@sinch.example>",
    )


@pytest.fixture(name="mail")
def mail_through_fake_sendgrid(app, settings, sendgrid):
    """The app sends through the fake SendGrid; returns the fake."""
    send_through(app, settings, sendgrid)
    return sendgrid


def received(sendgrid) -> list[tuple[str, str]]:
    """(address, subject) of every recipient SendGrid accepted, sorted."""
    out = []
    for request in sendgrid.accepted_requests():
        for p in request.body["personalizations"]:
            out.append((p["to"][0]["email"], request.body["subject"]))
    return sorted(out)


def deliveries(db, notification_id: int | None = None) -> list[tuple]:
    """(notification, email, language, state, reason) per delivery row."""
    where, params = (
        ("WHERE notification_id = ?", [notification_id]) if notification_id else ("", [])
    )
    return [
        (d["notification_id"], d["email"], d["language"], d["state"], d["reason"])
        for d in db._query(
            f"SELECT * FROM deliveries {where} ORDER BY notification_id, email", params
        )
    ]


def audience_world(db, now) -> dict[str, int]:
    """A catalogue and subscribers in every state and language; returns their ids."""
    from .helpers import add_subscriber
    from .test_subscribe_helpers import seed_catalogue

    seed_catalogue(db, now)
    people = {
        "de-sms-eu@example.de": {"language": "de", "components": ["sms-eu"]},
        "en-sms-eu@example.com": {"language": "en", "components": ["sms-eu"]},
        "de-voice@example.de": {"language": "de", "components": ["voice"]},
        "en-all@example.com": {"language": "en"},
        "de-all@example.de": {"language": "de"},
        "unsubscribed@example.com": {"components": ["sms-eu"], "state": "unsubscribed"},
        "pending@example.com": {"components": ["sms-eu"], "state": "pending"},
        "suppressed@example.com": {"state": "suppressed"},
    }
    return {email: add_subscriber(db, email, now=now, **kw) for email, kw in people.items()}
