"""Erasure reaches every table (issue 15, part 6; GDPR art. 17), and an operator's free-text
reason never stores an address as typed (GDPR art. 5(1)(c), data minimisation).

A subscriber gets a full history through the real paths: sign-up and confirmation mail,
confirmation, an incident mail (local feed, real dispatch to tests/fake_sendgrid.py), signed
webhook events, a test send to the address, ops typing the address into a pause and a
suppression reason, a failed ops login with the address as the name, an alert naming it. Then
ops erase the subscriber, and every text column of every table (enumerated from the schema at
test time: sqlite_master / information_schema) is searched for the address in any case, and for
its local part, and nothing is found; the masked reasons are still there and readable.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from notifier import jobs, subscriptions, tokens
from notifier.admin.auth import BUILTIN_USER
from notifier.privacy import MASK, erase_address, mask_addresses

from .helpers import add_subscriber, atom, poll_and_mail_through_fakes
from .test_admin_helpers import ADMIN_HASH, login, post
from .test_hooks import (
    _public_key_setting,
    event,
    signing_key,  # noqa: F401  (fixture)
)
from .test_hooks import post as post_events

LOCAL = "jane.q.erasure"
ADDRESS = f"{LOCAL}@example.org"
SHOUTED = ADDRESS.upper()


@pytest.fixture
def settings(settings, signing_key):  # noqa: F811
    return replace(
        settings,
        admin_password_hash=ADMIN_HASH,
        sendgrid_webhook_public_key=_public_key_setting(signing_key),
    )


def text_columns(db) -> list[tuple[str, str]]:
    """Every (table, column) of the schema, read from the database itself."""
    if db.backend == "sqlite":
        tables = [
            r["name"]
            for r in db._query(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return [(t, c["name"]) for t in tables for c in db._query(f"PRAGMA table_info('{t}')")]
    rows = db._query(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
    )
    return [(r["table_name"], r["column_name"]) for r in rows]


def traces(db, needle: str) -> list[tuple[str, str, str]]:
    """(table, column, value) of every stored value containing `needle`, in any case."""
    columns = text_columns(db)
    assert len({t for t, _ in columns}) >= 20 and len(columns) > 150  # it really looks
    found = []
    for table, column in columns:
        cast = f'CAST("{column}" AS TEXT)'
        for row in db._raw_query(
            f'SELECT {cast} AS v FROM "{table}" WHERE lower({cast}) LIKE ?',
            [f"%{needle.lower()}%"],
        ):
            found.append((table, column, row["v"]))
    return found


def test_mask_addresses_keeps_the_rest_of_the_reason_readable():
    assert mask_addresses(f"asked by phone; {SHOUTED} and <bob+x@mail.example.co.uk>.") == (
        f"asked by phone; {MASK} and <{MASK}>."
    )
    assert MASK == "[address]"
    # Already masked forms (mailer.mask_email, used in the audit of a test send) stay.
    assert mask_addresses("to j***@example.com, no address@here") == (
        "to j***@example.com, no address@here"
    )


def test_erasure_leaves_no_trace_of_the_address_in_any_table(
    app,
    db,
    settings,
    clock,
    sendgrid,
    feed_server,
    signing_key,  # noqa: F811
):
    url = feed_server.url("/history.atom")
    poll_and_mail_through_fakes(app, settings, sendgrid, url)
    settings = app.extensions["settings"]
    now = clock()
    t0 = now - timedelta(hours=1)
    incident = {"key": "sms000000001", "title": "Delayed SMS delivery",
                "updates": [(t0, "Investigating", "We are looking into delays.")]}  # fmt: skip
    feed_server.set("/history.atom", atom([incident]))
    jobs.poll(app)  # the silent baseline

    # Sign-up, confirmation mail, confirmation.
    prefs = subscriptions.Preferences(language="en", timezone="UTC")
    visitor = subscriptions.Visitor(ip="198.51.100.7", user_agent="Mozilla/5.0 test")
    outcome = subscriptions.subscribe(db, settings, ADDRESS, prefs, visitor, now)
    sid = outcome.subscriber_id
    jobs.dispatch(app)
    row = db.get_subscriber(sid)
    token = tokens.make_token(settings.secret_key, tokens.CONFIRM, sid, row["token_nonce"], now=now)
    subscriptions.confirm(db, settings, token, visitor, now)

    # An incident mail, then SendGrid's events about it.
    incident["updates"].append((t0 + timedelta(minutes=30), "Identified", "A faulty gateway."))
    feed_server.set("/history.atom", atom([incident]))
    clock.advance(minutes=1)
    jobs.poll(app)
    jobs.dispatch(app)
    sent_to = sorted(
        p["to"][0]["email"] for r in sendgrid.requests for p in r.body["personalizations"]
    )
    assert sent_to == [ADDRESS, ADDRESS]  # the confirmation, the incident mail
    [incident_delivery] = [d for d in db.subscriber_deliveries(sid) if d["kind"] == "incident"]
    at = clock() - timedelta(seconds=30)
    reply = f"451 4.2.0 <{ADDRESS}>: greylisted, try again later"
    batch = [
        event("deferred", ADDRESS, at, "ev-1", delivery_id=str(incident_delivery["id"]),
              response=reply),
        event("delivered", ADDRESS, at, "ev-2", delivery_id=str(incident_delivery["id"]),
              response=f"250 ok {ADDRESS}"),
    ]  # fmt: skip
    assert post_events(app.test_client(), signing_key, batch, at=clock()).status_code == 200

    # A test send to the address, an alert naming it.
    content = {"kind": "announcement", "en": {"title": "T"}}
    db.create_test_send(
        "announcement", content, ADDRESS, "en", "UTC", now, now + timedelta(hours=1)
    )
    db.raise_alert("message_invalid", f"SendGrid refused a message to {ADDRESS}", clock())

    # Ops: a failed login with the address as the name, then pause and suppress with it typed.
    stranger = app.test_client()
    login(stranger, username=SHOUTED, password="wrong", ip="192.0.2.44")
    admin = app.test_client()
    assert login(admin).status_code == 303
    pause = f"bounce storm, see {SHOUTED}"
    assert post(admin, "/admin/sending/pause", {"reason": pause}).status_code == 303
    reason = f"asked by phone; {ADDRESS} confirmed as {LOCAL.title()}@Example.org"
    response = post(admin, f"/admin/subscribers/{sid}/suppress", {"reason": reason})
    assert response.status_code == 303

    # The reasons are stored masked at once.
    assert db.get_subscriber(sid)["suppressed_reason"] == (
        f"ops: asked by phone; {MASK} confirmed as {MASK}"
    )
    assert db.sending_paused() == f"bounce storm, see {MASK} ({BUILTIN_USER})"
    assert db.open_alerts()[0]["message"] == f"SendGrid refused a message to {MASK}"
    before = traces(db, ADDRESS)
    assert {(t, c) for t, c, _ in before} >= {
        ("subscribers", "email"),
        ("deliveries", "email"),
        ("deliveries", "provider_reason"),
        ("notifications", "audience"),
        ("rate_limits", "key"),
    }, before  # the history really holds the address, where erasure must reach

    response = post(admin, f"/admin/subscribers/{sid}/erase", {"confirm": "yes"})
    assert response.status_code == 303

    assert traces(db, ADDRESS) == []
    assert traces(db, LOCAL) == []
    assert db.get_subscriber(sid) is None
    # The masked reasons are still readable, in the audit log and where they were stored.
    audit = [(r["action"], r["target"], r["detail"]) for r in reversed(db.list_audit())]
    assert audit == [
        ("login", None, None),
        ("sending.pause", None, {"reason": f"bounce storm, see {MASK}"}),
        (
            "subscriber.suppress",
            f"subscriber:{sid}",
            {
                "reason": f"asked by phone; {MASK} confirmed as {MASK}",
                "previous_state": "confirmed",
                "cancelled_deliveries": 0,
            },
        ),
        ("subscriber.erase", f"subscriber:{sid}", None),
    ]
    assert db.sending_paused() == f"bounce storm, see {MASK} ({BUILTIN_USER})"
    [alert] = db.open_alerts()
    assert alert["message"] == f"SendGrid refused a message to {MASK}"
    [test_send] = [
        n for n in db._query("SELECT audience FROM notifications") if "test_to" in n["audience"]
    ]
    assert json.loads(test_send["audience"]) == {"languages": ["en"], "test_to": MASK}


def test_audit_details_are_masked_when_written(db, clock):
    db.audit("admin", "sending.pause", f"x:{ADDRESS}", {"reason": [f"for {SHOUTED}"]}, clock())
    [row] = db.list_audit()
    assert (row["target"], row["detail"]) == (f"x:{MASK}", {"reason": [f"for {MASK}"]})


def test_erasing_an_address_leaves_longer_addresses_alone():
    text = "an@example.org, AN@Example.org; joan@example.org an@example.org.uk <an@example.org>"
    assert erase_address(text, "an@example.org") == (
        f"{MASK}, {MASK}; joan@example.org an@example.org.uk <{MASK}>"
    )


def test_alert_messages_are_masked_when_written(db, clock):
    """A SendGrid reason quoting the recipient, or ops' pause reason, opens an alert whose
    message is shown on the dashboard and mailed to ops: no address in it."""
    db.raise_alert("message_invalid", f"550 {ADDRESS} does not exist", clock())
    db.raise_alert("message_invalid", f"550 {SHOUTED} does not exist (again)", clock())
    assert [a["message"] for a in db.open_alerts()] == [f"550 {MASK} does not exist (again)"]


def test_erasing_an_operators_address_as_a_subscriber_keeps_their_console_login(db, clock):
    """Ops accounts are the operator's work identity, not the subscription: erasing the
    subscriber of the same address leaves the account, its audit trail's actor, and a second
    such erasure works too (a masked username would collide with the first: UNIQUE)."""
    for address in ("ops@example.com", "oncall@example.com"):
        assert db.add_admin_user(address, ADMIN_HASH, clock())
        db.audit(address, "login", None, None, clock())
        db.delete_subscriber(add_subscriber(db, address, now=clock()))
    users = [r["username"] for r in db._query("SELECT username FROM admin_users ORDER BY id")]
    assert users == ["ops@example.com", "oncall@example.com"]
    assert [r["actor"] for r in db.list_audit() if r["action"] == "login"] == [
        "oncall@example.com",
        "ops@example.com",
    ]


def test_a_reason_cut_at_its_limit_never_keeps_part_of_an_address(app, db, clock):
    """Masked first, then cut to 200 characters: cut first, "jane.q.erasure@example" (no
    longer a whole address) would be stored as typed, and erasure would not find it."""
    admin = app.test_client()
    assert login(admin).status_code == 303
    sid = add_subscriber(db, "victim@example.com", now=clock())
    typed = "x" * 180 + f" {ADDRESS} more"  # the address straddles character 200
    assert post(admin, "/admin/sending/pause", {"reason": typed}).status_code == 303
    assert post(admin, f"/admin/subscribers/{sid}/suppress", {"reason": typed}).status_code == 303
    stored = [db.sending_paused(), db.get_subscriber(sid)["suppressed_reason"]]
    stored += [json.dumps(r["detail"]) for r in db.list_audit()]
    assert [s for s in stored if LOCAL in s] == []
    assert "x" * 180 + f" {MASK}" in db.get_subscriber(sid)["suppressed_reason"]
