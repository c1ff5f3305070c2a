"""Channel subscriptions in the ops console (issue 12): the subscribers list and detail show
the channel, owner, masked target, verification and pause; ops resume a paused channel
(audited); dashboard, composer and send confirmation count per channel; announcements fan out
to ready channels; the ledger shows and filters by channel, and a resend keeps the channel."""

from __future__ import annotations

import html
import re
import secrets
from datetime import timedelta

import pytest

from notifier.announcements import normalize

from .helpers import add_subscriber, table
from .test_admin_helpers import (  # noqa: F401  (fixtures)
    admin_client,
    admin_settings,
    audit_rows,
    post,
)
from .test_subscribe_helpers import seed_catalogue

SLACK = "https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX"
TEAMS = "https://prod-00.westeurope.logic.azure.com/workflows/abc123/triggers/manual/paths/invoke"
HOOK = "https://hooks.example.com/status/receive?token=SECRET"
PAUSED_HOOK = "https://ops.example.org/notify/SECRETPATH"
ANNOUNCEMENT = {
    "products": ["SMS (EU)"],
    "de": {"title": "Hinweis zu SMS", "intro": "Alles gut."},
    "en": {"title": "About SMS", "intro": "All good."},
}


def add_channel(db, channel, url, owner, now, *, language="en", verified=True, paused=None,
                failures=0, components=None):  # fmt: skip
    """A confirmed channel subscription, inserted directly (sign-up has its own tests)."""
    zone = "Europe/Berlin" if language == "de" else "UTC"
    row = db._query_one(
        "INSERT INTO subscribers (email, language, timezone, all_components, notify_incidents, "
        "notify_maintenance, state, link_nonce, created_at, updated_at, confirmed_at, channel, "
        "target_url, webhook_secret, verified_at, paused_at, paused_reason, failure_count, "
        "failing_since) VALUES (?, ?, ?, ?, 1, 1, 'confirmed', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "?) RETURNING id",
        [owner, language, zone, components is None, secrets.token_urlsafe(8), now, now, now,
         channel, url, "whsec_" + secrets.token_hex(8) if channel == "webhook" else None,
         now if verified else None, now if paused else None, paused, failures,
         now if failures else None],
    )  # fmt: skip
    for component in components or []:
        db._execute(
            "INSERT INTO subscriber_components (subscriber_id, component_id) VALUES (?, ?)",
            [row["id"], component],
        )
    return row["id"]


@pytest.fixture
def world(db, clock):
    """Two email subscribers and one of each channel state; returns their ids by name."""
    now = clock()
    seed_catalogue(db, now)
    return {
        "mail-en": add_subscriber(db, "ops@example.com", now=now),
        "mail-de": add_subscriber(db, "de@example.de", now=now, language="de"),
        "slack": add_channel(db, "slack", SLACK, "ops@example.com", now),
        "teams": add_channel(db, "teams", TEAMS, "ops@example.com", now, verified=False),
        "hook": add_channel(db, "webhook", HOOK, "dev@example.net", now, language="de"),
        "paused": add_channel(
            db,
            "webhook",
            PAUSED_HOOK,
            "dev@example.net",
            now,
            paused="HTTP 410 from the target",
            failures=5,
        ),
        "gone": add_subscriber(db, "gone@example.com", now=now, state="unsubscribed"),
    }


def cells(row_html: str) -> list[str]:
    """The text of each <td> of a table row, tags stripped, whitespace folded."""
    out = []
    for cell in re.findall(r"<td[^>]*>(.*?)</td>", row_html, re.S):
        text = html.unescape(re.sub(r"<[^>]+>", " ", cell))
        out.append(" ".join(text.split()))
    return out


def subscriber_rows(page: str) -> list[list[str]]:
    return [cells(row) for row in re.findall(r'<tr data-channel="\w+">(.*?)</tr>', page, re.S)]


def facts(page: str) -> dict[str, str]:
    pairs = re.findall(r"<dt>(.*?)</dt><dd[^>]*>(.*?)</dd>", page, re.S)
    return {k: " ".join(html.unescape(re.sub(r"<[^>]+>", " ", v)).split()) for k, v in pairs}


