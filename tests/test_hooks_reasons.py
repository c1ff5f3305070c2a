"""`dropped` events: only SendGrid's address-level drop reasons suppress an address.

The reasons and their sources are listed in notifier/hooks.py (DROP_REASONS). A drop for a
reason about the message (its content, its headers, the account's quota) or for a reason we
do not know is recorded on the delivery and raised as an ops alert; the address stays.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from .helpers import add_subscriber
from .test_admin_helpers import ADMIN_HASH, login
from .test_hooks import _public_key_setting, event, post, seed

ADDRESS_REASONS = ["Bounced Address", "Spam Reporting Address", "Unsubscribed Address", "Invalid"]
MESSAGE_REASONS = [
    "Spam Content",
    "Invalid SMTPAPI header",
    "Recipient List over Package Quota",
    "Duplicate message",
]
# Not in SendGrid's list: a reason added later, or one reworded, must not suppress anybody.
UNKNOWN_REASONS = ["Bounced", "Invalid Address Format", "Spam Reporting", "Quota exceeded"]
MIGRATION = "0006_delivery_provider_reason"


@pytest.fixture
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def settings(settings, signing_key):
    """Webhook key set, and an admin who can look at the ledger and the dashboard."""
    return settings.with_overrides(
        sendgrid_webhook_public_key=_public_key_setting(signing_key),
        admin_password_hash=ADMIN_HASH,
    )


# An alert episode (issue 15, migration 0015) no ops address was mailed about: the tests'
# settings have no OPS_ALERT_EMAILS.
UNMAILED_EPISODE = {
    "episode_key": "message_dropped",
    "subject": None,
    "acknowledged_at": None,
    "acknowledged_by": None,
    "notification_id": None,
    "end_notification_id": None,
    "mailed_at": None,
}


def tables(db) -> dict[str, list[dict]]:
    return {
        name: db._query(f"SELECT * FROM {name} ORDER BY 1")
        for name in ("subscribers", "deliveries", "webhook_events", "alerts")
    }


def summary(applied: int, suppressed: int = 0, cancelled: int = 0) -> dict[str, int]:
    return {
        "received": applied,
        "applied": applied,
        "duplicates": 0,
        "ignored": 0,
        "suppressed": suppressed,
        "cancelled": cancelled,
    }


def drop_message(parts: str, notifications: str) -> str:
    return (
        "SendGrid dropped mail for a reason about the message, not the address, so no address "
        f"was suppressed: {parts}. Notifications: {notifications}. See their deliveries."
    )


@pytest.mark.parametrize("reason", ADDRESS_REASONS)
def test_drop_for_an_address_reason_suppresses_the_address(client, db, clock, signing_key, reason):
    ids = seed(db)
    before = tables(db)
    at = clock() - timedelta(minutes=2)
    batch = [
        event("dropped", "jane@example.com", at, "e1", delivery_id=str(ids["jane_sent"]),
              reason=reason, status="5.0.0"),
    ]  # fmt: skip
    response = post(client, signing_key, batch, at=clock())

    assert (response.status_code, response.get_json()) == (200, summary(1, 1, 1))
    after = tables(db)
    stored = f"dropped: {reason}"
    jane, bob = before["subscribers"]
    assert after["subscribers"] == [
        {
            **jane,
            "state": "suppressed",
            "suppressed_at": clock(),
            "suppressed_reason": stored,
            "updated_at": clock(),
        },
        bob,
    ]
    sent, pending, bobs = before["deliveries"]
    assert after["deliveries"] == [
        {**sent, "provider_event": "dropped", "provider_event_at": at, "provider_reason": reason},
        {**pending, "state": "suppressed", "reason": stored, "updated_at": clock()},
        bobs,
    ]
    assert after["webhook_events"] == [
        {
            "sg_event_id": "e1",
            "event": "dropped",
            "delivery_id": ids["jane_sent"],
            "received_at": clock(),
        }
    ]
    assert after["alerts"] == []


@pytest.mark.parametrize("reason", MESSAGE_REASONS + UNKNOWN_REASONS)
def test_drop_for_a_message_reason_is_recorded_and_alerted_not_suppressed(
    client, db, clock, signing_key, reason
):
    ids = seed(db)
    before = tables(db)
    at = clock() - timedelta(minutes=2)
    batch = [
        event("dropped", "jane@example.com", at, "e1", delivery_id=str(ids["jane_sent"]),
              reason=reason, status="5.0.0"),
    ]  # fmt: skip
    response = post(client, signing_key, batch, at=clock())

    assert (response.status_code, response.get_json()) == (200, summary(1))
    after = tables(db)
    assert after["subscribers"] == before["subscribers"]
    sent, pending, bobs = before["deliveries"]
    assert after["deliveries"] == [
        {**sent, "provider_event": "dropped", "provider_event_at": at, "provider_reason": reason},
        pending,
        bobs,
    ]
    assert after["webhook_events"] == [
        {
            "sg_event_id": "e1",
            "event": "dropped",
            "delivery_id": ids["jane_sent"],
            "received_at": clock(),
        }
    ]
    notification = sent["notification_id"]
    assert after["alerts"] == [
        {
            "id": after["alerts"][0]["id"],
            "kind": "message_dropped",
            "message": drop_message(f"{reason} (1)", str(notification)),
            "created_at": clock(),
            "resolved_at": None,
            **UNMAILED_EPISODE,
        }
    ]


@pytest.mark.parametrize(
    "fields",
    [{}, {"reason": ""}, {"reason": None}, {"reason": ["Bounced Address"]}, {"reason": 7}],
    ids=["missing", "empty", "null", "list", "number"],
)
def test_drop_without_a_readable_reason_does_not_suppress(client, db, clock, signing_key, fields):
    ids = seed(db)
    before = tables(db)
    batch = [
        event("dropped", "jane@example.com", clock(), "e1", delivery_id=str(ids["jane_sent"]),
              **fields),
    ]  # fmt: skip
    response = post(client, signing_key, batch, at=clock())

    assert (response.status_code, response.get_json()) == (200, summary(1))
    after = tables(db)
    assert after["subscribers"] == before["subscribers"]
    sent, pending, bobs = before["deliveries"]
    assert after["deliveries"] == [
        {
            **sent,
            "provider_event": "dropped",
            "provider_event_at": clock(),
            "provider_reason": None,
        },
        pending,
        bobs,
    ]
    assert [a["message"] for a in after["alerts"]] == [
        drop_message("no reason given (1)", str(sent["notification_id"]))
    ]


def test_address_reasons_match_whatever_the_case_and_spacing(client, db, clock, signing_key):
    ids = seed(db)
    batch = [event("dropped", "jane@example.com", clock(), "e1", reason="  bounced   ADDRESS ")]
    assert post(client, signing_key, batch, at=clock()).get_json() == summary(1, 1, 1)
    jane = db._query_one("SELECT state, suppressed_reason FROM subscribers WHERE id = ?",
                         [ids["jane"]])  # fmt: skip
    assert jane == {"state": "suppressed", "suppressed_reason": "dropped: bounced ADDRESS"}
    assert db._query("SELECT * FROM alerts") == []


def test_message_drops_of_one_batch_make_one_alert_listing_reasons_and_notifications(
    client, db, clock, signing_key
):
    ids = seed(db)
    before = tables(db)
    at = clock() - timedelta(minutes=1)
    batch = [
        event("dropped", "jane@example.com", at, "e1", delivery_id=str(ids["jane_sent"]),
              reason="Spam Content"),
        event("dropped", "jane@example.com", at, "e2", delivery_id=str(ids["jane_pending"]),
              reason="Spam Content"),
        event("dropped", "bob@example.com", at, "e3", delivery_id=str(ids["bob_pending"]),
              reason="Recipient List over Package Quota"),
        # No delivery id: still a drop to tell ops about, and still no suppression.
        event("dropped", "bob@example.com", at, "e4", reason="Invalid SMTPAPI header"),
    ]  # fmt: skip
    response = post(client, signing_key, batch, at=clock())

    assert response.get_json() == summary(4)
    after = tables(db)
    assert after["subscribers"] == before["subscribers"]
    first, second = (d["notification_id"] for d in before["deliveries"][:2])
    [alert] = after["alerts"]
    assert alert == {
        "id": alert["id"],
        "kind": "message_dropped",
        "message": drop_message(
            "Spam Content (2); Recipient List over Package Quota (1); Invalid SMTPAPI header (1)",
            f"{first}, {second}",
        ),
        "created_at": clock(),
        "resolved_at": None,
        **UNMAILED_EPISODE,
    }
    assert [
        (d["state"], d["provider_event"], d["provider_reason"]) for d in after["deliveries"]
    ] == [
        ("sent", "dropped", "Spam Content"),
        ("pending", "dropped", "Spam Content"),
        ("pending", "dropped", "Recipient List over Package Quota"),
    ]


def test_a_later_batch_refreshes_the_open_alert(client, db, clock, signing_key):
    ids = seed(db)
    first = [event("dropped", "jane@example.com", clock(), "e1",
                   delivery_id=str(ids["jane_sent"]), reason="Spam Content")]  # fmt: skip
    post(client, signing_key, first, at=clock())
    created = clock()
    clock.advance(minutes=5)
    second = [event("dropped", "bob@example.com", clock(), "e2",
                    delivery_id=str(ids["bob_pending"]), reason="Spam Content")]  # fmt: skip
    post(client, signing_key, second, at=clock())
    [alert] = db._query("SELECT kind, message, created_at, resolved_at FROM alerts")
    notification = db._scalar(
        "SELECT notification_id FROM deliveries WHERE id = ?", [ids["bob_pending"]]
    )
    assert alert == {
        "kind": "message_dropped",
        "message": drop_message("Spam Content (1)", str(notification)),
        "created_at": created,
        "resolved_at": None,
    }


def test_replayed_message_drop_alerts_once(client, db, clock, signing_key):
    ids = seed(db)
    batch = [event("dropped", "jane@example.com", clock(), "e1",
                   delivery_id=str(ids["jane_sent"]), reason="Spam Content")]  # fmt: skip
    post(client, signing_key, batch, at=clock())
    assert db._scalar("SELECT COUNT(*) FROM alerts WHERE resolved_at IS NULL") == 1
    db._execute("UPDATE alerts SET resolved_at = ?", [clock()])  # ops marked it resolved
    clock.advance(minutes=1)
    assert post(client, signing_key, batch, at=clock()).get_json()["duplicates"] == 1
    assert db._scalar("SELECT COUNT(*) FROM alerts WHERE resolved_at IS NULL") == 0


def test_message_drop_shows_its_reason_in_the_ledger_and_dashboard(
    app, client, db, clock, signing_key
):
    admin = app.test_client()
    assert login(admin).status_code == 303
    ids = seed(db)
    batch = [event("dropped", "jane@example.com", clock(), "e1",
                   delivery_id=str(ids["jane_sent"]), reason="Spam Content")]  # fmt: skip
    post(client, signing_key, batch, at=clock())
    notification = db._scalar(
        "SELECT notification_id FROM deliveries WHERE id = ?", [ids["jane_sent"]]
    )
    page = admin.get(f"/admin/notifications/{notification}").text
    row = page.split('<tr data-delivery="jane@example.com"', 1)[1].split("</tr>", 1)[0]
    assert 'dropped · <span class="reason">Spam Content</span>' in row
    dashboard = admin.get("/admin/").text
    assert "message_dropped" in dashboard and "Spam Content (1)" in dashboard


def test_the_reason_column_arrives_by_migration_and_keeps_every_row(db, clock):
    """Upgrading a database from before the column keeps every delivery as it was."""
    seed(db)
    # Back to the schema before the migration: the column gone and the step not recorded.
    db._execute("ALTER TABLE deliveries DROP COLUMN provider_reason")
    applied = "schema_migrations" if _is_postgres(db) else "_sqlite_migrations"
    db._execute(f"DELETE FROM {applied} WHERE name = ?", [MIGRATION])
    old = db._query("SELECT * FROM deliveries ORDER BY id")
    subscribers = db._query("SELECT * FROM subscribers ORDER BY id")

    assert db.upgrade() == [MIGRATION]
    assert db._query("SELECT * FROM deliveries ORDER BY id") == [
        {**row, "provider_reason": None} for row in old
    ]
    assert db._query("SELECT * FROM subscribers ORDER BY id") == subscribers


def _is_postgres(db) -> bool:
    return type(db).__name__ == "PostgresStore"


def test_the_upgrade_lifts_suppressions_that_a_message_level_drop_caused(db, clock):
    """Addresses silenced by a drop about the message (before the reasons were told apart)
    come back as ops' unsuppress would bring them; every other suppression stays."""
    now = clock()
    cases = {
        "spam@example.com": ("dropped: Spam Content", "confirmed"),
        "smtpapi@example.com": ("dropped: Invalid SMTPAPI header", "confirmed"),
        "quota@example.com": ("dropped: Recipient List over Package Quota", "confirmed"),
        "bare@example.com": ("dropped", "confirmed"),
        "unknown@example.com": ("dropped: Some reason SendGrid adds next year", "confirmed"),
        "unsub@example.com": ("dropped: Unsubscribed Address", "suppressed"),
        "spamlist@example.com": ("dropped: Spam Reporting Address", "suppressed"),
        "left@example.com": ("dropped: spam content", "unsubscribed"),
        "bounced@example.com": ("dropped: Bounced Address", "suppressed"),
        "invalid@example.com": ("dropped: Invalid", "suppressed"),
        "hard@example.com": ("bounce: 550 no such user", "suppressed"),
        "complained@example.com": ("spamreport", "suppressed"),
        "never-confirmed@example.com": ("dropped: Spam Content", "suppressed"),
    }
    ids = {}
    for email, (reason, _) in cases.items():
        ids[email] = add_subscriber(db, email, now=now - timedelta(days=9))
        db._execute(
            "UPDATE subscribers SET state = 'suppressed', suppressed_reason = ?, "
            "suppressed_at = ? WHERE id = ?",
            [reason, now, ids[email]],
        )
    db._execute(
        "UPDATE subscribers SET unsubscribed_at = ? WHERE email = 'left@example.com'",
        [now - timedelta(days=1)],
    )
    db._execute(
        "UPDATE subscribers SET confirmed_at = NULL WHERE email = 'never-confirmed@example.com'"
    )
    before = {r["email"]: r for r in db._query("SELECT * FROM subscribers")}
    applied = "schema_migrations" if _is_postgres(db) else "_sqlite_migrations"
    db._execute(f"DELETE FROM {applied} WHERE name = ?", ["0007_unsuppress_message_drops"])

    assert db.upgrade() == ["0007_unsuppress_message_drops"]
    after = {r["email"]: r for r in db._query("SELECT * FROM subscribers")}
    for email, (_reason, state) in cases.items():
        if state == "suppressed":
            assert after[email] == before[email], email
        else:
            lifted = {"state": state, "suppressed_at": None, "suppressed_reason": None}
            assert after[email] == {**before[email], **lifted}, email
