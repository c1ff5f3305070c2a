"""POST /hooks/sendgrid: signed SendGrid event batches, signed here with a real P-256 key."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from notifier.hooks import MAX_BODY_BYTES, SIGNATURE_HEADER, TIMESTAMP_HEADER

T0 = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)  # when the test rows were created


def _public_key_setting(private_key: ec.EllipticCurvePrivateKey) -> str:
    der = private_key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


@pytest.fixture
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def settings(settings, signing_key):
    return settings.with_overrides(sendgrid_webhook_public_key=_public_key_setting(signing_key))


def sign(key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    """What SendGrid does: ECDSA P-256 / SHA-256 over timestamp + body, base64 DER."""
    return base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


def post(client, key, payload, *, at: datetime, signature: str | None = None, headers=None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    timestamp = str(int(at.timestamp()))
    sent = {
        SIGNATURE_HEADER: signature if signature is not None else sign(key, timestamp, body),
        TIMESTAMP_HEADER: timestamp,
        "Content-Type": "application/json",
    }
    sent.update(headers or {})
    return client.post("/hooks/sendgrid", data=body, headers=sent)


def _ts(dt: datetime) -> int:
    return int(dt.timestamp())


def seed(db) -> dict[str, int]:
    """Two confirmed subscribers; jane has a sent and a pending delivery, bob a pending one."""
    sql = (
        "INSERT INTO subscribers (email, language, timezone, state, link_nonce, created_at, "
        "updated_at, confirmed_at) VALUES (?, ?, ?, 'confirmed', ?, ?, ?, ?) RETURNING id"
    )
    ids = {
        "jane": db._scalar(sql, ["jane@example.com", "de", "Europe/Berlin", "n1", T0, T0, T0]),
        "bob": db._scalar(sql, ["bob@example.com", "en", "UTC", "n2", T0, T0, T0]),
    }
    notifications = [
        db._scalar(
            "INSERT INTO notifications (kind, content, created_at, expires_at) "
            "VALUES ('incident', '{}', ?, ?) RETURNING id",
            [T0, T0 + timedelta(hours=24)],
        )
        for _ in range(2)
    ]
    rows = [
        ("jane_sent", notifications[0], "jane", "jane@example.com", "sent"),
        ("jane_pending", notifications[1], "jane", "jane@example.com", "pending"),
        ("bob_pending", notifications[1], "bob", "bob@example.com", "pending"),
    ]
    for name, notification, who, email, state in rows:
        ids[name] = db._scalar(
            "INSERT INTO deliveries (notification_id, subscriber_id, email, language, timezone, "
            "state, next_attempt_at, created_at, updated_at) "
            "VALUES (?, ?, ?, 'de', 'UTC', ?, ?, ?, ?) RETURNING id",
            [notification, ids[who], email, state, T0, T0, T0],
        )
    return ids


def tables(db) -> dict[str, list[dict]]:
    return {
        name: db._query(f"SELECT * FROM {name} ORDER BY 1")
        for name in ("subscribers", "deliveries", "webhook_events")
    }


def event(name: str, email: str, at: datetime, event_id: str, **fields) -> dict:
    return {"email": email, "timestamp": _ts(at), "event": name, "sg_event_id": event_id, **fields}


def test_valid_batch_is_applied(client, db, clock, signing_key):
    ids = seed(db)
    before = tables(db)
    at = clock() - timedelta(minutes=5)
    batch = [
        event("processed", "bob@example.com", at, "e0", delivery_id=str(ids["bob_pending"])),
        event("delivered", "bob@example.com", at, "e1", delivery_id=str(ids["bob_pending"])),
        event(
            "bounce",
            "jane@example.com",
            at,
            "e2",
            delivery_id=str(ids["jane_sent"]),
            type="bounce",
            reason="550 5.1.1 The email account that you tried to reach does not exist",
        ),
    ]
    response = post(client, signing_key, batch, at=clock())

    assert response.status_code == 200
    assert response.get_json() == {
        "received": 3,
        "applied": 2,
        "duplicates": 0,
        "ignored": 1,
        "suppressed": 1,
        "cancelled": 1,
    }
    after = tables(db)
    reason = "bounce: 550 5.1.1 The email account that you tried to reach does not exist"
    jane, bob = before["subscribers"]
    assert after["subscribers"] == [
        {
            **jane,
            "state": "suppressed",
            "suppressed_at": clock(),
            "suppressed_reason": reason,
            "updated_at": clock(),
        },
        bob,
    ]
    sent, pending, bobs = before["deliveries"]
    assert after["deliveries"] == [
        {**sent, "provider_event": "bounce", "provider_event_at": at},
        {**pending, "state": "suppressed", "reason": reason, "updated_at": clock()},
        {**bobs, "provider_event": "delivered", "provider_event_at": at},
    ]
    assert after["webhook_events"] == [
        {
            "sg_event_id": "e1",
            "event": "delivered",
            "delivery_id": ids["bob_pending"],
            "received_at": clock(),
        },
        {
            "sg_event_id": "e2",
            "event": "bounce",
            "delivery_id": ids["jane_sent"],
            "received_at": clock(),
        },
    ]


def test_bad_signature_is_refused_and_changes_nothing(client, db, clock):
    ids = seed(db)
    before = tables(db)
    intruder = ec.generate_private_key(ec.SECP256R1())
    batch = [event("bounce", "jane@example.com", clock(), "e1", delivery_id=str(ids["jane_sent"]))]
    response = post(client, intruder, batch, at=clock())
    assert (response.status_code, response.get_json()) == (
        403,
        {"error": "Forbidden", "status": 403},
    )
    assert tables(db) == before


def test_body_changed_after_signing_is_refused(client, db, clock, signing_key):
    seed(db)
    before = tables(db)
    timestamp = str(_ts(clock()))
    signed = json.dumps([event("delivered", "bob@example.com", clock(), "e1")]).encode()
    tampered = json.dumps([event("bounce", "bob@example.com", clock(), "e1")]).encode()
    response = post(
        client, signing_key, tampered, at=clock(), signature=sign(signing_key, timestamp, signed)
    )
    assert response.status_code == 403
    assert tables(db) == before


@pytest.mark.parametrize(
    "headers",
    [
        {SIGNATURE_HEADER: ""},
        {TIMESTAMP_HEADER: ""},
        {SIGNATURE_HEADER: "not base64!"},
        {SIGNATURE_HEADER: base64.b64encode(b"\x30\x02\x01\x01").decode()},
        {TIMESTAMP_HEADER: "soon"},
    ],
    ids=["no-signature", "no-timestamp", "garbage-signature", "bad-der", "bad-timestamp"],
)
def test_missing_or_malformed_signature_headers_are_refused(
    client, db, clock, signing_key, headers
):
    seed(db)
    before = tables(db)
    batch = [event("bounce", "jane@example.com", clock(), "e1")]
    assert post(client, signing_key, batch, at=clock(), headers=headers).status_code == 403
    assert tables(db) == before


@pytest.mark.parametrize("skew", [timedelta(minutes=-11), timedelta(minutes=11)])
def test_stale_or_future_timestamp_is_refused(client, db, clock, signing_key, skew):
    seed(db)
    before = tables(db)
    batch = [event("bounce", "jane@example.com", clock(), "e1")]
    assert post(client, signing_key, batch, at=clock() + skew).status_code == 403
    assert tables(db) == before


def test_timestamp_within_ten_minutes_is_accepted(client, db, clock, signing_key):
    seed(db)
    batch = [event("delivered", "bob@example.com", clock(), "e1")]
    at = clock() - timedelta(minutes=9, seconds=59)
    assert post(client, signing_key, batch, at=at).status_code == 200


@pytest.mark.parametrize("configured", [None, "bm90IGEga2V5"], ids=["missing", "not-a-key"])
def test_unusable_public_key_setting_refuses_everything(
    app, client, db, clock, signing_key, settings, configured
):
    app.extensions["settings"] = settings.with_overrides(sendgrid_webhook_public_key=configured)
    seed(db)
    before = tables(db)
    batch = [event("bounce", "jane@example.com", clock(), "e1")]
    assert post(client, signing_key, batch, at=clock()).status_code == 403
    assert tables(db) == before


def test_replayed_event_is_applied_once(client, db, clock, signing_key):
    ids = seed(db)
    batch = [event("bounce", "jane@example.com", clock(), "e1", delivery_id=str(ids["jane_sent"]))]
    first = post(client, signing_key, batch, at=clock())
    after_first = tables(db)
    clock.advance(minutes=3)
    second = post(client, signing_key, batch, at=clock())

    assert first.get_json()["applied"] == 1
    assert second.get_json() == {
        "received": 1,
        "applied": 0,
        "duplicates": 1,
        "ignored": 0,
        "suppressed": 0,
        "cancelled": 0,
    }
    assert tables(db) == after_first


@pytest.mark.parametrize("name", ["dropped", "spamreport", "unsubscribe", "group_unsubscribe"])
def test_complaints_and_drops_suppress_by_address_when_no_delivery_id(
    client, db, clock, signing_key, name
):
    seed(db)
    batch = [event(name, "Jane@Example.COM", clock(), "e1", reason="Bounced Address")]
    response = post(client, signing_key, batch, at=clock())
    assert response.get_json()["cancelled"] == 1
    jane = db._query_one("SELECT * FROM subscribers WHERE email = 'jane@example.com'")
    expected = f"{name}: Bounced Address"
    assert (jane["state"], jane["suppressed_reason"]) == ("suppressed", expected)
    states = db._query("SELECT email, state, reason FROM deliveries ORDER BY id")
    assert states == [
        {"email": "jane@example.com", "state": "sent", "reason": None},
        {"email": "jane@example.com", "state": "suppressed", "reason": expected},
        {"email": "bob@example.com", "state": "pending", "reason": None},
    ]


def test_delivery_id_for_another_address_falls_back_to_the_address(client, db, clock, signing_key):
    ids = seed(db)
    # An id that in this database belongs to bob, e.g. an event from another environment.
    bobs_id = str(ids["bob_pending"])
    batch = [event("spamreport", "jane@example.com", clock(), "e1", delivery_id=bobs_id)]
    post(client, signing_key, batch, at=clock())
    states = db._query("SELECT email, state FROM subscribers ORDER BY id")
    assert states == [
        {"email": "jane@example.com", "state": "suppressed"},
        {"email": "bob@example.com", "state": "confirmed"},
    ]


@pytest.mark.parametrize("foreign_id", ["99999999999999999999999", "-3", "0", "12a", "٣"])
def test_delivery_id_that_cannot_be_ours_falls_back_to_the_address(
    client, db, clock, signing_key, foreign_id
):
    ids = seed(db)
    batch = [event("bounce", "jane@example.com", clock(), "e1", delivery_id=foreign_id)]
    response = post(client, signing_key, batch, at=clock())
    assert (response.status_code, response.get_json()["suppressed"]) == (200, 1)
    assert db._query("SELECT delivery_id FROM webhook_events") == [{"delivery_id": None}]
    assert db._scalar("SELECT state FROM subscribers WHERE id = ?", [ids["jane"]]) == "suppressed"


def test_deferred_is_recorded_without_state_change(client, db, clock, signing_key):
    ids = seed(db)
    before = tables(db)
    at = clock() - timedelta(minutes=1)
    batch = [
        event(
            "deferred",
            "bob@example.com",
            at,
            "e1",
            delivery_id=str(ids["bob_pending"]),
            response="451 4.7.1 Try again later",
            attempt="1",
        ),
    ]
    assert post(client, signing_key, batch, at=clock()).status_code == 200
    after = tables(db)
    assert after["subscribers"] == before["subscribers"]
    _, _, bobs = before["deliveries"]
    assert after["deliveries"][2] == {**bobs, "provider_event": "deferred", "provider_event_at": at}


def test_blocked_bounce_is_recorded_but_does_not_suppress(client, db, clock, signing_key):
    ids = seed(db)
    batch = [
        event(
            "bounce",
            "jane@example.com",
            clock(),
            "e1",
            delivery_id=str(ids["jane_sent"]),
            type="blocked",
            reason="554 IP listed on a blocklist",
        ),
    ]
    assert post(client, signing_key, batch, at=clock()).get_json()["suppressed"] == 0
    assert db._scalar("SELECT state FROM subscribers WHERE id = ?", [ids["jane"]]) == "confirmed"
    row = db._query_one(
        "SELECT provider_event, state FROM deliveries WHERE id = ?", [ids["jane_sent"]]
    )
    assert row == {"provider_event": "blocked", "state": "sent"}


def test_older_event_does_not_overwrite_a_newer_one(client, db, clock, signing_key):
    ids = seed(db)
    newer, older = clock() - timedelta(minutes=1), clock() - timedelta(minutes=2)
    did = str(ids["bob_pending"])
    batch = [
        event("delivered", "bob@example.com", newer, "e1", delivery_id=did),
        event("deferred", "bob@example.com", older, "e2", delivery_id=did),
    ]
    post(client, signing_key, batch, at=clock())
    row = db._query_one(
        "SELECT provider_event, provider_event_at FROM deliveries WHERE id = ?", [did]
    )
    assert row == {"provider_event": "delivered", "provider_event_at": newer}


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"event": "bounce"}', b"[1, 2]", b"\xff\xfe"],
    ids=["not-json", "object", "list-of-numbers", "not-utf8"],
)
def test_signed_body_that_is_not_a_list_of_events_is_400(client, db, clock, signing_key, body):
    seed(db)
    before = tables(db)
    response = post(client, signing_key, body, at=clock())
    assert (response.status_code, response.get_json()) == (
        400,
        {"error": "Bad Request", "status": 400},
    )
    assert tables(db) == before


def test_oversized_body_is_refused_before_verification(client, db, clock, signing_key):
    body = b"[" + b" " * MAX_BODY_BYTES + b"]"
    assert post(client, signing_key, body, at=clock()).status_code == 413


def test_batch_as_large_as_sendgrid_sends_is_accepted(client, db, clock, signing_key):
    seed(db)
    batch = [
        event("delivered", f"user{i}@example.com", clock(), f"e{i}", delivery_id=str(i))
        for i in range(7000)
    ]
    body = json.dumps(batch).encode()
    assert len(body) > 768 * 1024  # far beyond the app-wide 256 KB form limit
    response = post(client, signing_key, body, at=clock())
    assert (response.status_code, response.get_json()["applied"]) == (200, 7000)


def test_signature_agrees_with_the_sendgrid_library_helper(signing_key):
    from sendgrid.helpers.eventwebhook import EventWebhook

    from notifier.hooks import load_public_key, signature_is_valid

    body, timestamp = b'[{"event":"delivered","sg_event_id":"x"}]', "1795000000"
    signature = sign(signing_key, timestamp, body)
    helper = EventWebhook(_public_key_setting(signing_key))
    ours = load_public_key(_public_key_setting(signing_key))
    assert helper.verify_signature(body.decode(), signature, timestamp) is True
    assert signature_is_valid(ours, signature, timestamp, body) is True
    assert signature_is_valid(ours, signature, timestamp, body + b" ") is False