def test_the_subscribers_list_shows_channel_rows_and_filters_by_channel(admin, db, world, clock):
    page = admin.get("/admin/subscribers").text
    signed_up = f"{clock():%Y-%m-%d %H:%M:%S} UTC"  # the English console shows UTC
    assert subscriber_rows(page) == [
        ["gone@example.com", "Email", "–", "Unsubscribed", "en", signed_up],
        ["dev@example.net", "Webhook", "https://ops.example.org/…",
         "Confirmed paused HTTP 410 from the target", "en", signed_up],
        ["dev@example.net", "Webhook", "https://hooks.example.com/…",
         "Confirmed verified", "de", signed_up],
        ["ops@example.com", "Microsoft Teams", "https://prod-00.westeurope.logic.azure.com/workflows/…",
         "Confirmed awaiting verification", "en", signed_up],
        ["ops@example.com", "Slack", "https://hooks.slack.com/services/…",
         "Confirmed verified", "en", signed_up],
        ["de@example.de", "Email", "–", "Confirmed", "de", signed_up],
        ["ops@example.com", "Email", "–", "Confirmed", "en", signed_up],
    ]  # fmt: skip
    # No token of any target reaches the page.
    assert not any(s in page for s in ("SECRET", "XXXX", "abc123", "T000"))
    slack = admin.get("/admin/subscribers?channel=slack").text
    assert [r[:2] for r in subscriber_rows(slack)] == [["ops@example.com", "Slack"]]
    assert '<option value="slack" selected>Slack</option>' in slack
    # The search is a POST (no address in a URL); the channel filter combines with it.
    found = post(admin, "/admin/subscribers", {"q": "dev@", "channel": "webhook"}).text
    assert [r[2] for r in subscriber_rows(found)] == [
        "https://ops.example.org/…",
        "https://hooks.example.com/…",
    ]
    email = post(admin, "/admin/subscribers", {"q": "ops@", "channel": "email"}).text
    assert [r[:2] for r in subscriber_rows(email)] == [["ops@example.com", "Email"]]
    # An unknown channel is no filter at all (like an unknown state), never an error.
    bogus = admin.get("/admin/subscribers?channel=pager")
    assert bogus.status_code == 200 and len(subscriber_rows(bogus.text)) == 7
    assert db.search_subscribers(channel="teams")[0]["target_url"] == TEAMS


