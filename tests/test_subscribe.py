"""Sign-up and double opt-in: the form, per-state answers, abuse rules, confirmation links."""

from __future__ import annotations

import re
from datetime import timedelta
from unittest.mock import ANY

from notifier import subscriptions, tokens

from .test_subscribe_helpers import (
    UA,
    confirm,
    confirmed_subscriber,
    form_tokens,
    hidden,
    link,
    personal_mails,
    post_button,
    seed_catalogue,
    signup,
    signup_data,
    snapshot,
    subscriber,
)

# --- the form ----------------------------------------------------------------------------


def test_form_lists_catalogue_groups_with_members_in_page_order(client, db, clock):
    seed_catalogue(db, clock())
    html = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    labels = re.findall(r'name="components" value="([^"]+)"', html)
    assert labels == ["grp-sms", "sms-eu", "sms-us", "voice", "grp-engage", "engage-chat"]
    assert 'id="scope-all" checked' in html
    assert 'name="notify_incidents" value="y" id="notify_incidents" checked' in html
    assert 'name="notify_maintenance" value="y" id="notify_maintenance" checked' in html
    assert '<option value="UTC" selected>' in html  # English page: UTC by default
    assert "privacy notice</a> (version 2026-11)" in html


def test_german_form_defaults_to_berlin_time_and_german_mails(client):
    html = client.get("/", headers={"Accept-Language": "de-DE,de;q=0.9"}).get_data(as_text=True)
    assert '<option value="Europe/Berlin" selected>' in html
    assert 'value="de" id="language-de" checked' in html
    assert "Datenschutzhinweis</a> (Version 2026-11)" in html


def test_subscribe_stores_pending_row_consent_and_queues_one_confirmation(client, db, clock):
    seed_catalogue(db, clock())
    response = signup(
        client,
        clock,
        "Ada.Lovelace@Example.COM",
        scope="selected",
        components=["grp-sms", "voice"],
        timezone="Europe/Vienna",
        notify_maintenance=None,
    )
    assert (response.status_code, response.headers["Location"]) == (303, "/subscribe/check-inbox")
    row = subscriber(db, "ada.lovelace@example.com")
    assert row == {
        "id": 1,
        "email": "ada.lovelace@example.com",
        "language": "de",
        "timezone": "Europe/Vienna",
        "all_components": 0,
        "notify_incidents": 1,
        "notify_maintenance": 0,
        "maintenance_reminders": 1,  # issue 11: on for every new sign-up
        # issue 12: an email subscription; the channel columns stay empty
        "channel": "email",
        "target_url": None,
        "webhook_secret": None,
        "verified_at": None,
        "paused_at": None,
        "paused_reason": None,
        "failure_count": 0,
        "failing_since": None,
        "state": "pending",
        "token_nonce": ANY,
        "link_nonce": ANY,
        "suppressed_reason": None,
        "created_at": clock(),
        "updated_at": clock(),
        "confirmed_at": None,
        "unsubscribed_at": None,
        "suppressed_at": None,
    }
    # The ticked group is stored as the group (its members resolve at fan-out, issue 16).
    assert db.subscriber_component_ids(1) == ["grp-sms", "voice"]
    assert db.list_consents(1) == [
        {
            "id": 1,
            "subscriber_id": 1,
            "consent_version": "2026-11",
            "language": "de",
            "signup_at": clock(),
            "signup_ip": "198.51.100.7",
            "signup_user_agent": UA,
            "confirmed_at": None,
            "confirm_ip": None,
            "confirm_user_agent": None,
            "withdrawn_at": None,
            "source": None,  # a sign-up on our own form (import: migration 0017)
            "imported_at": None,
        }
    ]
    assert personal_mails(db, "confirmation") == [
        {
            "id": 1,
            "kind": "confirmation",
            "audience": None,  # shared by the minute's confirmations (issue 14)
            "subscriber_id": 1,
            "email": "ada.lovelace@example.com",
            "state": "pending",
        }
    ]


def test_check_inbox_page_says_what_happens_next(client):
    response = client.get("/subscribe/check-inbox", headers={"Accept-Language": "en"})
    assert response.status_code == 200
    assert "<h1>Check your inbox</h1>" in response.get_data(as_text=True)


