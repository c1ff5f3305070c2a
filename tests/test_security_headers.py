"""Security headers, cookie flags, CSRF on every form, no inline code for the CSP."""

from __future__ import annotations

import re

import pytest
from werkzeug.security import generate_password_hash

from app import create_app
from notifier import tokens
from notifier.security import CONTENT_SECURITY_POLICY

from .test_subscribe_helpers import (
    confirmed_subscriber,
    form_tokens,
    signup_data,
    snapshot,
    subscriber,
)

EXPECTED_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": (
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
        "microphone=(), payment=(), usb=(), interest-cohort=()"
    ),
    "Cross-Origin-Opener-Policy": "same-origin",
}


@pytest.fixture
def production(settings, clock):
    app = create_app(
        settings.with_overrides(
            app_env="production",
            # Production refuses low-variety keys and hashes Werkzeug cannot check.
            secret_key="kPC4p0hnFS7dLafiTozz0RHoseu_6LI1Jye2eSwt-AItnoBwvzlLbN4g8YYWRq9M",
            admin_password_hash=generate_password_hash("pw", method="pbkdf2:sha256:1000"),
            email_backend="sendgrid",
            sendgrid_api_key="SG.test",
            mail_from="Sinch Status <status@sinch.example>",
        )
    )
    app.extensions["clock"] = clock
    yield app
    app.extensions["store"].close()


def security_headers(response) -> dict:
    return {name: response.headers.get(name) for name in EXPECTED_HEADERS}


def test_pages_send_the_security_headers_without_hsts_in_development(client):
    response = client.get("/")
    assert security_headers(response) == EXPECTED_HEADERS
    assert EXPECTED_HEADERS["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in response.headers
    static = client.get("/static/site.css")
    assert (static.mimetype, static.headers["X-Content-Type-Options"]) == ("text/css", "nosniff")
    static.close()


def test_production_adds_hsts_and_secure_httponly_lax_cookies(production):
    client = production.test_client()
    response = client.get("/", base_url="https://status-notify.example.com")
    assert security_headers(response) == EXPECTED_HEADERS
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    session = response.headers["Set-Cookie"]
    assert session.startswith("session=")
    assert {"Secure", "HttpOnly", "SameSite=Lax"} <= {p.strip() for p in session.split(";")}
    switch = client.get("/language/de?next=/", base_url="https://status-notify.example.com")
    cookie = switch.headers["Set-Cookie"]
    assert {"Secure", "HttpOnly", "SameSite=Lax"} <= {p.strip() for p in cookie.split(";")}


def test_production_form_post_over_https_works_without_a_referer(production, clock):
    # Referrer-Policy: no-referrer means browsers send no Referer on our own form posts.
    client = production.test_client()
    https = "https://status-notify.example.com"
    found = form_tokens(client, base_url=https)
    clock.advance(seconds=5)
    response = client.post("/subscribe", data={**found, **signup_data()}, base_url=https)
    assert response.status_code == 303
    assert subscriber(production.extensions["store"])["state"] == "pending"


def test_every_form_post_without_csrf_token_is_400_and_changes_nothing(client, settings, db, clock):
    row = confirmed_subscriber(client, settings, db, clock)
    manage = tokens.make_token(
        settings.secret_key, tokens.MANAGE, row["id"], row["link_nonce"], now=clock()
    )
    undo = tokens.make_token(
        settings.secret_key, tokens.UNDO, row["id"], row["link_nonce"], now=clock()
    )
    confirm = tokens.make_token(settings.secret_key, tokens.CONFIRM, row["id"], "n", now=clock())
    before = snapshot(db)
    paths = [
        "/subscribe",
        f"/confirm/{confirm}",
        f"/preferences/{manage}",
        f"/preferences/{manage}/export",
        f"/preferences/{manage}/erase",
        f"/unsubscribe/{manage}",
        f"/unsubscribe/undo/{undo}",
    ]
    for path in paths:
        for data in ({}, {"csrf_token": "forged"}):
            response = client.post(path, data={**signup_data(), **data})
            assert response.status_code == 400, path
            assert "Please try again" in response.get_data(as_text=True)
    assert snapshot(db) == before
    # The one exception: RFC 8058 one-click, authorized by the signed token alone.
    assert client.post(f"/unsubscribe/one-click/{manage}").status_code == 200


def test_rendered_pages_have_no_inline_script_style_or_handlers(client, settings, db, clock):
    row = confirmed_subscriber(client, settings, db, clock)
    manage = tokens.make_token(
        settings.secret_key, tokens.MANAGE, row["id"], row["link_nonce"], now=clock()
    )
    pages = [
        "/",
        "/subscribe/check-inbox",
        "/privacy",
        f"/preferences/{manage}",
        f"/preferences/{manage}/erase",
        f"/unsubscribe/{manage}",
        "/unsubscribed",
        "/confirm/invalid",
    ]
    inline = re.compile(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=|javascript:", re.I)
    for path in pages:
        html = client.get(path).get_data(as_text=True)
        assert inline.findall(html) == [], path
        assert "http://" not in html and "//cdn" not in html, path
