"""Issue 12, the public side of channel subscriptions: sign-up for Slack, Microsoft Teams and
webhooks, confirmation (verification queued, a webhook's signing secret shown once),
preferences, resume, unsubscribe, export and erasure. Both databases; the real pages through
the test client with the injected clock."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta
from unittest.mock import ANY

import pytest

from notifier import subscriptions, tokens

from .test_methods import dump_tables
from .test_subscribe_helpers import (
    UA,
    form_tokens,
    link,
    personal_mails,
    post_button,
    seed_catalogue,
    signup,
    snapshot,
)

SLACK = "http://127.0.0.1:9/services/T0001/B0001/slacktokenslacktoken"
TEAMS = "http://127.0.0.1:9/workflows/4f2c/triggers/manual/paths/invoke?sig=teamstoken"
HOOK = "http://127.0.0.1:9/hooks/status?key=hooktoken"
ERRORS = re.compile(r'<p class="field-error" id="([\w-]+)">([^<]+)</p>')


@pytest.fixture
def open_targets(app, settings):
    """The test suite's only override of the address guard (contract: loopback targets, http,
    any host and path) - the fake receivers live on 127.0.0.1."""
    app.extensions["settings"] = replace(settings, channel_allow_private_targets=True)
    return app.extensions["settings"]


@pytest.fixture
def wakes(monkeypatch):
    calls = []
    monkeypatch.setattr(
        "notifier.subscriptions.wake.work_queued", lambda store, now, app=None: calls.append(now)
    )
    return calls


def channel_signup(client, clock, owner, channel, target, **fields):
    return signup(client, clock, owner, channel=channel, target_url=target, **fields)


def channel_row(db, channel, target):
    row = db.get_channel_subscription(channel, target)
    assert row is not None, f"no {channel} subscription for {target}"
    return row


def confirm_channel(client, settings, db, clock, channel, target):
    path = link(settings, tokens.CONFIRM, channel_row(db, channel, target), clock())
    return post_button(client, path)


def confirmed_channel(client, settings, db, clock, channel, target, owner="ops@example.com"):
    assert channel_signup(client, clock, owner, channel, target).status_code == 303
    response = confirm_channel(client, settings, db, clock, channel, target)
    assert response.status_code in (200, 303)
    return channel_row(db, channel, target)


def verifications(db) -> list[dict]:
    return db._query(
        "SELECT d.subscriber_id, d.email, d.channel, d.state, d.priority, d.reason, n.kind, "
        "n.content FROM deliveries d JOIN notifications n ON n.id = d.notification_id "
        "WHERE n.kind = 'channel_verification' ORDER BY d.id"
    )


def press(client, page: str, action: str, **kwargs):
    """Press a button on `page` whose form posts to `action` (a POST-only route)."""
    found = form_tokens(client, page)
    return client.post(action, data={"csrf_token": found["csrf_token"]}, **kwargs)


def manage_path(settings, db, clock, row) -> str:
    return link(settings, tokens.MANAGE, db.get_subscriber(row["id"]), clock())


# --- sign-up ------------------------------------------------------------------------------


def test_slack_signup_stores_a_pending_channel_row_and_mails_its_owner(
    client, db, clock, open_targets
):
    seed_catalogue(db, clock())
    response = channel_signup(
        client,
        clock,
        "Ops.Team@Example.COM",
        "slack",
        SLACK,
        scope="selected",
        components=["grp-sms"],
        timezone="Europe/Vienna",
        notify_maintenance=None,
    )
    assert (response.status_code, response.headers["Location"]) == (303, "/subscribe/check-inbox")
    row = channel_row(db, "slack", SLACK)
    assert row == {
        "id": 1,
        "email": "ops.team@example.com",
        "language": "de",
        "timezone": "Europe/Vienna",
        "all_components": 0,
        "notify_incidents": 1,
        "notify_maintenance": 0,
        "maintenance_reminders": 1,
        "channel": "slack",
        "target_url": SLACK,
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
    assert db.subscriber_component_ids(1) == ["grp-sms"]
    [consent] = db.list_consents(1)
    assert (consent["signup_ip"], consent["signup_user_agent"]) == ("198.51.100.7", UA)
    # The owner confirms by mail: an email row to the owner's address.
    assert personal_mails(db, "confirmation") == [
        {
            "id": 1,
            "kind": "confirmation",
            "audience": None,
            "subscriber_id": 1,
            "email": "ops.team@example.com",
            "state": "pending",
        }
    ]
    assert db._query("SELECT channel FROM deliveries") == [{"channel": "email"}]
    # The owner's address is no email subscription.
    assert db.get_subscriber_by_email("ops.team@example.com") is None


def test_an_owner_can_have_mail_and_several_channels_each_its_own_row(
    client, db, clock, open_targets
):
    assert signup(client, clock, "ops@example.com").status_code == 303
    for channel, target in (("slack", SLACK), ("teams", TEAMS), ("webhook", HOOK)):
        clock.advance(minutes=1)
        assert channel_signup(client, clock, "ops@example.com", channel, target).status_code == 303
    rows = db._query("SELECT id, email, channel, target_url FROM subscribers ORDER BY id")
    assert rows == [
        {"id": 1, "email": "ops@example.com", "channel": "email", "target_url": None},
        {"id": 2, "email": "ops@example.com", "channel": "slack", "target_url": SLACK},
        {"id": 3, "email": "ops@example.com", "channel": "teams", "target_url": TEAMS},
        {"id": 4, "email": "ops@example.com", "channel": "webhook", "target_url": HOOK},
    ]
    assert db.get_subscriber_by_email("ops@example.com")["id"] == 1
    # A bounce of the owner's address, matched by address, is about the email subscription.
    assert db.subscriber_for_event(None, "ops@example.com") == 1


def test_a_bounce_of_an_owner_without_email_subscription_suppresses_nobody(
    client, db, clock, open_targets
):
    assert channel_signup(client, clock, "ops@example.com", "slack", SLACK).status_code == 303
    assert db.subscriber_for_event(None, "OPS@example.com") is None


def test_email_signups_ignore_a_leftover_target(client, db, clock):
    response = signup(client, clock, "ada@example.com", channel="email", target_url="junk")
    assert response.status_code == 303
    row = db.get_subscriber_by_email("ada@example.com")
    assert (row["channel"], row["target_url"]) == ("email", None)


@pytest.mark.parametrize(
    ("page_language", "fields", "expected"),
    [
        (
            "en",
            {"channel": "pigeon", "target_url": HOOK},
            {"channel-error": "Please choose email, Slack, Microsoft Teams or webhook."},
        ),
        (
            "de",
            {"channel": "pigeon", "target_url": HOOK},
            {"channel-error": "Bitte wähle E-Mail, Slack, Microsoft Teams oder Webhook."},
        ),
        (
            "en",
            {"channel": "slack", "target_url": ""},
            {"target_url-error": "Please enter the webhook address for this channel."},
        ),
        (
            "de",
            {"channel": "webhook", "target_url": None},
            {"target_url-error": "Bitte gib die Webhook-Adresse für diesen Kanal ein."},
        ),
        (
            "en",
            {"channel": "webhook", "target_url": "https://example.com/" + "a" * 2040},
            {"target_url-error": "This is longer than 2048 characters."},
        ),
        (
            "en",
            {"channel": "webhook", "target_url": "https://example.com/\nhook"},
            {"target_url-error": "Please remove line breaks and other invisible characters."},
        ),
        (
            "en",
            {"channel": "webhook", "target_url": "http://93.184.215.14/hook"},
            {"target_url-error": "The address must start with https://."},
        ),
        (
            "de",
            {"channel": "webhook", "target_url": "ftp://93.184.215.14/hook"},
            {"target_url-error": "Die Adresse muss mit https:// beginnen."},
        ),
        (
            "en",
            {"channel": "slack", "target_url": "https://93.184.215.14/services/T/B/x"},
            {
                "target_url-error": "This is no Slack incoming webhook. Its address starts "
                "with https://hooks.slack.com/services/."
            },
        ),
        (
            "de",
            {"channel": "slack", "target_url": "https://93.184.215.14/services/T/B/x"},
            {
                "target_url-error": "Das ist kein eingehender Webhook von Slack. Seine Adresse "
                "beginnt mit https://hooks.slack.com/services/."
            },
        ),
        (
            "en",
            {"channel": "teams", "target_url": "https://93.184.215.14/workflows/x"},
            {
                "target_url-error": "This is no Microsoft Teams workflow webhook. Copy the "
                "address your Teams workflow “Post to a channel when a webhook request is "
                "received” shows."
            },
        ),
        (
            "en",
            {"channel": "webhook", "target_url": "https://user:pw@93.184.215.14/hook"},
            {
                "target_url-error": "Please enter a complete web address without a user name, "
                "like https://example.com/hooks/status."
            },
        ),
        (
            "de",
            {"channel": "webhook", "target_url": "https:///hook"},
            {
                "target_url-error": "Bitte gib eine vollständige Webadresse ohne Benutzernamen "
                "ein, etwa https://example.com/hooks/status."
            },
        ),
    ],
)
def test_every_channel_field_error_is_a_400_beside_its_field(
    client, db, clock, page_language, fields, expected
):
    before = snapshot(db)
    response = signup(client, clock, "ops@example.com", page_language=page_language, **fields)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert dict(ERRORS.findall(html)) == expected
    [(field_id, _)] = expected.items()
    name = field_id.removesuffix("-error")
    assert f'{field_id}" aria-invalid="true"' in html  # tied to its control
    assert f'<li><a href="#{name}">' in html  # and listed in the summary
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "target",
    [
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
    ],
)
@pytest.mark.parametrize(
    ("page_language", "message"),
    [
        (
            "en",
            "This address leads to a local or private network. We only send to public "
            "addresses on the internet.",
        ),
        (
            "de",
            "Diese Adresse führt in ein lokales oder privates Netz. Wir senden nur an "
            "öffentliche Adressen im Internet.",
        ),
    ],
)
def test_ssrf_targets_are_refused_at_signup_with_the_guard_on(
    client, db, clock, target, page_language, message
):
    assert client.application.extensions["settings"].channel_allow_private_targets is False
    before = snapshot(db)
    response = signup(
        client,
        clock,
        "ops@example.com",
        page_language=page_language,
        channel="webhook",
        target_url=target,
    )
    assert response.status_code == 400
    assert dict(ERRORS.findall(response.get_data(as_text=True))) == {"target_url-error": message}
    assert snapshot(db) == before


def test_a_public_https_webhook_passes_the_guard(client, db, clock):
    target = "https://93.184.215.14/hooks/status"
    response = channel_signup(client, clock, "ops@example.com", "webhook", target)
    assert response.status_code == 303
    assert channel_row(db, "webhook", target)["state"] == "pending"


# --- no enumeration -----------------------------------------------------------------------


def _answer(response) -> tuple:
    return response.status_code, response.headers.get("Location"), response.get_data()


def test_the_answer_is_the_same_for_a_new_a_pending_and_a_confirmed_target(
    client, settings, db, clock, open_targets
):
    fresh = channel_signup(client, clock, "a@example.com", "slack", SLACK)
    clock.advance(minutes=20)  # past the confirmation cooldown
    again_pending = channel_signup(client, clock, "stranger@example.net", "slack", SLACK)
    assert _answer(again_pending) == _answer(fresh)
    # A pending target: the stored owner gets the confirmation again; nothing else changes.
    row = channel_row(db, "slack", SLACK)
    assert (row["email"], row["language"], row["created_at"]) == (
        "a@example.com",
        "de",
        row["updated_at"],
    )
    assert [(m["email"], m["state"]) for m in personal_mails(db, "confirmation")] == [
        ("a@example.com", "pending"),
        ("a@example.com", "pending"),
    ]
    assert len(db.list_consents(row["id"])) == 1
    assert confirm_channel(client, settings, db, clock, "slack", SLACK).status_code == 303
    clock.advance(minutes=20)
    before = snapshot(db)
    again_confirmed = channel_signup(
        client, clock, "stranger@example.net", "slack", SLACK, language="en"
    )
    assert _answer(again_confirmed) == _answer(fresh)
    assert snapshot(db) == before  # a confirmed target: nothing at all, as for an address
    # The same for the owner's own address, which has no email subscription yet.
    email_answer = signup(client, clock, "a@example.com")
    assert _answer(email_answer) == _answer(fresh)


def test_the_owner_signing_up_a_pending_target_again_replaces_the_choices(
    client, db, clock, open_targets
):
    channel_signup(client, clock, "a@example.com", "teams", TEAMS)
    clock.advance(minutes=20)
    channel_signup(client, clock, "a@example.com", "teams", TEAMS, language="en", timezone="UTC")
    row = channel_row(db, "teams", TEAMS)
    assert (row["language"], row["timezone"], row["state"]) == ("en", "UTC", "pending")
    assert len(personal_mails(db, "confirmation")) == 2


# --- confirmation -------------------------------------------------------------------------


def test_confirming_a_slack_channel_queues_exactly_one_verification_and_wakes_dispatch(
    client, settings, db, clock, open_targets, wakes
):
    channel_signup(client, clock, "ops@example.com", "slack", SLACK, language="en")
    path = link(settings, tokens.CONFIRM, channel_row(db, "slack", SLACK), clock())
    page = client.get(path).get_data(as_text=True)
    assert "test message to Slack (http://127.0.0.1:9/services/…)" in page
    assert SLACK not in page and "slacktoken" not in page
    response = post_button(client, path)
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/preferences/")
    row = channel_row(db, "slack", SLACK)
    assert (row["state"], row["confirmed_at"], row["webhook_secret"]) == (
        "confirmed",
        clock(),
        None,
    )
    assert verifications(db) == [
        {
            "subscriber_id": row["id"],
            "email": "ops@example.com",
            "channel": "slack",
            "state": "pending",
            "priority": 1,
            "reason": None,
            "kind": "channel_verification",
            "content": '{"kind":"channel_verification"}',
        }
    ]
    assert wakes == [clock()]
    follow = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "We are sending a test message to the channel now" in follow


def test_confirming_an_email_subscription_queues_no_verification(
    client, settings, db, clock, wakes
):
    signup(client, clock, "ada@example.com")
    row = db.get_subscriber_by_email("ada@example.com")
    assert post_button(client, link(settings, tokens.CONFIRM, row, clock())).status_code == 303
    assert verifications(db) == [] and wakes == []


def test_a_webhooks_signing_secret_is_shown_once_at_confirmation(
    client, settings, db, clock, open_targets, wakes
):
    channel_signup(client, clock, "dev@example.com", "webhook", HOOK, language="en")
    path = link(settings, tokens.CONFIRM, channel_row(db, "webhook", HOOK), clock())
    response = post_button(client, path, headers={"Accept-Language": "en"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    row = channel_row(db, "webhook", HOOK)
    secret = row["webhook_secret"]
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret)
    assert re.findall(r"whsec_[A-Za-z0-9+/=]+", html) == [secret]
    assert f'id="signing-secret" class="secret" value="{secret}" readonly' in html
    assert '<label for="signing-secret">' in html
    assert "Standard Webhooks" in html and "docs/webhooks/README.md" in html
    assert [v["channel"] for v in verifications(db)] == ["webhook"]
    # A reload (the same POST again) and the link itself: confirmed, and no secret any more.
    csrf = form_tokens(client, "/")["csrf_token"]
    for again in (
        client.post(path, data={"csrf_token": csrf}, headers={"Accept-Language": "en"}),
        client.get(path, headers={"Accept-Language": "en"}),
    ):
        text = again.get_data(as_text=True)
        assert again.status_code == 200
        assert "<h1>Already confirmed</h1>" in text
        assert "whsec_" not in text
    assert channel_row(db, "webhook", HOOK)["webhook_secret"] == secret
    assert len(verifications(db)) == 1
    # The preferences page never shows it either.
    prefs = client.get(manage_path(settings, db, clock, row)).get_data(as_text=True)
    assert "whsec_" not in prefs and HOOK not in prefs


def test_a_used_confirmation_link_of_an_email_subscription_stays_invalid(
    client, settings, db, clock
):
    signup(client, clock, "ada@example.com")
    path = link(settings, tokens.CONFIRM, db.get_subscriber_by_email("ada@example.com"), clock())
    assert post_button(client, path).status_code == 303
    assert client.get(path).status_code == 404


# --- preferences, resume, new secret --------------------------------------------------------


def test_preferences_show_the_channel_masked_and_its_verification_state(
    client, settings, db, clock, open_targets
):
    row = confirmed_channel(client, settings, db, clock, "teams", TEAMS)
    path = manage_path(settings, db, clock, row)
    en = {"Accept-Language": "en"}
    db.update_subscriber(row["id"], language="en")
    html = client.get(path, headers=en).get_data(as_text=True)
    assert "Microsoft Teams subscription for http://127.0.0.1:9/workflows/…, managed by" in html
    assert "Waiting for the test message" in html
    assert TEAMS not in html and "teamstoken" not in html
    assert "Send test message again" in html and "New signing secret" not in html
    db._execute("UPDATE subscribers SET verified_at = ? WHERE id = ?", [clock(), row["id"]])
    html = client.get(path).get_data(as_text=True)
    assert f"Verified on {clock():%Y-%m-%d %H:%M} UTC" in html
    db.update_subscriber(row["id"], paused_at=clock(), paused_reason="HTTP 410 from the target")
    html = client.get(path).get_data(as_text=True)
    assert f"Paused since {clock():%Y-%m-%d %H:%M} UTC: HTTP 410 from the target" in html
    assert ">Resume</button>" in html


def test_the_owner_changes_language_products_kinds_and_zone(
    client, settings, db, clock, open_targets
):
    seed_catalogue(db, clock())
    row = confirmed_channel(client, settings, db, clock, "slack", SLACK)
    path = manage_path(settings, db, clock, row)
    found = form_tokens(client, path)
    response = client.post(
        path,
        data={
            **found,
            "language": "en",
            "timezone": "Asia/Tokyo",
            "scope": "selected",
            "components": ["voice"],
            "notify_incidents": "y",
        },
    )
    assert response.status_code == 303
    after = channel_row(db, "slack", SLACK)
    assert {k: after[k] for k in ("language", "timezone", "all_components")} == {
        "language": "en",
        "timezone": "Asia/Tokyo",
        "all_components": 0,
    }
    assert (after["notify_incidents"], after["notify_maintenance"]) == (1, 0)
    assert db.subscriber_component_ids(row["id"]) == ["voice"]
    assert (after["target_url"], after["email"]) == (SLACK, "ops@example.com")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Saved. Your changes apply to the next message." in page


def test_resume_clears_the_pause_and_queues_one_new_verification(
    client, settings, db, clock, open_targets, wakes
):
    row = confirmed_channel(client, settings, db, clock, "webhook", HOOK)
    db.update_subscriber(
        row["id"],
        paused_at=clock(),
        paused_reason="HTTP 410",
        failure_count=5,
        failing_since=clock() - timedelta(hours=2),
    )
    clock.advance(minutes=3)
    path = manage_path(settings, db, clock, row)
    response = press(client, path, path + "/resume")
    assert response.status_code == 303 and response.headers["Location"] == path
    after = channel_row(db, "webhook", HOOK)
    assert {k: after[k] for k in ("paused_at", "paused_reason", "failure_count")} == {
        "paused_at": None,
        "paused_reason": None,
        "failure_count": 0,
    }
    assert after["failing_since"] is None
    assert [(v["state"], v["channel"]) for v in verifications(db)] == [
        ("cancelled", "webhook"),  # the first, still queued, is replaced
        ("pending", "webhook"),
    ]
    assert len(wakes) == 2
    assert after["webhook_secret"] == row["webhook_secret"]  # resuming keeps the secret


def test_resume_of_an_email_subscription_changes_nothing(client, settings, db, clock):
    signup(client, clock, "ada@example.com")
    row = db.get_subscriber_by_email("ada@example.com")
    post_button(client, link(settings, tokens.CONFIRM, row, clock()))
    before = snapshot(db)
    path = manage_path(settings, db, clock, row)
    assert press(client, path, path + "/resume").status_code == 303
    assert press(client, path, path + "/secret").status_code == 303
    assert snapshot(db) == before


def test_a_new_signing_secret_replaces_the_old_and_is_shown_once(
    client, settings, db, clock, open_targets
):
    row = confirmed_channel(client, settings, db, clock, "webhook", HOOK)
    path = manage_path(settings, db, clock, row)
    db.update_subscriber(row["id"], language="en")
    response = press(client, path, path + "/secret")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    secret = channel_row(db, "webhook", HOOK)["webhook_secret"]
    assert secret != row["webhook_secret"]
    html = response.get_data(as_text=True)
    assert re.findall(r"whsec_[A-Za-z0-9+/=]+", html) == [secret]
    assert "the old one no longer works" in html
    assert "whsec_" not in client.get(path).get_data(as_text=True)


# --- unsubscribe, export, erasure ---------------------------------------------------------


@pytest.mark.parametrize("how", ["page", "one-click"])
def test_unsubscribing_a_channel_cancels_everything_queued_for_it(
    client, settings, db, clock, open_targets, how
):
    row = confirmed_channel(client, settings, db, clock, "slack", SLACK)
    db._execute("UPDATE subscribers SET verified_at = ? WHERE id = ?", [clock(), row["id"]])
    db.update_subscriber(row["id"], language="en")
    path = manage_path(settings, db, clock, row).replace("/preferences/", "/unsubscribe/")
    page = client.get(path).get_data(as_text=True)
    assert "Unsubscribe Slack http://127.0.0.1:9/services/…?" in page
    if how == "page":
        assert post_button(client, path).status_code == 303
    else:
        one_click = path.replace("/unsubscribe/", "/unsubscribe/one-click/")
        assert client.post(one_click, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    after = channel_row(db, "slack", SLACK)
    assert (after["state"], after["unsubscribed_at"]) == ("unsubscribed", clock())
    assert [(v["state"], v["reason"]) for v in verifications(db)] == [
        ("cancelled", f"unsubscribed ({how})")
    ]
    # The receipt with its undo link goes to the owner by mail.
    assert [(m["email"], m["state"]) for m in personal_mails(db, "receipt")] == [
        ("ops@example.com", "pending")
    ]
    receipts = db._query(
        "SELECT d.channel FROM deliveries d JOIN notifications n ON n.id = d.notification_id "
        "WHERE n.kind = 'receipt'"
    )
    assert receipts == [{"channel": "email"}]


def test_undo_of_an_unverified_channel_queues_the_test_message_again(
    client, settings, db, clock, open_targets, wakes
):
    row = confirmed_channel(client, settings, db, clock, "teams", TEAMS)
    path = manage_path(settings, db, clock, row).replace("/preferences/", "/unsubscribe/")
    assert post_button(client, path).status_code == 303
    clock.advance(minutes=2)
    undo = link(settings, tokens.UNDO, channel_row(db, "teams", TEAMS), clock())
    assert post_button(client, undo).status_code == 303
    assert channel_row(db, "teams", TEAMS)["state"] == "confirmed"
    assert [(v["channel"], v["state"]) for v in verifications(db)] == [
        ("teams", "cancelled"),
        ("teams", "pending"),
    ]
    assert len(wakes) == 2


def test_the_export_has_channel_masked_target_and_times_but_never_the_secret(
    client, settings, db, clock, open_targets
):
    row = confirmed_channel(client, settings, db, clock, "webhook", HOOK)
    db._execute("UPDATE subscribers SET verified_at = ? WHERE id = ?", [clock(), row["id"]])
    db.update_subscriber(row["id"], paused_at=clock(), paused_reason="HTTP 410")
    path = manage_path(settings, db, clock, row)
    response = press(client, path, path + "/export")
    assert response.status_code == 200
    data = json.loads(response.data)
    stamp = clock().isoformat()
    subscriber = data["subscriber"]
    assert {
        k: subscriber[k]
        for k in ("email", "channel", "target", "verified_at", "paused_at", "paused_reason")
    } == {
        "email": "ops@example.com",
        "channel": "webhook",
        "target": "http://127.0.0.1:9/…",
        "verified_at": stamp,
        "paused_at": stamp,
        "paused_reason": "HTTP 410",
    }
    assert "target_url" not in subscriber and "webhook_secret" not in subscriber
    text = response.get_data(as_text=True)
    assert "whsec_" not in text and "hooktoken" not in text
    assert [(d["kind"], d["channel"]) for d in data["deliveries"]] == [
        ("confirmation", "email"),
        ("channel_verification", "webhook"),
    ]
    assert subscriptions.export_data(db, row["id"], clock()) == data


def test_erasure_removes_the_target_and_the_secret_with_the_row(
    client, settings, db, clock, open_targets
):
    row = confirmed_channel(client, settings, db, clock, "webhook", HOOK)
    secret = channel_row(db, "webhook", HOOK)["webhook_secret"]
    # Another channel posting to the same URL keeps it; a copy in free text is masked.
    assert channel_signup(client, clock, "other@example.com", "slack", HOOK).status_code == 303
    db.audit("admin", "channel.note", None, {"note": f"checked {HOOK} by hand"}, clock())
    path = manage_path(settings, db, clock, row)
    response = post_button(client, path + "/erase")
    assert response.status_code == 200
    assert db.get_subscriber(row["id"]) is None
    assert channel_row(db, "slack", HOOK)["email"] == "other@example.com"
    tables = dump_tables(db)
    assert [json.loads(r["detail"]) for r in tables["audit_log"]] == [
        {"note": "checked [address] by hand"}
    ]
    del tables["subscribers"], tables["consents"]  # the other subscription's own rows
    everything = json.dumps(tables, default=str)
    for trace in (HOOK, "hooktoken", secret, "ops@example.com"):
        assert trace not in everything


# --- only POST changes anything -----------------------------------------------------------


def test_get_head_and_options_on_every_channel_route_change_nothing(
    client, settings, db, clock, open_targets
):
    channel_signup(client, clock, "ops@example.com", "webhook", HOOK)
    pending = channel_row(db, "webhook", HOOK)
    confirmed = confirmed_channel(client, settings, db, clock, "slack", SLACK)
    db.update_subscriber(confirmed["id"], paused_at=clock(), paused_reason="HTTP 410")
    confirm_path = link(settings, tokens.CONFIRM, pending, clock())
    manage = manage_path(settings, db, clock, confirmed)
    token = manage.removeprefix("/preferences/")
    paths = [
        "/",
        "/subscribe",
        confirm_path,
        manage,
        manage + "/resume",
        manage + "/secret",
        manage + "/export",
        manage + "/erase",
        f"/unsubscribe/{token}",
        f"/unsubscribe/one-click/{token}",
    ]
    found = form_tokens(client, manage)
    before = dump_tables(db)
    for path in paths:
        for method in ("GET", "HEAD", "OPTIONS"):
            response = client.open(
                path,
                method=method,
                data={**found, "channel": "webhook", "target_url": HOOK, "language": "en"},
            )
            assert response.status_code < 500, (method, path)
            assert dump_tables(db) == before, (method, path)


def test_resume_and_new_secret_share_the_signed_link_budget(settings, clock):
    from app import create_app

    app = create_app(
        settings.with_overrides(
            rate_limit_links="4 per 10 minutes", channel_allow_private_targets=True
        )
    )
    app.extensions["clock"] = clock
    client = app.test_client()
    db = app.extensions["store"]
    try:
        channel_signup(client, clock, "ops@example.com", "webhook", HOOK)
        confirm_path = link(settings, tokens.CONFIRM, channel_row(db, "webhook", HOOK), clock())
        assert post_button(client, confirm_path).status_code == 200  # 2 link hits
        path = manage_path(settings, db, clock, channel_row(db, "webhook", HOOK))
        csrf = form_tokens(client, "/")["csrf_token"]
        statuses = [
            client.post(path + action, data={"csrf_token": csrf}).status_code
            for action in ("/resume", "/secret", "/resume")
        ]
        assert statuses == [303, 200, 429]
    finally:
        db.close()


# --- found in review: one owner, many subscriptions ---------------------------------------


def test_one_address_gets_at_most_the_daily_cap_of_confirmations_across_its_targets(
    client, db, clock, open_targets
):
    """Every new target is a new row: the cap (CONFIRMATION_DAILY_CAP a day, a cooldown between)
    counts the address's confirmations over all its rows, or a stranger could flood one
    inbox with confirmations by signing it up for /1, /2, /3, ... ."""
    for n in range(5):
        target = f"http://127.0.0.1:9/hooks/{n}"
        assert channel_signup(client, clock, "victim@example.com", "webhook", target).status_code
        clock.advance(minutes=16)  # past the cooldown each time
    mails = [m for m in personal_mails(db, "confirmation") if m["email"] == "victim@example.com"]
    assert len(mails) == subscriptions.CONFIRMATION_DAILY_CAP
    clock.advance(hours=24)
    assert channel_signup(client, clock, "victim@example.com", "webhook", SLACK + "x").status_code
    assert len(personal_mails(db, "confirmation")) == subscriptions.CONFIRMATION_DAILY_CAP + 1


def test_send_test_message_again_queues_one_for_an_unpaused_channel(
    client, settings, db, clock, open_targets, wakes
):
    """A test message that expired unanswered leaves the channel unverified and unpaused:
    "Send test message again" must queue a new one, not only lift a pause."""
    row = confirmed_channel(client, settings, db, clock, "teams", TEAMS)
    db._execute(
        "UPDATE deliveries SET state = 'failed', reason = 'expired' WHERE subscriber_id = ?",
        [row["id"]],
    )
    path = manage_path(settings, db, clock, row)
    assert press(client, path, path + "/resume").status_code == 303
    assert [(v["state"], v["channel"]) for v in verifications(db)] == [
        ("failed", "teams"),
        ("pending", "teams"),
    ]
    assert len(wakes) == 2


def test_signing_up_an_unsubscribed_channel_again_starts_unverified_and_unpaused(
    client, settings, db, clock, open_targets
):
    """A webhook confirmed again gets a new secret: its target must accept a ping signed with
    it before broadcasts go there, and an old pause or failure streak does not carry over."""
    row = confirmed_channel(client, settings, db, clock, "webhook", HOOK)
    db._execute(
        "UPDATE subscribers SET verified_at = ?, paused_at = ?, paused_reason = 'HTTP 410', "
        "failure_count = 5, failing_since = ? WHERE id = ?",
        [clock(), clock(), clock(), row["id"]],
    )
    subscriptions.unsubscribe(db, row["id"], clock(), "page")
    clock.advance(hours=1)
    confirmed_channel(client, settings, db, clock, "webhook", HOOK)
    after = channel_row(db, "webhook", HOOK)
    assert {k: after[k] for k in ("state", "verified_at", "paused_at", "paused_reason",
                                  "failure_count", "failing_since")} == {
        "state": "confirmed", "verified_at": None, "paused_at": None, "paused_reason": None,
        "failure_count": 0, "failing_since": None,
    }  # fmt: skip
    assert after["webhook_secret"] != row["webhook_secret"]
    assert verifications(db)[-1]["state"] == "pending"


def test_erasing_one_subscription_keeps_the_address_its_other_subscriptions_still_hold(
    client, settings, db, clock, open_targets
):
    """The owner's Slack channel and webhook share the address: erasing the webhook must not
    mask the address in the records the Slack subscription still has (a provider's reply on
    its confirmation mail, here). Erasing the last one masks it everywhere."""
    slack = confirmed_channel(client, settings, db, clock, "slack", SLACK)  # same owner
    hook = confirmed_channel(client, settings, db, clock, "webhook", HOOK)
    reply = "550 5.1.1 <ops@example.com>: mailbox full"
    db._execute(
        "UPDATE deliveries SET provider_reason = ? WHERE subscriber_id = ?", [reply, slack["id"]]
    )

    def replies():
        return {
            r["provider_reason"]
            for r in db._query(
                "SELECT provider_reason FROM deliveries WHERE subscriber_id = ?", [slack["id"]]
            )
        }

    assert post_button(client, manage_path(settings, db, clock, hook) + "/erase").status_code == 200
    assert db.get_subscriber(hook["id"]) is None
    assert db.get_subscriber(slack["id"])["email"] == "ops@example.com"
    assert replies() == {reply}
    assert (
        post_button(client, manage_path(settings, db, clock, slack) + "/erase").status_code == 200
    )
    assert "ops@example.com" not in json.dumps(dump_tables(db), default=str)