def test_invalid_input_is_400_with_errors_beside_fields_and_stores_nothing(client, db, clock):
    before = snapshot(db)
    response = signup(
        client, clock, "not an address", language="fr", timezone="Mars/Olympus", scope="x"
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    errors = dict(re.findall(r'<p class="field-error" id="([\w-]+)">([^<]+)</p>', html))
    assert errors == {
        "email-error": "Bitte gib eine gültige E-Mail-Adresse ein, etwa name@example.com.",
        "language-error": "Bitte wähle Deutsch oder Englisch.",
        "scope-error": "Bitte wähle alle oder einzelne Produkte.",
        "timezone-error": "Bitte wähle eine Zeitzone aus der Liste.",
    }
    assert 'aria-describedby="email-hint email-error" aria-invalid="true"' in html
    assert 'value="not an address"' in html  # what was typed stays in the field
    assert snapshot(db) == before


def test_control_characters_and_overlong_values_are_rejected_in_every_field(client, db, clock):
    seed_catalogue(db, clock())
    cases = {
        "email": "ada@example.com\r\nBcc: all@example.com",
        "timezone": "Europe/Berlin\n",
        "language": "de\x00",
        "components": "voice\u202e",
        "scope": "selected\x85",
    }
    before = snapshot(db)
    message = "Bitte entferne Zeilenumbrüche und andere unsichtbare Zeichen."
    for field, value in cases.items():
        response = signup(
            client, clock, **{"scope": "selected", "components": "voice", field: value}
        )
        html = response.get_data(as_text=True)
        assert response.status_code == 400, field
        assert f'<p class="field-error" id="{field}-error">{message}</p>' in html, field
    too_long = "Das ist länger als 254 Zeichen."
    response = signup(client, clock, "a" * 250 + "@example.com")
    assert f'<p class="field-error" id="email-error">{too_long}</p>' in response.get_data(
        as_text=True
    )
    assert signup(client, clock, timezone="x" * 10_000).status_code == 400
    assert snapshot(db) == before


# --- the same answer for every address -------------------------------------------------


def test_answer_is_identical_for_new_pending_confirmed_unsubscribed_and_suppressed(
    client, settings, db, clock
):
    confirmed_subscriber(client, settings, db, clock, "confirmed@example.com")
    assert signup(client, clock, "pending@example.com").status_code == 303
    confirmed_subscriber(client, settings, db, clock, "left@example.com")
    subscriptions.unsubscribe(db, subscriber(db, "left@example.com")["id"], clock(), "test")
    confirmed_subscriber(client, settings, db, clock, "bounced@example.com")
    db._execute("UPDATE subscribers SET state = 'suppressed' WHERE email = 'bounced@example.com'")
    clock.advance(hours=1)  # past the confirmation cooldown
    states = {r["email"]: r["state"] for r in db._query("SELECT email, state FROM subscribers")}
    assert states == {
        "confirmed@example.com": "confirmed",
        "pending@example.com": "pending",
        "left@example.com": "unsubscribed",
        "bounced@example.com": "suppressed",
    }
    found = form_tokens(client)
    clock.advance(seconds=5)
    answers = []
    for email in ("new", "pending", "confirmed", "left", "bounced"):
        response = client.post("/subscribe", data={**found, **signup_data(f"{email}@example.com")})
        answers.append((response.status_code, sorted(response.headers.items()), response.data))
    assert answers == [answers[0]] * 5
    assert answers[0][0] == 303


def test_per_state_effects_of_a_repeated_sign_up(client, settings, db, clock):
    confirmed = confirmed_subscriber(client, settings, db, clock, "confirmed@example.com")
    left = confirmed_subscriber(client, settings, db, clock, "left@example.com")
    subscriptions.unsubscribe(db, left["id"], clock(), "test")
    left = subscriber(db, "left@example.com")
    clock.advance(hours=1)
    before = snapshot(db)
    signup(client, clock, "confirmed@example.com", language="en", timezone="UTC")
    assert snapshot(db) == before  # a stranger cannot change a confirmed subscription

    signup(client, clock, "left@example.com", language="en", timezone="UTC")
    again = subscriber(db, "left@example.com")
    assert (again["state"], again["language"], again["timezone"]) == ("pending", "en", "UTC")
    assert again["token_nonce"] not in (None, left["token_nonce"])
    assert again["link_nonce"] != left["link_nonce"]  # old links die with the fresh opt-in
    assert [m["subscriber_id"] for m in personal_mails(db, "confirmation")] == [
        confirmed["id"],
        left["id"],
        left["id"],
    ]
    assert [c["confirmed_at"] is not None for c in db.list_consents(left["id"])] == [True, False]


# --- abuse rules -------------------------------------------------------------------------


def test_twenty_sign_ups_for_one_address_in_a_day_send_at_most_three_mails(client, db, clock):
    for _ in range(20):
        assert signup(client, clock, "target@example.com").status_code == 303
        clock.advance(minutes=70)  # 20 x 70 min: all within 24 h of the first
    mails = personal_mails(db, "confirmation")
    assert [(m["email"], m["state"]) for m in mails] == [("target@example.com", "pending")] * 3
    sent = db.confirmation_send_times(subscriber(db, "target@example.com")["id"])
    assert [t - sent[0] for t in sent] == [
        timedelta(0),
        timedelta(minutes=70, seconds=5),
        timedelta(minutes=140, seconds=10),
    ]


def test_a_second_mail_waits_for_the_fifteen_minute_cooldown(client, db, clock):
    signup(client, clock, "target@example.com")
    clock.advance(minutes=14)
    signup(client, clock, "target@example.com")
    assert len(personal_mails(db, "confirmation")) == 1
    clock.advance(minutes=1)
    signup(client, clock, "target@example.com")
    assert len(personal_mails(db, "confirmation")) == 2


def test_fifty_addresses_from_one_ip_in_ten_minutes_only_the_limit_gets_through(client, db, clock):
    statuses = [signup(client, clock, f"user{i}@example.com").status_code for i in range(50)]
    assert statuses == [303] * 10 + [429] * 40
    assert [r["email"] for r in db._query("SELECT email FROM subscribers ORDER BY id")] == [
        f"user{i}@example.com" for i in range(10)
    ]
    assert len(personal_mails(db, "confirmation")) == 10
    # Another address is not affected, and the window ends.
    assert signup(client, clock, "other@example.com", ip="203.0.113.50").status_code == 303
    clock.advance(minutes=10)
    assert signup(client, clock, "late@example.com").status_code == 303


def test_rate_limited_answer_is_a_clear_429_page(client, clock):
    for i in range(10):
        signup(client, clock, f"user{i}@example.com")
    response = signup(client, clock, "one-more@example.com", page_language="en")
    assert (response.status_code, response.headers["Retry-After"]) == (429, "600")
    assert "<h1>Too many requests</h1>" in response.get_data(as_text=True)


def test_filled_honeypot_answers_like_success_and_stores_nothing(client, db, clock):
    before = snapshot(db)
    response = signup(client, clock, "bot@example.com", website="https://spam.example")
    assert (response.status_code, response.headers["Location"]) == (303, "/subscribe/check-inbox")
    assert snapshot(db) == before


def test_sign_up_faster_than_three_seconds_or_without_stamp_is_dropped(client, db, clock):
    before = snapshot(db)
    found = form_tokens(client)
    clock.advance(seconds=2)
    fast = client.post("/subscribe", data={**found, **signup_data("fast@example.com")})
    stampless = client.post(
        "/subscribe",
        data={"csrf_token": found["csrf_token"], **signup_data("nostamp@example.com")},
    )
    forged = client.post(
        "/subscribe",
        data={**found, "started": "MTc5.forged", **signup_data("forged@example.com")},
    )
    assert [r.status_code for r in (fast, stampless, forged)] == [303, 303, 303]
    assert snapshot(db) == before
    clock.advance(seconds=1)  # three seconds after the form was shown: a person
    client.post("/subscribe", data={**found, **signup_data("human@example.com")})
    assert subscriber(db, "human@example.com")["state"] == "pending"


def test_a_start_stamp_serves_one_hour_then_the_form_comes_back(client, db, clock):
    """One stamp fetched once must not serve sign-ups for ever; a person who left the form
    open gets it back, with what they typed and a fresh stamp, and nothing is stored yet."""
    found = form_tokens(client)
    clock.advance(minutes=59)
    client.post("/subscribe", data={**found, **signup_data("within@example.com")})
    assert subscriber(db, "within@example.com")["state"] == "pending"
    before = snapshot(db)
    clock.advance(minutes=1, seconds=1)
    late = client.post("/subscribe", data={**found, **signup_data("late@example.com")})
    assert late.status_code == 400
    assert "This form was open for more than an hour." in late.text
    assert 'value="late@example.com"' in late.text
    assert snapshot(db) == before
    fresh = hidden(late.text, "started")
    assert fresh != found["started"]
    clock.advance(seconds=5)
    again = {"csrf_token": found["csrf_token"], "started": fresh}
    response = client.post("/subscribe", data={**again, **signup_data("late@example.com")})
    assert response.status_code == 303
    assert subscriber(db, "late@example.com")["state"] == "pending"
    # A bot with a filled honeypot and an old stamp learns nothing new: the usual answer.
    clock.advance(hours=2)
    bot = client.post("/subscribe", data={**again, **signup_data("bot@example.com", website="x")})
    assert (bot.status_code, bot.headers["Location"]) == (303, "/subscribe/check-inbox")


def test_correcting_an_error_quickly_keeps_the_first_start_stamp(client, db, clock):
    found = form_tokens(client)
    clock.advance(seconds=5)
    first = client.post("/subscribe", data={**found, **signup_data("typo@")})
    assert first.status_code == 400
    # The corrected form goes out a second later with the stamp the error page carried.
    resent = {"csrf_token": found["csrf_token"], "started": hidden(first.text, "started")}
    assert resent["started"] == found["started"]
    clock.advance(seconds=1)
    response = client.post("/subscribe", data={**resent, **signup_data("typo@example.com")})
    assert response.status_code == 303
    assert subscriber(db, "typo@example.com")["state"] == "pending"


def without_path(page: bytes) -> bytes:
    """The page minus its own address (the language switch links back to it)."""
    return re.sub(rb"next=[^\"]*", b"next=", page)


# --- confirmation ------------------------------------------------------------------------


def test_confirm_get_shows_a_button_and_changes_nothing(client, settings, db, clock):
    signup(client, clock)
    before = snapshot(db)
    response = client.get(link(settings, tokens.CONFIRM, subscriber(db), clock()))
    assert response.status_code == 200
    assert "Ja, Abo bestätigen" in response.get_data(as_text=True)
    assert snapshot(db) == before


def test_confirm_post_records_consent_and_redirects_to_preferences(client, settings, db, clock):
    signup(client, clock)
    signed_up_at = clock()
    clock.advance(hours=5)
    environ = {"REMOTE_ADDR": "203.0.113.9", "HTTP_USER_AGENT": "Phone browser"}
    response = confirm(client, settings, db, clock, environ_base=environ)
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/preferences/")
    row = subscriber(db)
    assert (row["state"], row["token_nonce"], row["confirmed_at"]) == ("confirmed", None, clock())
    assert db.list_consents(row["id"]) == [
        {
            "id": 1,
            "subscriber_id": row["id"],
            "consent_version": "2026-11",
            "language": "de",
            "signup_at": signed_up_at,
            "signup_ip": "198.51.100.7",
            "signup_user_agent": UA,
            "confirmed_at": clock(),
            "confirm_ip": "203.0.113.9",
            "confirm_user_agent": "Phone browser",
            "withdrawn_at": None,
            "source": None,  # a sign-up on our own form (import: migration 0017)
            "imported_at": None,
        }
    ]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Geschafft! Dein Abo ist bestätigt." in page


def test_confirming_cancels_a_second_confirmation_mail_still_queued(client, settings, db, clock):
    signup(client, clock)
    clock.advance(minutes=20)
    signup(client, clock)
    confirm(client, settings, db, clock)
    assert [m["state"] for m in personal_mails(db, "confirmation")] == ["cancelled", "cancelled"]


def test_forged_expired_and_reused_confirm_links_show_one_generic_page(client, settings, db, clock):
    signup(client, clock)
    row = subscriber(db)
    good = link(settings, tokens.CONFIRM, row, clock())
    forged = "/confirm/" + tokens.make_token(
        "another-secret-key-of-enough-length-xxxx", tokens.CONFIRM, row["id"], row["token_nonce"]
    )
    expired = link(settings, tokens.CONFIRM, row, clock() - timedelta(hours=72, seconds=1))
    wrong_nonce = "/confirm/" + tokens.make_token(
        settings.secret_key, tokens.CONFIRM, row["id"], "guess", now=clock()
    )
    pages = []
    csrf = form_tokens(client)["csrf_token"]
    for path in (forged, expired, wrong_nonce, "/confirm/garbage", "/confirm/" + "x" * 600):
        before = snapshot(db)
        get, post = client.get(path), client.post(path, data={"csrf_token": csrf})
        assert snapshot(db) == before
        pages += [
            (get.status_code, without_path(get.data)),
            (post.status_code, without_path(post.data)),
        ]
    assert post_button(client, good, follow_redirects=True).status_code == 200
    before = snapshot(db)
    reused = client.post(good, data={"csrf_token": csrf})
    assert snapshot(db) == before
    pages.append((reused.status_code, without_path(reused.data)))
    assert pages == [pages[0]] * len(pages)
    assert pages[0][0] == 404
    assert b"<h1>This link is invalid or has expired</h1>" in pages[0][1]


def test_confirm_link_works_until_72_hours(client, settings, db, clock):
    signup(client, clock)
    path = link(settings, tokens.CONFIRM, subscriber(db), clock())
    clock.advance(hours=72)
    assert post_button(client, path).status_code == 303


def test_resubscribing_after_unsubscribe_needs_a_fresh_opt_in(client, settings, db, clock):
    row = confirmed_subscriber(client, settings, db, clock)
    subscriptions.unsubscribe(db, row["id"], clock(), "test")
    old_confirm = link(settings, tokens.CONFIRM, {**row, "token_nonce": "x"}, clock())
    clock.advance(hours=1)
    signup(client, clock)
    assert subscriber(db)["state"] == "pending"
    csrf = form_tokens(client)["csrf_token"]
    assert client.post(old_confirm, data={"csrf_token": csrf}).status_code == 404
    assert subscriber(db)["state"] == "pending"  # no mail to the feed before a new click
    assert confirm(client, settings, db, clock).status_code == 303
    assert subscriber(db)["state"] == "confirmed"


# --- housekeeping ------------------------------------------------------------------------


def test_unconfirmed_sign_ups_are_purged_after_seven_days(client, settings, db, clock):
    signup(client, clock, "never@example.com")
    signed_up_at = clock()
    confirmed_subscriber(client, settings, db, clock, "kept@example.com")
    clock.current = signed_up_at + timedelta(days=7)
    assert subscriptions.housekeeping(db, clock()) == {
        "unconfirmed_purged": 0,
        "rate_limits_purged": 2,  # the sign-up and link windows (10 minutes) are long over
    }
    clock.advance(seconds=1)
    assert subscriptions.housekeeping(db, clock()) == {
        "unconfirmed_purged": 1,
        "rate_limits_purged": 0,
    }
    assert [r["email"] for r in db._query("SELECT email FROM subscribers")] == ["kept@example.com"]
    assert db._query("SELECT subscriber_id FROM consents") == [{"subscriber_id": 2}]
    # Only the kept subscriber's mail is left, and no notification without deliveries.
    assert db._query(
        "SELECT n.kind, d.subscriber_id FROM notifications n "
        "LEFT JOIN deliveries d ON d.notification_id = n.id"
    ) == [{"kind": "confirmation", "subscriber_id": 2}]


def test_no_token_is_ever_stored(client, settings, db, clock):
    signup(client, clock)
    confirm_path = link(settings, tokens.CONFIRM, subscriber(db), clock())
    response = post_button(client, confirm_path)
    manage_path = response.headers["Location"]
    stored = repr([db._query(f"SELECT * FROM {t}") for t in ("meta", "rate_limits")])
    stored += repr(snapshot(db))
    for path in (confirm_path, manage_path):
        token = path.rsplit("/", 1)[1]
        assert token.split(".")[0] not in stored  # not even the payload part