def test_the_subscriber_page_shows_a_paused_channel_and_resumes_it_audited(admin, db, world, clock):
    sub_id = world["paused"]
    at = f"{clock():%Y-%m-%d %H:%M:%S} UTC"
    page = admin.get(f"/admin/subscribers/{sub_id}").text
    shown = facts(page)
    assert {k: shown[k] for k in ("Channel", "Owner address", "Target", "Verified", "Paused")} == {
        "Channel": "Webhook",
        "Owner address": "dev@example.net",
        "Target": "https://ops.example.org/…",
        "Verified": at,
        "Paused": f"paused {at} · HTTP 410 from the target",
    }
    assert "SECRETPATH" not in page
    action = f'action="/admin/subscribers/{sub_id}/resume"'
    assert action in page
    # An email subscriber and an unpaused channel have no resume button.
    assert "/resume" not in admin.get(f"/admin/subscribers/{world['mail-en']}").text
    assert "/resume" not in admin.get(f"/admin/subscribers/{world['hook']}").text
    assert "Owner address" not in admin.get(f"/admin/subscribers/{world['mail-en']}").text

    # Only POST with the CSRF token changes anything.
    assert admin.get(f"/admin/subscribers/{sub_id}/resume").status_code == 405
    assert admin.post(f"/admin/subscribers/{sub_id}/resume").status_code == 400
    assert db.get_subscriber(sub_id)["paused_at"] is not None

    clock.advance(minutes=5)
    response = post(admin, f"/admin/subscribers/{sub_id}/resume")
    assert (response.status_code, response.headers["Location"]) == (
        303,
        f"/admin/subscribers/{sub_id}",
    )
    row = db.get_subscriber(sub_id)
    assert {k: row[k] for k in ("paused_at", "paused_reason", "failure_count", "failing_since",
                                "verified_at", "state")} == {
        "paused_at": None, "paused_reason": None, "failure_count": 0, "failing_since": None,
        "verified_at": None, "state": "confirmed",
    }  # fmt: skip
    # A new test message to the target is queued (channel_verification goes by the channel).
    queued = [
        (d["subscriber_id"], d["channel"], d["state"], d["email"]) for d in table(db, "deliveries")
    ]
    assert queued == [(sub_id, "webhook", "pending", "dev@example.net")]
    [notification] = table(db, "notifications")
    assert notification["kind"] == "channel_verification"
    assert audit_rows(db)[-1] == (
        "admin",
        "subscriber.resume_channel",
        f"subscriber:{sub_id}",
        {"channel": "webhook", "paused_reason": "HTTP 410 from the target"},
    )
    after = admin.get(f"/admin/subscribers/{sub_id}").text
    assert "Resumed. A test message is on its way" in after
    assert facts(after)["Verified"] == "awaiting verification"
    # Twice, or for an email subscriber: nothing changes, nothing is audited.
    entries = len(audit_rows(db))
    for target in (sub_id, world["mail-en"], world["slack"]):
        again = post(admin, f"/admin/subscribers/{target}/resume", follow_redirects=True)
        assert "This channel is not paused." in again.text
    assert len(audit_rows(db)) == entries
    assert len(table(db, "deliveries")) == 1
    assert post(admin, "/admin/subscribers/999999/resume").status_code == 404


def test_the_dashboard_counts_subscriptions_per_channel(admin, db, world):
    expected = {
        "email": {"active": 2, "awaiting": 0, "paused": 0},
        "slack": {"active": 1, "awaiting": 0, "paused": 0},
        "teams": {"active": 0, "awaiting": 1, "paused": 0},
        "webhook": {"active": 1, "awaiting": 0, "paused": 1},
    }
    assert db.subscriber_counts()["by_channel"] == expected
    page = admin.get("/admin/").text
    rows = dict(
        (code, cells(row))
        for code, row in re.findall(r'<tr data-channel-counts="(\w+)">(.*?)</tr>', page, re.S)
    )
    assert rows == {
        "email": ["2", "–", "–"],
        "slack": ["1", "0", "0"],
        "teams": ["0", "1", "0"],
        "webhook": ["1", "0", "1"],
    }
    assert '<a href="/admin/subscribers?channel=teams">Microsoft Teams</a>' in page


