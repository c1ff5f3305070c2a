"""The channel_notice mail (issue 12): one mail to a channel subscription's owner when the
Slack, Microsoft Teams or webhook channel was paused or could not be verified. Whole mails
against the golden files (tests/golden/channel_notice_*), every channel's advice in both
languages, and the mail as SendGrid receives it through the mail Dispatcher (the official
library against tests/fake_sendgrid.py), with the owner's preferences link filled in."""

from __future__ import annotations

import json
import secrets
import types
from datetime import timedelta

import pytest

from notifier import tokens
from notifier.delivery.mailer import apply_substitutions
from notifier.render import render_email
from notifier.tokens import recipient_links

from .helpers import table
from .test_dispatch import dispatcher, sg_settings  # noqa: F401  (fixture)
from .test_render_golden import GOLDEN, golden_stem, load_content

CASES = ["channel_notice_paused_slack", "channel_notice_unverified_webhook"]
READERS = [("de", "Europe/Berlin"), ("en", "UTC")]


def golden(case: str, lang: str, tz: str) -> tuple[str, str]:
    stem = golden_stem(case, lang, tz)
    return (
        (GOLDEN / f"{stem}.txt").read_text(encoding="utf-8"),
        (GOLDEN / f"{stem}.html").read_text(encoding="utf-8"),
    )


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(("lang", "tz"), READERS)
def test_the_mail_matches_its_golden_files(case, lang, tz):
    email = render_email(load_content(case), lang, tz)
    assert (f"Subject: {email.subject}\n\n{email.text}", email.html) == golden(case, lang, tz)
    assert email.attachments == ()


def test_the_paused_slack_mail_reads_whole_in_english():
    email = render_email(load_content("channel_notice_paused_slack"), "en", "UTC")
    assert email.subject == "[Paused] Sinch status notifications to your Slack channel are paused"
    assert email.text == (
        "SINCH · Status notice\n\n"
        "Notifications to your Slack channel are paused\n\n"
        "Hello,\n\n"
        "Your subscription sends Sinch status notifications to your Slack channel\n"
        "(https://hooks.slack.com/services/…). Our last deliveries there failed again\n"
        "and again, so we have paused this subscription. You are getting this email\n"
        "because this address owns it.\n\n"
        "What we know\n------------\n\n"
        "  • Channel: Slack\n"
        "  • Target: https://hooks.slack.com/services/…\n"
        "  • Reason: HTTP 410 from the target\n"
        "  • Paused since: June 30, 2026, 07:45 UTC\n\n"
        "Open your preferences:\n-preferences_url-\n\n"
        "More information\n----------------\n\n"
        "Q: What does this mean for me?\n\n"
        "Until this is fixed, we send no more messages to your Slack channel: notices\n"
        "about incidents and maintenance that happen meanwhile will not appear there.\n"
        "Nothing else changes: your products, language and time zone stay as they\n"
        "are.\n\n"
        "Q: What should I do?\n\n"
        "Check in Slack that the incoming webhook still exists and still posts to the\n"
        "channel: an app that was removed, or a channel that was archived or deleted,\n"
        "ends it. If you had to create a new incoming webhook, enter its URL in your\n"
        "preferences.\n\n"
        "Then choose “Resume” on your preferences page. We send a test message first,\n"
        "and the notifications start again as soon as the target has accepted it.\n\n"
        "Kind regards,\nThe Sinch team\n\n"
        "--\n"
        "You are receiving this email because this address owns a subscription to\n"
        "Sinch status notifications for your Slack channel. We send it once and will\n"
        "not write again about this.\n\n"
        "Change preferences:\n-preferences_url-\n"
    )


@pytest.mark.parametrize(
    ("channel", "lang", "subject", "advice"),
    [
        ("teams", "en", "[Paused] Sinch status notifications to your Microsoft Teams channel "
         "are paused", "Check in Microsoft Teams that the workflow"),
        ("teams", "de", "[Pausiert] Sinch-Statusmeldungen an deinen Microsoft-Teams-Kanal sind "
         "pausiert", "Prüfe in Microsoft Teams, ob der Workflow"),
        ("webhook", "de", "[Pausiert] Sinch-Statusmeldungen an deinen Webhook sind pausiert",
         "Prüfe, ob die Webhook-URL stimmt"),
        ("slack", "de", "[Pausiert] Sinch-Statusmeldungen an deinen Slack-Kanal sind pausiert",
         "Prüfe in Slack, ob der eingehende Webhook"),
    ],
)  # fmt: skip
def test_every_channel_gets_its_own_advice(channel, lang, subject, advice):
    content = {**load_content("channel_notice_paused_slack"), "channel": channel}
    email = render_email(content, lang, "UTC")
    assert email.subject == subject
    assert advice in email.text
    assert ("Fortsetzen" if lang == "de" else "Resume") in email.text
    assert "-preferences_url-" in email.html


