"""Ops console access: every route needs a login, every form a CSRF token; login limits,
session timeouts, logout, fixation, no user enumeration."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from flask import url_for
from werkzeug.security import generate_password_hash

from .test_admin_helpers import (  # noqa: F401  (fixtures)
    ADMIN_PASSWORD,
    OPS_IP,
    admin_client,
    admin_settings,
    audit_rows,
    csrf_token,
    login,
    post,
)

SAMPLE_VALUES = {"lang": "de"}


def admin_urls(app) -> list[tuple[str, str, set[str]]]:
    """(endpoint, a URL for it, methods) for every rule under /admin but the login page."""
    found = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if not rule.rule.startswith("/admin") or rule.endpoint == "admin.login":
                continue
            values = {arg: SAMPLE_VALUES.get(arg, 1) for arg in rule.arguments}
            found.append((rule.endpoint, url_for(rule.endpoint, **values), set(rule.methods)))
    return found


def test_every_admin_route_without_a_login_leads_to_the_login_page(app, db):
    client = app.test_client()
    urls = admin_urls(app)
    assert len(urls) >= 30  # the walk really walks
    token = csrf_token(client)  # an anonymous session with a valid CSRF token
    anonymous = app.test_client()
    seen = []
    for endpoint, url, methods in urls:
        with app.test_request_context():
            to_login = url_for("admin.login", next=url)
        if "GET" in methods:
            response = anonymous.get(url)
            assert (response.status_code, response.headers.get("Location")) == (303, to_login), url
            seen.append(("GET", endpoint))
        if "POST" in methods:
            # Without a token: CSRF refuses it first (400), whoever sends it.
            assert anonymous.post(url).status_code == 400, url
            # With a valid token but no login: off to the login page, nothing done.
            response = client.post(url, data={"csrf_token": token})
            assert (response.status_code, response.headers.get("Location")) == (303, "/admin/login")
            seen.append(("POST", endpoint))
    assert ("POST", "admin.send_announcement") in seen and ("GET", "admin.live") in seen
    assert audit_rows(db) == []
    assert db._query("SELECT COUNT(*) AS n FROM notifications")[0]["n"] == 0


def test_every_form_post_without_csrf_token_is_refused_when_logged_in(app, admin, db):
    posts = [(endpoint, url) for endpoint, url, methods in admin_urls(app) if "POST" in methods]
    assert len(posts) >= 15
    for endpoint, url in posts:
        response = admin.post(url, data={"action": "send", "which": "failed", "confirm": "yes"})
        assert response.status_code == 400, endpoint
        assert "This form has expired or was sent from another page." in response.text
    assert [row[1] for row in audit_rows(db)] == ["login"]
    assert admin.get("/admin/").status_code == 200  # still logged in


def test_login_with_the_builtin_admin_and_back_to_the_wanted_page(app, db):
    client = app.test_client()
    response = client.get("/admin/audit")
    assert response.headers["Location"] == "/admin/login?next=/admin/audit"
    page = client.get(response.headers["Location"]).text
    assert 'name="next" value="/admin/audit"' in page
    token = csrf_token(client)
    response = client.post(
        "/admin/login",
        data={
            "csrf_token": token,
            "username": " Admin ",
            "password": ADMIN_PASSWORD,
            "next": "/admin/audit",
        },
    )
    assert (response.status_code, response.headers["Location"]) == (303, "/admin/audit")
    assert client.get("/admin/audit").status_code == 200
    assert audit_rows(db) == [("admin", "login", None, None)]


@pytest.mark.parametrize(
    "target", ["https://evil.example/admin/", "//evil.example/", "/privacy", "/admin\\x", ""]
)
def test_login_only_returns_to_ops_pages(app, target):
    client = app.test_client()
    token = csrf_token(client)
    response = client.post(
        "/admin/login",
        data={"csrf_token": token, "username": "admin", "password": ADMIN_PASSWORD, "next": target},
    )
    assert response.headers["Location"] == "/admin/"


def test_unknown_name_and_wrong_password_get_the_same_answer(app, db, clock):
    db.add_admin_user("ops.anna", generate_password_hash("anna's long password"), clock())
    client = app.test_client()
    wrong = login(client, "ops.anna", "not it")
    unknown = login(client, "ops.nobody", "not it")
    assert (wrong.status_code, unknown.status_code) == (401, 401)

    def page(response, name):  # the signed CSRF token carries a time stamp of its own
        return re.sub(r'name="csrf_token" value="[^"]+"', "", response.text.replace(name, "NAME"))

    assert page(wrong, "ops.anna") == page(unknown, "ops.nobody")
    assert "The name or the password is not right." in wrong.text
    assert client.get("/admin/").status_code == 303
    # A failure on a real account is worth an audit line; a made-up name is not.
    assert audit_rows(db) == [("ops.anna", "login_failed", None, None)]


def test_builtin_admin_without_a_hash_cannot_log_in(app, settings, clock):
    app.extensions["settings"] = replace(settings, admin_password_hash=None)
    response = login(app.test_client())
    assert response.status_code == 401


def test_login_clears_the_session_first(app):
    """Session fixation: nothing planted before the login survives it, not even the token."""
    client = app.test_client()
    old_token = csrf_token(client)
    with client.session_transaction() as session:
        session["planted"] = "by someone else"
        session["admin"] = {"user": "admin"}  # forged: no timestamps, no fingerprint
    assert client.get("/admin/").status_code == 303  # the forged entry is not a login
    assert login(client).status_code == 303
    with client.session_transaction() as session:
        assert sorted(session) == ["admin"]
        assert sorted(session["admin"]) == ["fp", "login", "seen", "user"]
    assert client.post("/admin/logout", data={"csrf_token": old_token}).status_code == 400


# --- rate limits -----------------------------------------------------------------------
def failures(client, times: int, ip: str = OPS_IP) -> list[int]:
    """Failed logins from one address, each with another made-up name (only the address
    limit applies)."""
    return [login(client, f"guess{i}", "wrong password", ip=ip).status_code for i in range(times)]


def test_five_failed_logins_a_minute_from_one_address_then_429(app, clock):
    client = app.test_client()
    assert failures(client, 5) == [401] * 5
    blocked = login(client, ip=OPS_IP)  # even the right password: the limit comes first
    assert blocked.status_code == 429
    assert blocked.headers["Retry-After"].isdigit()
    assert "Too many login attempts" in blocked.text
    assert login(app.test_client(), ip="198.51.100.99").status_code == 303  # others are fine
    clock.advance(seconds=61)
    assert login(client, ip=OPS_IP).status_code == 303


def test_twenty_failed_logins_an_hour_from_one_address(app, clock):
    client = app.test_client()
    for _ in range(4):
        assert failures(client, 5) == [401] * 5
        clock.advance(seconds=61)
    assert login(client, ip=OPS_IP).status_code == 429  # 20 in the hour, a fresh minute
    clock.advance(minutes=56)
    assert login(client, ip=OPS_IP).status_code == 303


def test_five_failures_a_minute_on_one_name_from_many_addresses(app, db, clock):
    db.add_admin_user("ops.ben", generate_password_hash("ben's long password"), clock())
    client = app.test_client()
    codes = [login(client, "ops.ben", "guess", ip=f"198.51.100.{i}").status_code for i in range(5)]
    assert codes == [401] * 5
    assert login(client, "ops.ben", "ben's long password", ip="192.0.2.1").status_code == 429
    assert login(client, "admin", ip="192.0.2.2").status_code == 303  # another name
    clock.advance(seconds=61)
    assert login(client, "ops.ben", "ben's long password", ip="192.0.2.3").status_code == 303


def test_successful_logins_do_not_count(app):
    client = app.test_client()
    assert [login(client).status_code for _ in range(8)] == [303] * 8


# --- sessions --------------------------------------------------------------------------
def test_idle_session_ends_after_30_minutes(admin, clock):
    clock.advance(minutes=29)
    assert admin.get("/admin/").status_code == 200
    clock.advance(minutes=29)  # the request above counted as activity
    assert admin.get("/admin/audit").status_code == 200
    clock.advance(minutes=30, seconds=1)
    response = admin.get("/admin/audit")
    assert (response.status_code, response.headers["Location"]) == (
        303,
        "/admin/login?next=/admin/audit",
    )
    assert "Your session has expired. Please log in again." in admin.get("/admin/login").text
    assert admin.get("/admin/").status_code == 303


def test_the_live_progress_poll_does_not_keep_a_session_alive(admin, clock):
    for _ in range(3):
        clock.advance(minutes=10)
        assert admin.get("/admin/live.json").status_code == 200
    clock.advance(minutes=1)
    assert admin.get("/admin/live.json").status_code == 303


def test_session_ends_12_hours_after_login_whatever_the_activity(admin, clock):
    for _ in range(24):
        clock.advance(minutes=29)
        assert admin.get("/admin/").status_code == 200
    clock.advance(minutes=25)  # 12 h 1 min after the login
    assert admin.get("/admin/").status_code == 303


def test_logout_ends_every_session_of_the_user_even_copied_cookies(app, admin, db):
    elsewhere = app.test_client()
    assert login(elsewhere).status_code == 303
    copied = app.test_client()
    copied.set_cookie("session", admin.get_cookie("session").value)
    assert copied.get("/admin/").status_code == 200
    response = post(admin, "/admin/logout")
    assert (response.status_code, response.headers["Location"]) == (303, "/admin/login")
    assert "You are logged out." in admin.get("/admin/login").text
    for client in (admin, copied, elsewhere):
        assert client.get("/admin/").status_code == 303
    assert login(admin).status_code == 303  # a new login in the same instant works
    assert admin.get("/admin/").status_code == 200
    assert [r[1] for r in audit_rows(db)] == ["login", "login", "logout", "login"]


def test_removed_user_or_changed_password_ends_the_session(app, db, clock):
    db.add_admin_user("ops.carla", generate_password_hash("carla's long password"), clock())
    client = app.test_client()
    assert login(client, "ops.carla", "carla's long password").status_code == 303
    assert client.get("/admin/").status_code == 200
    assert db.get_admin_user("ops.carla")["last_login_at"] == clock()
    db.add_admin_user("ops.carla", generate_password_hash("a brand new password"), clock())
    assert client.get("/admin/").status_code == 303
    assert login(client, "ops.carla", "a brand new password").status_code == 303
    db.remove_admin_user("ops.carla")
    assert client.get("/admin/").status_code == 303


def test_pages_show_who_is_logged_in_and_a_logout_form(admin):
    html = admin.get("/admin/").text
    assert '<span class="who">admin</span>' in html
    assert re.search(
        r'<form method="post" action="/admin/logout" class="logout">\s*'
        r'<input type="hidden" name="csrf_token"',
        html,
    )
