"""Issue 14, priorities: incident mail is claimed before confirmations and receipts, and personal
mail is batched (one shared notification per kind and minute, many recipients per request, each
with their own links), with each row's lifetime, erasure and the ledger's resend intact."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import timedelta

import pytest

from notifier import jobs, subscriptions, tokens
from notifier.notifications import queue_personal
from notifier.render import render_email
from notifier.store.dispatch import CLAIM_BY_IDS, CLAIMED
from notifier.store.sqlite import packed_statement
from notifier.subscriptions import Preferences, Visitor

from . import test_dispatch
from .helpers import add_subscriber, dispatched_envelope, table
from .test_admin_helpers import (  # noqa: F401  (fixtures)
    admin_client,
    admin_settings,
    login,
    mail_through_fake_sendgrid,
    post,
)
from .test_dispatch import CONTENT, dispatcher

sg_settings = test_dispatch.sg_settings  # the fixture: settings sending to the fake SendGrid


def pending_signups(db, count: int, now) -> list[int]:
    """`count` pending sign-ups (one statement), each with its confirmation queued at `now`."""
    ids = [
        r["id"]
        for r in db._query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO subscribers (email, language, timezone, state, token_nonce, "
            "link_nonce, created_at, updated_at) SELECT 'signup' || i || '@example.com', 'en', "
            "'UTC', 'pending', 'confirm' || i, 'link' || i, ?, ? FROM n RETURNING id",
            [count, now, now],
        )
    ]
    with db.write():
        for sid in sorted(ids):
            queue_personal(db, "confirmation", sid, now)
    return sorted(ids)


def incident(db, now, subscribers: int) -> int:
    """An incident notification fanned out to `subscribers` new confirmed subscribers."""
    with db.write():
        for i in range(subscribers):
            add_subscriber(db, f"reader{i}@example.com", now=now)
    nid = db.create_notification("incident", CONTENT, now, now + timedelta(hours=24), audience={})
    assert db.fan_out(nid, now) == subscribers
    return nid


def personal_rows(db) -> list[tuple]:
    """(notification, kind, subscriber, state, reason) per personal delivery."""
    return [
        (r["notification_id"], r["kind"], r["subscriber_id"], r["state"], r["reason"])
        for r in db._query(
            "SELECT d.notification_id, n.kind, d.subscriber_id, d.state, d.reason "
            "FROM deliveries d JOIN notifications n ON n.id = d.notification_id "
            "WHERE n.kind IN ('confirmation', 'receipt') ORDER BY d.id"
        )
    ]


# --- priorities ----------------------------------------------------------------------
@pytest.mark.slow  # 5,000 queued confirmations: ~50 s on a loaded PostgreSQL
def test_a_newer_incident_is_claimed_before_older_confirmations(db, clock):
    pending_signups(db, 5000, clock())
    clock.advance(minutes=5)
    nid = incident(db, clock(), 400)
    confirmations = [
        r["id"]
        for r in db._query(
            "SELECT d.id FROM deliveries d JOIN notifications n ON n.id = d.notification_id "
            "WHERE n.kind = 'confirmation' ORDER BY d.id"
        )
    ]
    assert len(confirmations) == 5000

    rows = db.claim_due("w1", clock(), clock() + timedelta(minutes=2), 1000)

    # The incident's 400 rows first, then the oldest 600 confirmations.
    assert [r["notification_id"] for r in rows[:400]] == [nid] * 400
    assert [r["priority"] for r in rows] == [0] * 400 + [1] * 600
    assert sorted(r["id"] for r in rows[400:]) == confirmations[:600]


def test_dispatch_sends_the_incident_first_and_a_test_send_counts_as_broadcast(
    db, sg_settings, clock, sendgrid
):
    pending_signups(db, 30, clock())
    clock.advance(minutes=2)
    nid = incident(db, clock(), 3)
    test_send = db.create_test_send(
        "incident", CONTENT, "ops@example.com", "en", "UTC", clock(), clock() + timedelta(hours=1)
    )

    # One sender: the fake records requests in the order they are answered, and with several
    # senders the test send and the confirmations race (the confirmations were recorded first
    # when the one-recipient request's sender started 0.5 s late). The claim order is the
    # point here, and one sender starts its requests in that order.
    settings = replace(sg_settings, send_concurrency=1)
    stats = dispatcher(db, settings, clock).run()

    assert (stats.sent, stats.failed) == (34, 0)
    assert [r.body["categories"] for r in sendgrid.requests] == [
        ["incident"],
        ["incident"],
        ["confirmation"],
    ]
    assert [len(r.body["personalizations"]) for r in sendgrid.requests] == [3, 1, 30]
    assert sendgrid.requests[0].body["personalizations"][0]["custom_args"]["notification_id"] == (
        str(nid)
    )
    assert db._scalar("SELECT priority FROM deliveries WHERE id = ?", [test_send]) == 0


def test_the_claim_walks_the_pending_index_without_sorting(db, clock):
    """EXPLAIN on both backends at 100,000 pending confirmations and a few thousand sent rows:
    the claim reads deliveries_pending in order and stops at the limit (no sort of all rows),
    and updates the rows it picked by primary key (no scan of the whole table)."""
    now = clock()
    nid = queue_personal(db, "confirmation", add_subscriber(db, "x@example.com", now=now), now)[0]
    db._execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 105000) "
        "INSERT INTO deliveries (notification_id, subscriber_id, email, language, timezone, "
        "state, next_attempt_at, created_at, updated_at, priority) "
        "SELECT ?, NULL, 'p' || i || '@example.com', 'en', 'UTC', "
        "CASE WHEN i <= 5000 THEN 'sent' ELSE 'pending' END, ?, ?, ?, 1 FROM n",
        [nid, now, now, now],
    )
    params = ["w1", now, now, now, now, 1000]
    if not db._claim_lock:  # SQLite: the pick walks the index in order (read as one packed
        # row), then the update looks each picked id up by rowid, with and without ANALYZE
        # statistics (production databases have none)
        pick = packed_statement(db.pick_statement(", ".join(CLAIMED)), CLAIMED)
        for analyzed in (False, True):
            if analyzed:
                db._execute("ANALYZE")
            plans = [
                [r["detail"] for r in db._query(f"EXPLAIN QUERY PLAN {sql}", args)]
                for sql, args in ((pick, params[3:]), (CLAIM_BY_IDS, [*params[:3], "[1, 2]"]))
            ]
            assert plans == [
                [
                    "CO-ROUTINE (subquery-1)",
                    "SCAN deliveries USING INDEX deliveries_pending",
                    "SCAN (subquery-1)",
                ],
                [
                    "SEARCH deliveries USING INTEGER PRIMARY KEY (rowid=?)",
                    "LIST SUBQUERY 1",
                    "SCAN json_each VIRTUAL TABLE INDEX 1:",
                ],
            ], (analyzed, plans)
    else:
        db._execute("ANALYZE")
        plan = " / ".join(
            r["QUERY PLAN"] for r in db._query(f"EXPLAIN {db.claim_statement()}", params)
        )
        assert "Index Scan using deliveries_pending" in plan, plan
        assert "Index Scan using deliveries_pkey" in plan, plan
        assert "Sort" not in plan and "Seq Scan" not in plan, plan


# --- batched confirmations -----------------------------------------------------------
def _check_token(settings, purpose: str, url: str, expected: tuple[int, str]) -> str:
    prefix, token = url.rstrip(">").rsplit("/", 1)
    data = tokens.read_token(settings.verification_keys, purpose, token)
    assert (data.subscriber_id, data.nonce) == expected
    return f"{prefix}/<token>" + (">" if url.endswith(">") else "")


@pytest.mark.slow
def test_two_thousand_sign_ups_cost_requests_in_the_tens_each_with_its_own_links(
    db, sg_settings, clock, sendgrid
):
    settings = replace(sg_settings, send_batch_size=100)
    n = 2000
    for i in range(n):
        language, zone = ("de", "Europe/Berlin") if i % 2 else ("en", "UTC")
        outcome = subscriptions.subscribe(
            db, settings, f"person{i}@example.com", Preferences(language, zone),
            Visitor("198.51.100.7", "bench"), clock(),
        )  # fmt: skip
        assert outcome.mail_queued
        clock.advance(seconds=0.045)  # 90 s of sign-ups: two minutes, two languages

    stats = dispatcher(db, settings, clock).run()

    assert (stats.sent, stats.failed, stats.retried) == (n, 0, 0)
    # One request per 100 recipients, plus at most one partial one per (minute, language).
    assert math.ceil(n / 100) <= stats.requests <= math.ceil(n / 100) + 4
    assert len(sendgrid.requests) == stats.requests
    assert {tuple(r.body["categories"]) for r in sendgrid.requests} == {("confirmation",)}
    subscribers = {s["email"]: s for s in table(db, "subscribers")}
    rows = {d["email"]: d for d in table(db, "deliveries")}
    assert {d["state"] for d in rows.values()} == {"sent"}
    base = settings.public_base_url

    def expected(address: str) -> dict:
        return {
            "to": [{"email": address}],
            "substitutions": {
                "-confirm_url-": f"{base}/confirm/<token>",
                "-preferences_url-": f"{base}/preferences/<token>",
                "-unsubscribe_url-": f"{base}/unsubscribe/<token>",
            },
            "headers": {"List-Unsubscribe": f"<{base}/unsubscribe/one-click/<token>>"},
            "custom_args": {
                "delivery_id": str(rows[address]["id"]),
                "notification_id": str(rows[address]["notification_id"]),
            },
        }

    def without_tokens(personalization: dict) -> dict:
        s = subscribers[personalization["to"][0]["email"]]
        confirm, manage = (s["id"], s["token_nonce"]), (s["id"], s["link_nonce"])
        subs = personalization["substitutions"]
        return {
            **personalization,
            "substitutions": {
                "-confirm_url-": _check_token(
                    settings, tokens.CONFIRM, subs["-confirm_url-"], confirm
                ),
                "-preferences_url-": _check_token(
                    settings, tokens.MANAGE, subs["-preferences_url-"], manage
                ),
                "-unsubscribe_url-": _check_token(
                    settings, tokens.MANAGE, subs["-unsubscribe_url-"], manage
                ),
            },
            "headers": {
                "List-Unsubscribe": _check_token(
                    settings, tokens.MANAGE, personalization["headers"]["List-Unsubscribe"], manage
                )
            },
        }

    # A sample from every request: each recipient's own confirm link (and manage links).
    rng = random.Random(14)
    for request in sendgrid.requests:
        for p in rng.sample(request.body["personalizations"], 5):
            assert without_tokens(p) == expected(p["to"][0]["email"])
    # One whole request: all 100 recipients and the shared message.
    body = sendgrid.requests[0].body
    assert len(body["personalizations"]) == 100
    assert [without_tokens(p) for p in body["personalizations"]] == [
        expected(p["to"][0]["email"]) for p in body["personalizations"]
    ]
    first = rows[body["personalizations"][0]["to"][0]["email"]]
    email = render_email({"kind": "confirmation"}, first["language"], first["timezone"])
    assert {k: v for k, v in body.items() if k != "personalizations"} == (
        dispatched_envelope(email, "confirmation")
    )


def test_personal_mail_of_one_minute_shares_a_notification_per_kind(db, clock):
    a = add_subscriber(db, "a@example.com", now=clock(), state="pending")
    b = add_subscriber(db, "b@example.com", now=clock(), state="pending")
    c = add_subscriber(db, "c@example.com", now=clock())
    first, _ = queue_personal(db, "confirmation", a, clock())
    clock.advance(seconds=59)
    assert queue_personal(db, "confirmation", b, clock())[0] == first
    receipt, _ = queue_personal(db, "receipt", c, clock())
    clock.advance(seconds=1)  # the next minute: a new notification
    later, _ = queue_personal(db, "confirmation", a, clock())
    # A second receipt for the same subscriber within a minute (unsubscribe, undo,
    # unsubscribe) goes to the minute's next slot.
    again, _ = queue_personal(db, "receipt", c, clock())
    again2, _ = queue_personal(db, "receipt", c, clock())
    assert len({first, receipt, later, again, again2}) == 5
    assert [(n["id"], n["kind"], n["batch_key"]) for n in table(db, "notifications")] == [
        (first, "confirmation", "confirmation:2026-11-26T12:00Z"),
        (receipt, "receipt", "receipt:2026-11-26T12:00Z"),
        (later, "confirmation", "confirmation:2026-11-26T12:01Z"),
        (again, "receipt", "receipt:2026-11-26T12:01Z"),
        (again2, "receipt", "receipt:2026-11-26T12:01Z/1"),
    ]
    assert personal_rows(db) == [
        (first, "confirmation", a, "pending", None),
        (first, "confirmation", b, "pending", None),
        (receipt, "receipt", c, "pending", None),
        (later, "confirmation", a, "pending", None),
        (again, "receipt", c, "pending", None),
        (again2, "receipt", c, "pending", None),
    ]
    assert {d["priority"] for d in table(db, "deliveries")} == {1}
    with pytest.raises(LookupError):
        queue_personal(db, "confirmation", 999, clock())


def test_each_row_expires_72_hours_after_its_own_sign_up(db, clock):
    start = clock()
    clock.advance(seconds=10)
    a = add_subscriber(db, "a@example.com", now=clock(), state="pending")
    nid, _ = queue_personal(db, "confirmation", a, clock())
    clock.advance(seconds=40)
    b = add_subscriber(db, "b@example.com", now=clock(), state="pending")
    assert queue_personal(db, "confirmation", b, clock())[0] == nid

    assert db.expire_due(start + timedelta(hours=72, seconds=9)) == 0
    assert db.expire_due(start + timedelta(hours=72, seconds=10)) == 1
    assert personal_rows(db) == [
        (nid, "confirmation", a, "failed", "expired"),
        (nid, "confirmation", b, "pending", None),
    ]
    assert db.expire_due(start + timedelta(hours=72, seconds=49)) == 0
    assert db.expire_due(start + timedelta(hours=72, seconds=50)) == 1
    assert [r[3:] for r in personal_rows(db)] == [("failed", "expired")] * 2
    # A receipt lives 7 days.
    c = add_subscriber(db, "c@example.com", now=clock())
    queue_personal(db, "receipt", c, clock())
    assert db.expire_due(clock() + timedelta(days=7) - timedelta(seconds=1)) == 0
    assert db.expire_due(clock() + timedelta(days=7)) == 1


def test_erasing_one_subscriber_leaves_the_others_confirmations(db, clock):
    a, b, c = (
        add_subscriber(db, f"{name}@example.com", now=clock(), state="pending")
        for name in ("a", "b", "c")
    )
    d = add_subscriber(db, "d@example.com", now=clock())
    nid = {queue_personal(db, "confirmation", s, clock())[0] for s in (a, b, c)}.pop()
    receipt, _ = queue_personal(db, "receipt", d, clock())

    subscriptions.erase(db, a)

    assert personal_rows(db) == [
        (nid, "confirmation", b, "pending", None),
        (nid, "confirmation", c, "pending", None),
        (receipt, "receipt", d, "pending", None),
    ]
    subscriptions.erase(db, d)  # its receipt notification is left empty: it goes too
    subscriptions.erase(db, b)
    assert [(n["id"], n["kind"]) for n in table(db, "notifications")] == [(nid, "confirmation")]
    assert personal_rows(db) == [(nid, "confirmation", c, "pending", None)]
    subscriptions.erase(db, c)
    assert table(db, "notifications") == [] and table(db, "deliveries") == []
    # A sign-up in the same minute gets a fresh shared notification.
    e = add_subscriber(db, "e@example.com", now=clock(), state="pending")
    fresh, _ = queue_personal(db, "confirmation", e, clock())
    assert personal_rows(db) == [(fresh, "confirmation", e, "pending", None)]


def test_a_resend_from_the_ledger_goes_before_pending_confirmations(admin, db, mail, app, clock):
    nid = incident(db, clock(), 3)
    clock.advance(hours=25)  # past the incident's expiry: nothing goes out automatically
    assert jobs.dispatch(app).expired == 3
    pending_signups(db, 50, clock())  # a flood of confirmations, queued before the resend
    clock.advance(minutes=1)
    assert login(admin).status_code == 303

    response = post(admin, f"/admin/notifications/{nid}/resend", {"which": "expired"})

    [resend] = [n for n in table(db, "notifications") if n["resend_of"] == nid]
    assert response.headers["Location"] == f"/admin/notifications/{resend['id']}"
    assert [
        (d["email"], d["state"], d["priority"])
        for d in db._query(
            "SELECT * FROM deliveries WHERE notification_id = ? ORDER BY id", [resend["id"]]
        )
    ] == [(f"reader{i}@example.com", "pending", 0) for i in range(3)]
    jobs.dispatch(app)
    assert [
        (r.body["categories"], len(r.body["personalizations"])) for r in mail.accepted_requests()
    ] == [(["incident"], 3), (["confirmation"], 50)]
    # Personal mail stays out of the ops ledger's list (broadcast only, as before).
    assert [n["id"] for n in db.recent_notifications()] == [resend["id"], nid]


def test_migration_0011_gives_existing_personal_rows_the_personal_priority(tmp_path):
    """Rows queued before the upgrade: one-recipient confirmations become priority 1, broadcast
    rows stay 0, and their lifetime stays the notification's (no per-row expires_at)."""
    import sqlite3

    from notifier.store.migrations import SCHEMA, statements

    conn = sqlite3.connect(tmp_path / "old.db")
    names = [name for name, _ in SCHEMA]
    upgrade = names.index("0011_delivery_priority")
    for _name, migration in SCHEMA[:upgrade]:
        for statement in statements(migration, "sqlite"):
            conn.execute(statement)
    t = "2026-11-26T12:00:00.000000Z"
    conn.execute(
        "INSERT INTO subscribers (id, email, language, timezone, state, link_nonce, created_at, "
        "updated_at) VALUES (1, 'a@example.com', 'en', 'UTC', 'pending', 'n', ?, ?)",
        [t, t],
    )
    for nid, kind in ((1, "confirmation"), (2, "incident"), (3, "receipt")):
        conn.execute(
            "INSERT INTO notifications (id, kind, content, created_at, expires_at) "
            "VALUES (?, ?, '{}', ?, ?)",
            [nid, kind, t, t],
        )
        conn.execute(
            "INSERT INTO deliveries (notification_id, subscriber_id, email, language, timezone, "
            "state, next_attempt_at, created_at, updated_at) "
            "VALUES (?, 1, 'a@example.com', 'en', 'UTC', 'pending', ?, ?, ?)",
            [nid, t, t, t],
        )
    for statement in statements(SCHEMA[upgrade][1], "sqlite"):
        conn.execute(statement)
    assert conn.execute(
        "SELECT notification_id, priority, expires_at FROM deliveries ORDER BY id"
    ).fetchall() == [(1, 1, None), (2, 0, None), (3, 1, None)]
    assert conn.execute("SELECT DISTINCT batch_key FROM notifications").fetchall() == [(None,)]