def test_an_unknown_channel_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown channel 'pager' in a channel notice"):
        render_email({"kind": "channel_notice", "channel": "pager"}, "en", "UTC")


def queue_notice(db, clock, content: dict, *, language: str, timezone: str) -> tuple[int, int]:
    """A paused webhook subscription and its notice queued as store.pause_channel queues it
    (contract of issue 12: a notification of its own, one 'email' row to the owner)."""
    now = clock()
    sub_id = db._query_one(
        "INSERT INTO subscribers (email, language, timezone, all_components, notify_incidents, "
        "notify_maintenance, state, link_nonce, created_at, updated_at, confirmed_at, channel, "
        "target_url, webhook_secret, verified_at, paused_at, paused_reason, failure_count) "
        "VALUES (?, ?, ?, 1, 1, 1, 'confirmed', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 5) RETURNING id",
        ["owner@example.com", language, timezone, secrets.token_urlsafe(8), now, now, now,
         content["channel"], "https://hooks.example.com/status/receive?token=SECRET",
         "whsec_" + secrets.token_hex(8), now, now, content["reason"]],
    )["id"]  # fmt: skip
    nid = db.create_notification(
        "channel_notice", content, now, now + timedelta(hours=24), audience={}
    )
    db._execute("UPDATE notifications SET fanned_out_at = ? WHERE id = ?", [now, nid])
    db._execute(
        "INSERT INTO deliveries (notification_id, subscriber_id, email, language, timezone, "
        "state, next_attempt_at, created_at, updated_at, priority, expires_at, channel) "
        "VALUES (?, ?, 'owner@example.com', ?, ?, 'pending', ?, ?, ?, 1, ?, 'email')",
        [nid, sub_id, language, timezone, now, now, now, now + timedelta(hours=24)],
    )
    return nid, sub_id


@pytest.mark.parametrize(
    ("case", "lang", "tz"),
    [("channel_notice_paused_slack", "de", "Europe/Berlin"),
     ("channel_notice_unverified_webhook", "en", "UTC")],
)  # fmt: skip
def test_the_dispatcher_sends_the_golden_mail_with_the_owners_link(
    db,
    sg_settings,  # noqa: F811  (fixture from test_dispatch)
    clock,
    sendgrid,
    case,
    lang,
    tz,
    monkeypatch,
):
    # Tokens carry the second they were signed at: the dispatcher's and the expected link
    # must be signed in the same second, whenever the run crosses a second boundary. The
    # minter reads `tokens.time.time()` (not itsdangerous's get_timestamp), so pin that.
    monkeypatch.setattr(tokens, "time", types.SimpleNamespace(time=lambda: 1782800000.0))
    content = load_content(case)
    nid, sub_id = queue_notice(db, clock, content, language=lang, timezone=tz)
    stats = dispatcher(db, sg_settings, clock).run()
    assert (stats.requests, stats.sent, stats.failed) == (1, 1, 0)
    [request] = sendgrid.requests
    body = request.body
    nonce = db._scalar("SELECT link_nonce FROM subscribers WHERE id = ?", [sub_id])
    links = recipient_links(sg_settings, sub_id, nonce)
    [person] = body["personalizations"]
    [delivery] = table(db, "deliveries")
    zone = {k: v for k, v in person["substitutions"].items() if k.startswith("-z")}
    assert person == {
        "to": [{"email": "owner@example.com"}],
        "substitutions": {
            "-preferences_url-": links["preferences_url"],
            "-unsubscribe_url-": links["unsubscribe_url"],
            **zone,
        },
        "custom_args": {"delivery_id": str(delivery["id"]), "notification_id": str(nid)},
    }
    text, html = golden(case, lang, tz)
    subject, _, text = text.partition("\n\n")
    received = [apply_substitutions(c["value"], person["substitutions"]) for c in body["content"]]
    link = links["preferences_url"]
    assert received == [
        text.replace("-preferences_url-", link),
        html.replace("-preferences_url-", link),
    ]
    assert {k: v for k, v in body.items() if k not in ("personalizations", "content")} == {
        "from": {"email": "status@sinch.example", "name": "Sinch Status"},
        "subject": subject.removeprefix("Subject: "),
        "categories": ["channel_notice"],
        # A personal mail: a list id, but no one-click unsubscribe header.
        "headers": {"List-Id": "Sinch status <status.sinch.example>"},
        "tracking_settings": {
            "click_tracking": {"enable": False, "enable_text": False},
            "open_tracking": {"enable": False},
            "subscription_tracking": {"enable": False},
            "ganalytics": {"enable": False},
        },
    }
    assert "SECRET" not in json.dumps(body)  # the target's token never reaches the mail
    assert (delivery["state"], delivery["channel"]) == ("sent", "email")
