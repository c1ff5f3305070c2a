"""Only a POST changes anything (issue 9).

Mail security scanners and link checkers in corporate mail gateways follow every link in a mail
with GET and HEAD, and Flask answers HEAD on every GET route (Flask-WTF does not check CSRF on
HEAD or OPTIONS). So these tests walk the whole URL map: every rule, every method but POST
(GET, HEAD, OPTIONS, and PUT/DELETE/PATCH whether routed or not), with valid signed links, a
logged-in ops session and a real CSRF token in the body, as anonymous visitor and as ops user,
and compare a dump of every table before and after. A new route that acts on a GET or HEAD
fails here without anyone having to remember to add it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import url_for

from notifier import subscriptions, tokens
from notifier.announcements import normalize

from .test_admin_helpers import (  # noqa: F401  (fixtures)
    ADMIN_PASSWORD,
    OPS_IP,
    admin_client,
    admin_settings,
    csrf_token,
    login,
)
from .test_admin_review import pending  # noqa: F401  (fixture: a notification in review)

WALKED_METHODS = ("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH")
# Counters of requests, not state: a rate limit that counts every method must write them.
NOT_STATE = {"rate_limits"}
# What each signed link in a URL is for; a new route with a <token> must be added here.
TOKEN_PURPOSES = {
    "public.confirm": tokens.CONFIRM,
    "public.preferences": tokens.MANAGE,
    "public.export": tokens.MANAGE,
    "public.erase": tokens.MANAGE,
    "public.unsubscribe": tokens.MANAGE,
    "public.one_click": tokens.MANAGE,
    "public.undo": tokens.UNDO,
    "public.resume": tokens.MANAGE,  # issue 12: channel subscriptions
    "public.new_secret": tokens.MANAGE,
    "calendar_feed.feed": tokens.CALENDAR,
}


def dump_tables(db) -> dict[str, list[dict]]:
    """Every row of every table (but request counters), in a stable order."""
    if db.backend == "sqlite":
        names = [
            r["name"]
            for r in db._query(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
    else:
        names = [
            r["tablename"]
            for r in db._query(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
        ]
    assert len(names) >= 15, names  # the dump really dumps
    names = [name for name in names if name not in NOT_STATE]
    if db.backend != "sqlite":
        # Every row of every table in one statement (rows as JSON objects, every column): one
        # round trip per dump instead of one per table; the walk dumps after every request.
        columns = ", ".join(
            f"(SELECT coalesce(json_agg(t), '[]'::json) FROM {name} t) AS {name}" for name in names
        )
        [dump] = db._raw_query(f"SELECT {columns}", [])
        return {name: sorted(dump[name], key=repr) for name in names}
    return {name: sorted(db._raw_query(f"SELECT * FROM {name}", []), key=repr) for name in names}


@pytest.fixture
def world(app, db, settings, clock, pending):  # noqa: F811
    """Something for every route to act on: subscribers in each state a link can change,
    a draft announcement, a sent one, and a notification waiting for review."""
    now = clock()
    prefs = subscriptions.Preferences(language="en", timezone="UTC")
    visitor = subscriptions.Visitor(ip="198.51.100.7", user_agent="test")

    def signup(email: str) -> dict:
        outcome = subscriptions.subscribe(db, settings, email, prefs, visitor, now)
        return db.get_subscriber(outcome.subscriber_id)

    waiting = signup("pending@example.com")  # confirm would confirm it
    confirmed = signup("confirmed@example.com")  # unsubscribe/erase/preferences act on it
    db.update_subscriber(confirmed["id"], state="confirmed", token_nonce=None, confirmed_at=now)
    left = signup("left@example.com")  # undo would bring it back
    db.update_subscriber(left["id"], state="confirmed", token_nonce=None, confirmed_at=now)
    subscriptions.unsubscribe(db, left["id"], now, "page")
    subscribers = {"pending": waiting["id"], "confirmed": confirmed["id"], "left": left["id"]}

    content, audience = normalize(
        {"products": ["SMS (EU)"], "de": {"title": "T", "intro": "I"}, "en": {"title": "T"}}
    )
    draft = db.save_announcement(content, audience, "admin", now)
    sent_draft = db.save_announcement(content, audience, "admin", now)
    announced, _ = db.send_announcement(
        sent_draft, content, audience, now, now + timedelta(hours=2)
    )
    return {
        "subscribers": subscribers,
        "announcement": draft,
        "announced": announced,
        "review": pending,
        "alert": db.raise_alert("message_invalid", "a message SendGrid refused", now),
    }


def _token(settings, db, endpoint: str, subscribers: dict, now) -> str:
    purpose = TOKEN_PURPOSES.get(endpoint)
    assert purpose, f"{endpoint} takes a <token>: say in TOKEN_PURPOSES what it is for"
    if purpose == tokens.CONFIRM:
        row = db.get_subscriber(subscribers["pending"])
        return tokens.make_token(
            settings.secret_key, purpose, row["id"], row["token_nonce"], now=now
        )
    row = db.get_subscriber(subscribers["left" if purpose == tokens.UNDO else "confirmed"])
    return tokens.make_token(settings.secret_key, purpose, row["id"], row["link_nonce"], now=now)


def walk(app, db, settings, world, clock) -> list[tuple[str, str]]:
    """(endpoint, URL) for every rule, with arguments that reach a real row or a valid link."""
    found = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            values = {}
            for arg in rule.arguments:
                if arg == "token":
                    values[arg] = _token(settings, db, rule.endpoint, world["subscribers"], clock())
                elif arg == "subscriber_id":
                    values[arg] = world["subscribers"]["confirmed"]
                elif arg == "announcement_id":
                    values[arg] = world["announcement"]
                elif arg == "notification_id":
                    key = "review" if rule.endpoint.startswith("admin.review") else "announced"
                    values[arg] = world[key]
                elif arg == "alert_id":
                    values[arg] = world["alert"]
                elif arg in ("lang", "code"):
                    values[arg] = "de"
                elif arg == "filename":
                    values[arg] = "site.css"
                else:
                    raise AssertionError(f"{rule.rule}: the walk does not know <{arg}> yet")
            found.append((rule.endpoint, url_for(rule.endpoint, **values)))
    return sorted(set(found))


def body(token: str) -> dict:
    """Everything a POST to any of these routes would carry, CSRF token included."""
    return {
        "csrf_token": token,
        "username": "admin",
        "password": ADMIN_PASSWORD,
        "List-Unsubscribe": "One-Click",
        "action": "approve",
        "which": "failed",
        "confirm": "yes",
        "kind": "sending_paused",
        "reason": "walk",
        "email": "walker@example.com",
        "language": "en",
        "timezone": "UTC",
        "scope": "all",
    }


def test_no_method_but_post_changes_a_table_on_any_route(app, db, settings, clock, world):
    anonymous = app.test_client()
    anonymous_token = csrf_token(anonymous, "/")
    admin = app.test_client()
    assert login(admin).status_code == 303
    admin_token = csrf_token(admin, "/admin/")
    urls = walk(app, db, settings, world, clock)
    assert len(urls) >= 45  # the walk really walks
    before = dump_tables(db)
    assert before["subscribers"] and before["announcements"] and before["notifications"]
    walked = []
    for endpoint, url in urls:
        for who, client, token in (
            ("anonymous", anonymous, anonymous_token),
            ("ops", admin, admin_token),
        ):
            for method in WALKED_METHODS:
                response = client.open(
                    url, method=method, data=body(token), environ_base={"REMOTE_ADDR": OPS_IP}
                )
                response.close()
                assert response.status_code < 500, (who, method, url, response.status_code)
                after = dump_tables(db)
                changed = sorted(t for t in before if before[t] != after.get(t))
                assert changed == [], (who, method, endpoint, changed)
                walked.append((method, endpoint))
    assert ("HEAD", "public.confirm") in walked and ("HEAD", "admin.login") in walked
    # The ops user is still logged in (nothing above logged out), the visitor never was.
    assert admin.get("/admin/").status_code == 200
    assert anonymous.get("/admin/").status_code == 303


@pytest.mark.parametrize("method", ["HEAD", "GET", "OPTIONS"])
def test_a_head_or_get_on_the_login_never_checks_the_password(app, db, method):
    client = app.test_client()
    token = csrf_token(client)
    response = client.open(
        "/admin/login",
        method=method,
        data={"csrf_token": token, "username": "admin", "password": ADMIN_PASSWORD},
    )
    assert response.status_code == 200
    assert client.get("/admin/").status_code == 303  # no session came of it
    assert db.list_audit() == []


def test_the_login_limit_holds_for_every_method(app, db, clock):
    """40 wrong passwords by a mix of methods: 429 after the limit (5 a minute), and the right
    password after that, by any method, gives no session."""
    client = app.test_client()
    token = csrf_token(client)
    methods = ["POST", "HEAD", "GET", "OPTIONS", "PUT", "PATCH", "DELETE", "POST"] * 5
    answers = []
    for i, method in enumerate(methods):
        response = client.open(
            "/admin/login",
            method=method,
            data={"csrf_token": token, "username": "admin", "password": f"wrong-{i}"},
            environ_base={"REMOTE_ADDR": OPS_IP},
        )
        answers.append((method, response.status_code))
    posts = [status for method, status in answers if method == "POST"]
    assert posts == [401] * 5 + [429] * 5
    assert {status for method, status in answers if method in ("HEAD", "GET", "OPTIONS")} == {200}
    assert {status for method, status in answers if method in ("PUT", "PATCH", "DELETE")} == {405}
    for method in ("POST", "HEAD", "GET", "OPTIONS", "PUT"):
        client.open(
            "/admin/login",
            method=method,
            data={"csrf_token": token, "username": "admin", "password": ADMIN_PASSWORD},
            environ_base={"REMOTE_ADDR": OPS_IP},
        )
        assert client.get("/admin/").status_code == 303, method
    assert [row["action"] for row in db.list_audit()] == ["login_failed"] * 5