def channel_counts(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-channel-count="(\w+)">(\d+)<', page))


def test_composer_and_send_confirmation_count_recipients_per_channel(admin, db, world, clock):
    # Only verified, unpaused channels are reached, as fan-out picks them.
    new = admin.get("/admin/announcements/new").text
    assert channel_counts(new) == {"email": "2", "slack": "1", "teams": "0", "webhook": "1"}
    assert re.search(r"data-audience-count>(\d+)<", new).group(1) == "4"
    content, audience = normalize({**ANNOUNCEMENT, "audience": {"languages": ["de"]}})
    assert db.count_audience_by_channel("announcement", audience) == {
        "email": 1, "slack": 0, "teams": 0, "webhook": 1,
    }  # fmt: skip
    assert db.count_audience("announcement", audience) == 2
    draft = db.save_announcement(content, audience, "admin", clock())
    assert channel_counts(admin.get(f"/admin/announcements/{draft}").text) == {
        "email": "1", "slack": "0", "teams": "0", "webhook": "1",
    }  # fmt: skip
    confirm = admin.get(f"/admin/announcements/{draft}/send").text
    assert channel_counts(confirm) == {"email": "1", "slack": "0", "teams": "0", "webhook": "1"}
    assert "Send now to 2 recipients" in confirm


def send_announcement(db, clock) -> int:
    content, audience = normalize(ANNOUNCEMENT)
    draft = db.save_announcement(content, audience, "admin", clock())
    nid, count = db.send_announcement(
        draft, content, audience, clock(), clock() + timedelta(hours=2)
    )
    assert count == 4
    return nid


def rows_of(db, nid) -> list[tuple]:
    return sorted(
        (d["subscriber_id"], d["channel"], d["email"], d["language"], d["state"])
        for d in table(db, "deliveries")
        if d["notification_id"] == nid
    )


def test_an_announcement_fans_out_to_verified_unpaused_channels(db, world, clock):
    nid = send_announcement(db, clock)
    assert rows_of(db, nid) == sorted([
        (world["mail-en"], "email", "ops@example.com", "en", "pending"),
        (world["mail-de"], "email", "de@example.de", "de", "pending"),
        (world["slack"], "slack", "ops@example.com", "en", "pending"),
        (world["hook"], "webhook", "dev@example.net", "de", "pending"),
    ])  # fmt: skip


def ledger_rows(page: str) -> list[tuple[str, str, str]]:
    """(address, channel, state) of each row in the ledger."""
    found = re.findall(
        r'<tr data-delivery="([^"]+)" data-state="(\w+)">\s*<td[^>]*>.*?</td>\s*'
        r'<td data-channel="(\w+)">',
        page,
        re.S,
    )
    return [(email, channel, state) for email, state, channel in found]


def test_the_ledger_shows_filters_and_resends_channel_rows_keeping_the_channel(
    admin, db, world, clock
):
    nid = send_announcement(db, clock)
    # The Slack and the webhook row failed for good; the German email row too.
    db._execute(
        "UPDATE deliveries SET state = 'failed', reason = 'HTTP 404 from the target' "
        "WHERE notification_id = ? AND subscriber_id IN (?, ?, ?)",
        [nid, world["slack"], world["hook"], world["mail-de"]],
    )
    page = admin.get(f"/admin/notifications/{nid}").text
    assert sorted(ledger_rows(page)) == [
        ("de@example.de", "email", "failed"),
        ("dev@example.net", "webhook", "failed"),
        ("ops@example.com", "email", "pending"),
        ("ops@example.com", "slack", "failed"),
    ]
    assert '<td data-channel="slack">Slack</td>' in page
    only = post(admin, f"/admin/notifications/{nid}", {"channel": "webhook"}).text
    assert ledger_rows(only) == [("dev@example.net", "webhook", "failed")]
    assert "Matching rows: 1" in only
    assert db.count_deliveries(nid, channel="slack", state="failed") == 1
    assert [d["channel"] for d in db.search_deliveries(nid, channel="email")] == ["email"] * 2

    # The webhook was paused meanwhile: its row is not resent; the others keep their channel.
    db._execute(
        "UPDATE subscribers SET paused_at = ?, paused_reason = 'HTTP 410' WHERE id = ?",
        [clock(), world["hook"]],
    )
    response = post(admin, f"/admin/notifications/{nid}/resend", {"which": "failed"})
    new_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert rows_of(db, new_id) == sorted([
        (world["mail-de"], "email", "de@example.de", "de", "pending"),
        (world["slack"], "slack", "ops@example.com", "en", "pending"),
    ])  # fmt: skip
    assert audit_rows(db)[-1] == (
        "admin",
        "resend",
        f"notification:{nid}",
        {"which": "failed", "new_notification": new_id, "deliveries": 2},
    )
    # One row: the Slack row's copy again goes to Slack.
    db._execute(
        "UPDATE deliveries SET state = 'failed', reason = 'HTTP 500' WHERE notification_id = ?",
        [new_id],
    )
    [slack_row] = [
        d for d in table(db, "deliveries")
        if d["notification_id"] == new_id and d["channel"] == "slack"
    ]  # fmt: skip
    one = post(
        admin, f"/admin/notifications/{new_id}/resend",
        {"which": "one", "delivery_id": slack_row["id"]},
    )  # fmt: skip
    third = int(one.headers["Location"].rsplit("/", 1)[1])
    assert rows_of(db, third) == [(world["slack"], "slack", "ops@example.com", "en", "pending")]
