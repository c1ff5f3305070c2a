"""Dispatch against the fake SendGrid: payloads, retries, 429, 400, pause, expiry, leases."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest

from notifier.delivery.dispatch import Dispatcher
from notifier.delivery.mailer import SendGridBackend, SendResult, apply_substitutions
from notifier.notifications import queue_personal
from notifier.render import SharedEmail, render_email
from notifier.tokens import MANAGE, read_token

from .helpers import add_subscriber, dispatched_envelope, table

CONTENT = {
    "kind": "incident",
    "page_name": "Sinch",
    "page_url": "https://status.sinch.com",
    "incident": {
        "key": "abc123",
        "title": "Delayed SMS delivery",
        "link": "https://status.sinch.com/incidents/abc123",
        "impact": "major",
        "components": [{"id": "sms-eu", "name": "SMS (EU)"}],
        "scheduled_start": None,
        "scheduled_end": None,
    },
    "status": "identified",
    "change": "new_update",
    "new_updates": 1,
    "updates": [
        {"status": "identified", "at": "2026-11-26T11:30:00Z", "text": "Cause found."},
        {"status": "investigating", "at": "2026-11-26T11:00:00Z", "text": "Looking into it."},
    ],
}


@pytest.fixture
def sg_settings(settings, sendgrid):
    return replace(
        settings,
        email_backend="sendgrid",
        sendgrid_api_key=sendgrid.api_key,
        sendgrid_api_host=sendgrid.base_url,
        sendgrid_timeout_seconds=2.0,  # a loaded CI machine answers late, not never
        mail_from="Sinch Status <status@sinch.example>",
        list_id="Sinch status <status.sinch.example>",
    )


@pytest.fixture
def notification(db, clock):
    def create(content=CONTENT, ttl_hours=24):
        nid = db.create_notification(
            content["kind"], content, clock(), clock() + timedelta(hours=ttl_hours), audience={}
        )
        db.fan_out(nid, clock())
        return nid

    return create


def without_tokens(value, settings, expected: tuple[int, str]):
    """Replace every signed MANAGE token with <token> after checking whom it names."""
    if isinstance(value, dict):
        return {k: without_tokens(v, settings, expected) for k, v in value.items()}
    if isinstance(value, list):
        return [without_tokens(v, settings, expected) for v in value]
    if isinstance(value, str) and settings.public_base_url in value:
        prefix, token = value.rstrip(">").rsplit("/", 1)
        data = read_token(settings.secret_key, MANAGE, token)
        assert (data.subscriber_id, data.nonce) == expected
        return f"{prefix}/<token>" + (">" if value.endswith(">") else "")
    return value


def dispatcher(db, settings, clock, **kw):
    backend = SendGridBackend(
        settings.sendgrid_api_key,
        settings.sendgrid_api_host,
        settings.sendgrid_timeout_seconds,
        clock=lambda: clock().timestamp(),
    )
    return Dispatcher(db, backend, settings, clock, rng=random.Random(1), owner="w1", **kw)


def states(db):
    return sorted((d["email"], d["state"], d["reason"]) for d in table(db, "deliveries"))


def test_one_request_per_language_with_the_whole_payload(
    db,
    sg_settings,
    clock,
    notification,
    sendgrid,
):
    de1 = add_subscriber(db, "anna@example.com", now=clock(), language="de")
    add_subscriber(db, "ben@example.com", now=clock(), language="de", timezone="Asia/Tokyo")
    en = add_subscriber(db, "cara@example.com", now=clock(), language="en")
    nid = notification()

    stats = dispatcher(db, sg_settings, clock).run()

    # Issue 14: readers of one language share a request whatever their zones; their times
    # are substitutions, and after substitution each mail is the direct rendering for its zone.
    assert (stats.requests, stats.sent, stats.failed) == (2, 3, 0)
    assert [r.status for r in sendgrid.requests] == [202, 202]
    german = next(r.body for r in sendgrid.requests if len(r.body["personalizations"]) == 2)
    berlin = SharedEmail(CONTENT, "de").for_zone("Europe/Berlin")
    email = berlin.email
    rows = {d["email"]: d for d in table(db, "deliveries")}
    nonce = db._scalar("SELECT link_nonce FROM subscribers WHERE id = ?", [de1])
    base = sg_settings.public_base_url
    assert [p["to"] for p in german["personalizations"]] == [
        [{"email": "anna@example.com"}],
        [{"email": "ben@example.com"}],
    ]
    assert without_tokens(german["personalizations"][0], sg_settings, (de1, nonce)) == {
        "to": [{"email": "anna@example.com"}],
        "substitutions": {
            "-preferences_url-": f"{base}/preferences/<token>",
            "-unsubscribe_url-": f"{base}/unsubscribe/<token>",
            **berlin.substitutions,
        },
        "headers": {"List-Unsubscribe": f"<{base}/unsubscribe/one-click/<token>>"},
        "custom_args": {
            "delivery_id": str(rows["anna@example.com"]["id"]),
            "notification_id": str(nid),
        },
    }
    assert {k: v for k, v in german.items() if k != "personalizations"} == (
        dispatched_envelope(email, "incident")
    )
    assert email.subject.startswith("[Ursache gefunden] SMS (EU): Delayed SMS delivery")
    for p, zone in zip(german["personalizations"], ("Europe/Berlin", "Asia/Tokyo"), strict=True):
        direct = render_email(CONTENT, "de", zone)
        received = [apply_substitutions(c["value"], p["substitutions"]) for c in german["content"]]
        assert received == [
            apply_substitutions(part, p["substitutions"]) for part in (direct.text, direct.html)
        ]
        assert (zone == "Asia/Tokyo") == ("26. November 2026, 20:00 JST" in received[0])
    english = next(r.body for r in sendgrid.requests if len(r.body["personalizations"]) == 1)
    assert english["subject"] == render_email(CONTENT, "en", "UTC").subject
    assert english["personalizations"][0]["to"] == [{"email": "cara@example.com"}]
    message_ids = {r.message_id for r in sendgrid.requests}
    assert {d["message_id"] for d in rows.values()} == message_ids
    assert all(d["state"] == "sent" and d["attempts"] == 1 for d in rows.values())
    assert [
        (a["delivery_id"], a["outcome"], a["status_code"])
        for a in table(db, "delivery_attempts", "delivery_id")
    ] == [(rows[e]["id"], "accepted", 202) for e in sorted(rows, key=lambda e: rows[e]["id"])]
    assert en


def test_running_dispatch_again_sends_nothing_twice(db, sg_settings, clock, notification, sendgrid):
    add_subscriber(db, "anna@example.com", now=clock())
    notification()
    dispatcher(db, sg_settings, clock).run()
    stats = dispatcher(db, sg_settings, clock).run()
    assert stats.requests == 0
    assert [r["email"] for r in sendgrid.accepted_recipients()] == ["anna@example.com"]


def test_server_errors_back_off_and_then_deliver(db, sg_settings, clock, notification, sendgrid):
    add_subscriber(db, "anna@example.com", now=clock())
    notification()
    sendgrid.script("server_error", "unavailable")

    first = dispatcher(db, sg_settings, clock).run()
    [row] = table(db, "deliveries")
    assert (first.requests, row["state"], row["attempts"], row["reason"]) == (
        1,
        "pending",
        1,
        "HTTP 500: internal server error",
    )
    wait1 = row["next_attempt_at"] - clock()
    assert timedelta(seconds=2.5) <= wait1 <= timedelta(seconds=7.5)  # 5 s x jitter 0.5-1.5
    assert dispatcher(db, sg_settings, clock).run().requests == 0  # not due yet

    clock.advance(seconds=8)
    dispatcher(db, sg_settings, clock).run()
    [row] = table(db, "deliveries")
    assert (row["state"], row["attempts"]) == ("pending", 2)
    assert timedelta(seconds=5) <= row["next_attempt_at"] - clock() <= timedelta(seconds=15)

    clock.advance(seconds=16)
    dispatcher(db, sg_settings, clock).run()
    [row] = table(db, "deliveries")
    assert (row["state"], row["attempts"], row["possible_duplicate"]) == ("sent", 3, 0)


def test_rate_limit_waits_for_the_reset_and_holds_everything_else(
    db,
    sg_settings,
    clock,
    notification,
    sendgrid,
):
    for i in range(4):
        add_subscriber(db, f"user{i}@example.com", now=clock())
    notification()
    sendgrid.rate_limit_reset_at = int(clock().timestamp()) + 40
    sendgrid.script("rate_limited")
    settings = replace(sg_settings, send_batch_size=2)

    stats = dispatcher(db, settings, clock).run()

    assert stats.requests == 1 and stats.halted == "rate limited for 40s"
    rows = table(db, "deliveries")
    reset = clock() + timedelta(seconds=40)
    assert sorted((r["state"], r["attempts"], r["next_attempt_at"]) for r in rows) == [
        ("pending", 0, clock()),  # never claimed
        ("pending", 0, clock()),
        ("pending", 1, reset),  # the request that got the 429
        ("pending", 1, reset),
    ]
    assert db.rate_limited_until() == reset
    clock.advance(seconds=39)
    held = dispatcher(db, settings, clock).run()
    assert (held.requests, held.halted) == (0, "rate limited until 12:00:40 UTC")
    clock.advance(seconds=1)
    assert dispatcher(db, settings, clock).run().sent == 4


def test_a_permanent_400_fails_only_the_bad_address(db, sg_settings, clock, notification, sendgrid):
    for name in ("a", "b", "bad", "c"):
        add_subscriber(db, f"{name}@example.com", now=clock())
    notification()
    sendgrid.rejected_addresses = {"bad@example.com"}

    stats = dispatcher(db, sg_settings, clock).run()

    # SendGrid names the bad personalization: fail exactly that one, send the rest at once.
    assert (stats.requests, stats.sent, stats.failed) == (2, 3, 1)
    assert [r.status for r in sendgrid.requests] == [400, 202]
    assert states(db) == [
        ("a@example.com", "sent", None),
        ("b@example.com", "sent", None),
        (
            "bad@example.com",
            "failed",
            "HTTP 400: Does not contain a valid address. (personalizations.2.to.0.email)",
        ),
        ("c@example.com", "sent", None),
    ]
    assert sorted(r["email"] for r in sendgrid.accepted_recipients()) == [
        "a@example.com",
        "b@example.com",
        "c@example.com",
    ]


def test_a_refused_api_key_pauses_all_sending_and_raises_an_alert(
    db,
    sg_settings,
    clock,
    notification,
    sendgrid,
):
    add_subscriber(db, "anna@example.com", now=clock())
    notification()
    sendgrid.auth_mode = 401

    stats = dispatcher(db, sg_settings, clock).run()

    assert stats.halted == "sending paused: API key refused"
    assert db.sending_paused().startswith("SendGrid refused the API key (HTTP 401)")
    assert [(a["kind"], a["message"][:40]) for a in db.open_alerts()] == [
        ("sending_paused", "SendGrid refused the API key (HTTP 401):")
    ]
    [row] = table(db, "deliveries")
    assert (row["state"], row["attempts"]) == ("pending", 0)
    assert dispatcher(db, sg_settings, clock).run().requests == 0  # paused

    sendgrid.auth_mode = None
    db.resume_sending(clock())
    assert dispatcher(db, sg_settings, clock).run().sent == 1


def test_a_lost_202_is_retried_and_flagged_as_possible_duplicate(
    db,
    sg_settings,
    clock,
    notification,
    sendgrid,
):
    add_subscriber(db, "anna@example.com", now=clock())
    notification()
    sendgrid.hang_seconds = 3.0
    sendgrid.script("timeout_accepted")

    dispatcher(db, sg_settings, clock).run()
    [row] = table(db, "deliveries")
    assert (row["state"], row["possible_duplicate"]) == ("pending", 1)
    assert row["reason"].startswith("no answer after sending: TimeoutError")

    clock.advance(minutes=1)
    dispatcher(db, sg_settings, clock).run()
    [row] = table(db, "deliveries")
    assert (row["state"], row["possible_duplicate"]) == ("sent", 1)
    assert [r["email"] for r in sendgrid.accepted_recipients()] == ["anna@example.com"] * 2


def test_an_expired_notification_fails_as_expired_and_is_not_sent(
    db,
    sg_settings,
    clock,
    notification,
    sendgrid,
):
    add_subscriber(db, "anna@example.com", now=clock())
    notification(ttl_hours=1)
    clock.advance(hours=1)

    stats = dispatcher(db, sg_settings, clock).run()

    assert (stats.expired, stats.requests) == (1, 0)
    assert states(db) == [("anna@example.com", "failed", "expired")]
    assert sendgrid.requests == []


def test_a_subscriber_who_leaves_mid_fan_out_gets_nothing_afterwards(
    db,
    sg_settings,
    clock,
    notification,
    sendgrid,
):
    ids = [add_subscriber(db, f"user{i}@example.com", now=clock()) for i in range(4)]
    notification()
    settings = replace(sg_settings, send_batch_size=2)
    d = dispatcher(db, settings, clock)
    real_send = d.backend.send

    def send_then_unsubscribe(message, recipients, **options):
        result = real_send(message, recipients, **options)
        # Between the first and second request the last subscriber unsubscribes.
        db._execute("UPDATE subscribers SET state = 'unsubscribed' WHERE id = ?", [ids[-1]])
        db.cancel_pending_for_subscriber(ids[-1], "unsubscribed", clock())
        return result

    d.backend.send = send_then_unsubscribe
    d.run()

    assert states(db) == [
        ("user0@example.com", "sent", None),
        ("user1@example.com", "sent", None),
        ("user2@example.com", "sent", None),
        ("user3@example.com", "cancelled", "unsubscribed"),
    ]
    assert "user3@example.com" not in [r["email"] for r in sendgrid.accepted_recipients()]


def test_a_bounce_between_claim_and_send_stops_the_row(
    db,
    sg_settings,
    clock,
    notification,
    sendgrid,
):
    ids = [add_subscriber(db, f"user{i}@example.com", now=clock()) for i in range(2)]
    notification()
    settings = replace(sg_settings, send_batch_size=1)
    d = dispatcher(db, settings, clock)
    real_send = d.backend.send

    def send_then_bounce(message, recipients, **options):
        result = real_send(message, recipients, **options)
        db._execute("UPDATE subscribers SET state = 'suppressed' WHERE id = ?", [ids[1]])
        return result

    d.backend.send = send_then_bounce
    d.run()
    assert states(db) == [
        ("user0@example.com", "sent", None),
        ("user1@example.com", "cancelled", "subscriber no longer eligible"),
    ]


def test_a_dead_workers_lease_is_reclaimed_and_flagged(
    db, sg_settings, clock, notification, sendgrid
):
    add_subscriber(db, "anna@example.com", now=clock())
    notification()
    claimed = db.claim_due("dead-worker", clock(), clock() + timedelta(minutes=2), 1000)
    assert len(claimed) == 1
    assert dispatcher(db, sg_settings, clock).run().requests == 0  # still leased

    clock.advance(minutes=2)
    stats = dispatcher(db, sg_settings, clock).run()

    assert (stats.reclaimed, stats.sent) == (1, 1)
    [row] = table(db, "deliveries")
    assert (row["state"], row["possible_duplicate"]) == ("sent", 1)


def test_a_confirmation_for_an_already_confirmed_address_is_not_sent(
    db,
    sg_settings,
    clock,
    sendgrid,
):
    sid = add_subscriber(db, "new@example.com", now=clock(), state="pending")
    queue_personal(db, "confirmation", sid, clock())
    db._execute(
        "UPDATE subscribers SET state = 'confirmed', token_nonce = NULL WHERE id = ?", [sid]
    )
    dispatcher(db, sg_settings, clock).run()
    assert states(db) == [("new@example.com", "cancelled", "subscriber no longer eligible")]
    assert sendgrid.requests == []


def test_flaky_provider_delivers_everything_within_the_ttl_and_duplicates_only_flagged(
    db,
    sg_settings,
    clock,
    notification,
    sendgrid,
):
    for i in range(120):
        add_subscriber(db, f"user{i:03d}@example.com", now=clock(), language=("de", "en")[i % 2])
    notification(ttl_hours=24)
    sendgrid.faults = {
        "server_error": 0.3,
        "rate_limited": 0.1,
        "timeout": 0.03,
        "timeout_accepted": 0.03,
        "reset_accepted": 0.02,
    }
    sendgrid.hang_seconds = 0.8
    sendgrid.rate_limit_reset_seconds = 20
    # Short timeouts keep the many hangs quick; a late answer here is one more retried fault.
    settings = replace(sg_settings, send_batch_size=10, sendgrid_timeout_seconds=0.5)
    deadline = clock() + timedelta(hours=24)
    runs = 0
    while any(r["state"] != "sent" for r in table(db, "deliveries")):
        assert clock() < deadline, states(db)
        sendgrid.rate_limit_reset_at = int(clock().timestamp()) + 20
        dispatcher(db, settings, clock).run()
        clock.advance(seconds=30)
        runs += 1

    rows = {r["email"]: r for r in table(db, "deliveries")}
    got = Counter(r["email"] for r in sendgrid.accepted_recipients())
    assert set(got) == set(rows)  # everyone got the mail
    duplicated = {email for email, n in got.items() if n > 1}
    assert duplicated, "the fault mix should have produced at least one lost 202"
    assert all(rows[email]["possible_duplicate"] == 1 for email in duplicated)
    assert runs > 3


def test_a_400_for_the_message_itself_fails_the_batch_in_one_request(
    db, sg_settings, clock, notification, sendgrid
):
    for i in range(6):
        add_subscriber(db, f"user{i}@example.com", now=clock())
    notification()
    d = dispatcher(db, sg_settings, clock)
    d.backend.send = lambda message, recipients, **options: SendResult(
        "rejected",
        400,
        None,
        None,
        "HTTP 400: The from address does not match a verified Sender Identity. (from)",
    )

    stats = d.run()

    assert (stats.requests, stats.failed) == (1, 6)
    assert {r["reason"] for r in table(db, "deliveries")} == {
        "HTTP 400: The from address does not match a verified Sender Identity. (from)"
    }


def test_an_unusable_sender_fails_the_rows_and_alerts_instead_of_looping(
    db, sg_settings, clock, notification, sendgrid
):
    add_subscriber(db, "anna@example.com", now=clock())
    notification()
    broken = replace(sg_settings, mail_from="Sinch Status")  # no address

    stats = dispatcher(db, broken, clock).run()

    assert (stats.requests, stats.failed) == (0, 1)
    [row] = table(db, "deliveries")
    assert (row["state"], row["possible_duplicate"]) == ("failed", 0)
    assert row["reason"].startswith("not sent: ")
    assert [a["kind"] for a in db.open_alerts()] == ["message_invalid"]
    assert sendgrid.requests == []


def test_an_unexpected_error_hands_the_claimed_rows_back_unflagged(
    db, sg_settings, clock, notification, sendgrid
):
    add_subscriber(db, "anna@example.com", now=clock())
    notification()
    d = dispatcher(db, sg_settings, clock)

    def explode(message, recipients, **options):
        raise RuntimeError("database went away")

    d.backend.send = explode
    with pytest.raises(RuntimeError):
        d.run()
    [row] = table(db, "deliveries")
    assert (row["state"], row["attempts"], row["possible_duplicate"], row["lease_owner"]) == (
        "pending",
        0,
        0,
        None,
    )


def test_two_rows_for_one_address_in_a_request_send_one_mail(
    db, sg_settings, clock, notification, sendgrid
):
    add_subscriber(db, "Anna@Example.com", now=clock())
    add_subscriber(db, "anna@example.com", now=clock())
    notification()

    dispatcher(db, sg_settings, clock).run()

    assert [r["email"] for r in sendgrid.accepted_recipients()] == ["Anna@Example.com"]
    first, second = table(db, "deliveries")
    assert (first["state"], second["state"]) == ("sent", "cancelled")
    assert second["reason"] == f"same address as delivery {first['id']}"


def test_a_worker_that_lost_its_lease_cannot_overwrite_the_new_owners_rows(
    db, sg_settings, clock, notification
):
    add_subscriber(db, "anna@example.com", now=clock())
    notification()
    [row] = db.claim_due("old", clock(), clock() + timedelta(minutes=2), 10)
    clock.advance(minutes=3)
    db.reclaim_expired_leases(clock())
    db.claim_due("new", clock(), clock() + timedelta(minutes=2), 10)

    assert db.mark_retry([row["id"]], clock(), clock(), "5xx", "old") == 0
    assert db.mark_failed([row["id"]], clock(), "400", "old") == 0
    assert db.mark_sent([row["id"]], clock(), "m1", "old") == 0
    assert db.mark_sent([row["id"]], clock(), "m2", "new") == 1


def test_a_test_send_carries_a_complete_list_unsubscribe_pair(db, sg_settings, clock, sendgrid):
    content = {"kind": "announcement", "products": [], "window": {"start": None, "end": None},
               "de": {"title": "T", "intro": "I", "bullets": [], "qa": []},
               "en": {"title": "T", "intro": "I", "bullets": [], "qa": []}}  # fmt: skip
    db.create_test_send(
        "announcement",
        content,
        "ops@example.com",
        "en",
        "UTC",
        clock(),
        clock() + timedelta(hours=1),
    )

    dispatcher(db, sg_settings, clock).run()

    [request] = sendgrid.requests
    base = sg_settings.public_base_url
    assert request.body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert request.body["personalizations"][0]["headers"] == {
        "List-Unsubscribe": f"<{base}/?test-send>"
    }
