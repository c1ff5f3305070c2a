"""Ops alerts by mail (issue 15, part 1): episodes opened and ended by their rules, mailed once
per start (and once per feed recovery) to OPS_ALERT_EMAILS through the ledger and the real
`sendgrid` library against the fake SendGrid, listed and acknowledged on the dashboard.

Everything runs in-process with the injectable clock, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notifier import alerts, jobs
from notifier.alerts import REMIND_AFTER, alert_content, check_alerts
from notifier.delivery.dispatch import Dispatcher
from notifier.fetch import make_client
from notifier.hooks import DROP_ALERT
from notifier.poller import poll_all
from notifier.render import render_email
from notifier.settings import SettingsError, load_settings
from notifier.store import open_store

from .helpers import atom, raw_rows, table
from .test_admin_helpers import (  # noqa: F401  (fixtures)
    ADMIN_HASH,
    admin_client,
    audit_rows,
    login,
    post,
    send_through,
)
from .test_settings import _run_cli

OPS = ("ops@example.com", "oncall@example.com")
GOLDEN = Path(__file__).parent / "golden" / "ops_alert"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
BASE = "https://status-notify.example.com"


@pytest.fixture
def feed_url(feed_server) -> str:
    return feed_server.set("/history.atom", b"unavailable", status=503)


@pytest.fixture
def settings(settings, feed_url):
    return replace(
        settings, admin_password_hash=ADMIN_HASH, feed_urls=(feed_url,), ops_alert_emails=OPS
    )


@pytest.fixture
def mail(app, settings, sendgrid):
    """The app sends through the fake SendGrid (official library, local server)."""
    send_through(app, settings, sendgrid)
    return sendgrid


def ops_settings(app):
    return app.extensions["settings"]


def check(app):
    """One run of the worker's alerts job; its AlertRun."""
    return jobs.alerts(app)


def poll(app, db, clock, times: int = 1) -> None:
    """`times` real polls of the configured feed, a minute apart."""
    with make_client(2.0) as client:
        for _ in range(times):
            clock.advance(minutes=1)
            poll_all(db, client, ops_settings(app).feed_urls, clock(), 1 << 20)


def dispatch(app, clock):
    return Dispatcher(
        app.extensions["store"], jobs.mail_backend(app), ops_settings(app), clock, owner="w1"
    ).run()


def alert_rows(db) -> list[dict]:
    return raw_rows(db, "SELECT * FROM alerts ORDER BY id")


def ops_mails(db) -> list[tuple]:
    """(notification, email, language, timezone, state, priority, subscriber) of every alert
    mail delivery, by notification and address."""
    return [
        tuple(r.values())
        for r in raw_rows(
            db,
            "SELECT d.notification_id, d.email, d.language, d.timezone, d.state, d.priority, "
            "d.subscriber_id FROM deliveries d JOIN notifications n ON n.id = d.notification_id "
            "WHERE n.kind = 'ops_alert' ORDER BY d.notification_id, d.email",
        )
    ]


ENVELOPE = {
    "from": {"email": "status@sinch.example", "name": "Sinch Status"},
    "categories": ["ops_alert"],
    "tracking_settings": {
        "click_tracking": {"enable": False, "enable_text": False},
        "open_tracking": {"enable": False},
        "subscription_tracking": {"enable": False},
        "ganalytics": {"enable": False},
    },
}


def as_received(body: dict) -> list[dict]:
    """Each recipient's mail from one Mail Send request, as SendGrid delivers it: the
    personalization's substitutions applied to subject and content; sorted by address."""
    mails = []
    for p in body["personalizations"]:
        subs = p.get("substitutions") or {}

        def fill(value: str, subs: dict = subs) -> str:
            for key, replacement in subs.items():
                value = value.replace(key, replacement)
            return value

        rest = {
            k: v for k, v in body.items() if k not in ("personalizations", "subject", "content")
        }
        mails.append(
            {
                **rest,
                "to": [t["email"] for t in p["to"]],
                "custom_args": p["custom_args"],
                "subject": fill(body["subject"]),
                "content": [{**part, "value": fill(part["value"])} for part in body["content"]],
            }
        )
    return sorted(mails, key=lambda m: m["to"])


def expected_mails(app, db, nid: int, lang: str = "en") -> list[dict]:
    """The alert mail of notification `nid` as each ops address must receive it: rendered
    from its stored content (render_email, the golden files' renderer), one per delivery."""
    email = render_email(db.get_notification(nid)["content"], lang, "UTC")
    rows = raw_rows(db, "SELECT id, email FROM deliveries WHERE notification_id = ?", nid)
    return sorted(
        (
            {
                **ENVELOPE,
                "headers": {"List-Id": ops_settings(app).list_id},
                "to": [r["email"]],
                "custom_args": {"delivery_id": str(r["id"]), "notification_id": str(nid)},
                "subject": email.subject,
                "content": [
                    {"type": "text/plain", "value": email.text},
                    {"type": "text/html", "value": email.html},
                ],
            }
            for r in rows
        ),
        key=lambda m: m["to"],
    )


def subjects(mail) -> list[str]:
    return [r.body["subject"] for r in mail.accepted_requests()]


# --- settings ------------------------------------------------------------------------
def test_ops_settings_default_to_no_mail_english_and_ten_minutes():
    settings = load_settings({})
    assert (settings.ops_alert_emails, settings.ops_language, settings.backlog_alert_minutes) == (
        (),
        "en",
        10,
    )


def test_ops_settings_are_parsed_lowercased_without_duplicates():
    settings = load_settings(
        {
            "OPS_ALERT_EMAILS": " Ops@Example.com, oncall@example.com,,ops@example.com ",
            "OPS_LANGUAGE": "DE",
            "BACKLOG_ALERT_MINUTES": "3",
        }
    )
    assert (settings.ops_alert_emails, settings.ops_language, settings.backlog_alert_minutes) == (
        ("ops@example.com", "oncall@example.com"),
        "de",
        3,
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"OPS_ALERT_EMAILS": "ops@example.com, not-an-address"},
            "OPS_ALERT_EMAILS entry 2 is not an email address: 'not-an-address' (use plain "
            "addresses separated by commas, e.g. ops@example.com,oncall@example.com)",
        ),
        (
            {"OPS_ALERT_EMAILS": "Ops <ops@example.com>"},
            "OPS_ALERT_EMAILS entry 1 is not an email address: 'Ops <ops@example.com>' (use "
            "plain addresses separated by commas, e.g. ops@example.com,oncall@example.com)",
        ),
        ({"OPS_LANGUAGE": "fr"}, "OPS_LANGUAGE must be de or en, got 'fr'"),
        ({"BACKLOG_ALERT_MINUTES": "0"}, "BACKLOG_ALERT_MINUTES must be at least 1, got 0"),
    ],
)
def test_bad_ops_settings_are_refused_naming_the_variable(environ, message):
    with pytest.raises(SettingsError) as refused:
        load_settings(environ)
    assert str(refused.value) == message


def test_a_bad_ops_address_stops_the_cli_with_one_line(tmp_path):
    result = _run_cli({"OPS_ALERT_EMAILS": "ops@example.com;oncall"}, tmp_path, "db", "upgrade")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "status-notifier: refusing to start: OPS_ALERT_EMAILS entry 1 is not an email address: "
        "'ops@example.com;oncall' (use plain addresses separated by commas, e.g. "
        "ops@example.com,oncall@example.com)"
    ]


# --- a stale feed: once when it starts, once when it recovers ----------------------------
def test_a_stale_feed_mails_once_and_its_recovery_mails_once(app, db, clock, mail, feed_server):
    url = ops_settings(app).feed_urls[0]
    poll(app, db, clock, times=4)
    assert check(app) == alerts.AlertRun()  # 4 failures: STALE_AFTER_POLLS is 5
    poll(app, db, clock)
    started = clock()
    run = check(app)
    feed_id = db.get_feed(url)["id"]
    key = f"feed_stale:{feed_id}"
    assert (run.opened, run.ended, len(run.mailed)) == ([key], [], 1)
    message = f"5 polls in a row failed; last error: HTTP 503 from {url}"
    assert alert_rows(db) == [{
        "id": 1,
        "kind": "feed_stale",
        "message": message,
        "created_at": "2026-11-26T12:05:00.000000Z",
        "resolved_at": None,
        "episode_key": key,
        "subject": url,
        "acknowledged_at": None,
        "acknowledged_by": None,
        "notification_id": run.mailed[0],
        "end_notification_id": None,
        "mailed_at": "2026-11-26T12:05:00.000000Z",
    }]  # fmt: skip
    # More failed polls and checks, a restart (a new store): still one episode, one mail.
    for _ in range(3):
        poll(app, db, clock)
        assert check(app).mailed == []
    other = open_store(ops_settings(app))
    try:
        assert check_alerts(other, ops_settings(app), clock()).mailed == []
    finally:
        other.close()
    assert [a["message"] for a in alert_rows(db)] == [message.replace("5 polls", "8 polls")]
    start_nid = run.mailed[0]
    stats = dispatch(app, clock)
    assert (stats.sent, stats.requests) == (2, 1)
    [request] = mail.accepted_requests()
    content = db.get_notification(start_nid)["content"]
    assert content == {
        "kind": "ops_alert",
        "event": "start",
        "alert": {
            "id": 1,
            "kind": "feed_stale",
            "subject": url,
            "message": message,
            "started_at": started.isoformat(),
            "ended_at": None,
        },
        "dashboard_url": f"{BASE}/admin/",
    }
    assert as_received(request.body) == expected_mails(app, db, start_nid)
    assert request.body["subject"] == f"[Alert] Feed failing: {url}"
    assert [m["to"] for m in as_received(request.body)] == [[a] for a in sorted(OPS)]

    # The feed answers again: the episode ends and one recovery mail goes.
    feed_server.set("/history.atom", atom([]))
    poll(app, db, clock)
    ended = clock()
    run = check(app)
    assert (run.opened, run.ended, len(run.mailed)) == ([], [key], 1)
    assert check(app) == alerts.AlertRun()
    [alert] = alert_rows(db)
    assert (alert["resolved_at"], alert["end_notification_id"], alert["mailed_at"]) == (
        "2026-11-26T12:09:00.000000Z",
        run.mailed[0],
        "2026-11-26T12:05:00.000000Z",
    )
    dispatch(app, clock)
    recovery = mail.accepted_requests()[1].body
    content = db.get_notification(run.mailed[0])["content"]
    assert (content["event"], content["alert"]["ended_at"]) == ("end", ended.isoformat())
    assert as_received(recovery) == expected_mails(app, db, run.mailed[0])
    assert recovery["subject"] == f"[Recovered] Feed failing: {url}"
    assert len(mail.accepted_requests()) == 2


def test_a_second_worker_checking_at_the_same_time_does_not_duplicate(app, db, clock, mail):
    poll(app, db, clock, times=5)
    settings = ops_settings(app)
    stores = [open_store(settings), open_store(settings)]
    barrier = threading.Barrier(2)
    runs: list = [None, None]

    def worker(i: int) -> None:
        barrier.wait()
        runs[i] = check_alerts(stores[i], settings, clock())

    try:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        for store in stores:
            store.close()
    assert sorted(len(r.opened) for r in runs) == [0, 1]
    assert sorted(len(r.mailed) for r in runs) == [0, 1]
    [nid] = [n for r in runs for n in r.mailed]
    assert [a["notification_id"] for a in alert_rows(db)] == [nid]
    assert ops_mails(db) == [
        (nid, "oncall@example.com", "en", "UTC", "pending", -1, None),
        (nid, "ops@example.com", "en", "UTC", "pending", -1, None),
    ]
    assert db.get_notification(nid)["content"]["event"] == "start"


# --- reminders and acknowledgement ---------------------------------------------------------
def test_acknowledgement_stops_the_reminders(app, db, clock, mail, admin):
    db.raise_alert(DROP_ALERT, "SendGrid dropped 1 message: Invalid", clock())
    [first] = check(app).mailed
    dispatch(app, clock)  # the mails go out; no backlog builds up meanwhile
    clock.advance(seconds=REMIND_AFTER.total_seconds() - 60)
    assert check(app).mailed == []  # not yet
    clock.advance(minutes=1)
    [reminder] = check(app).mailed
    assert check(app).mailed == []  # once per REMIND_AFTER
    dispatch(app, clock)
    content = db.get_notification(reminder)["content"]
    assert (content["event"], content["alert"]["kind"]) == ("reminder", "message_dropped")
    clock.advance(seconds=REMIND_AFTER.total_seconds())
    [second] = check(app).mailed
    dispatch(app, clock)
    login(admin)  # hours passed: the morning's session has timed out
    response = post(admin, "/admin/alerts/1/acknowledge")
    assert (response.status_code, response.headers["Location"]) == (303, "/admin/")
    clock.advance(hours=48)
    assert check(app).mailed == []
    [alert] = alert_rows(db)
    assert (alert["acknowledged_by"], alert["resolved_at"], alert["notification_id"]) == (
        "admin",
        None,
        first,
    )
    assert audit_rows(db)[-1] == ("admin", "alert.acknowledge", "alert:1", {"kind": DROP_ALERT})
    assert subjects(mail) == [
        "[Alert] Message dropped by SendGrid",
        "[Reminder] Message dropped by SendGrid",
        "[Reminder] Message dropped by SendGrid",
    ]
    for request, nid in zip(mail.accepted_requests(), [first, reminder, second], strict=True):
        assert as_received(request.body) == expected_mails(app, db, nid)
    assert second > reminder > first


# --- backlog -------------------------------------------------------------------------------
def queue_one(db, clock, hours: int = 48) -> int:
    """One pending delivery (a test send) due now; its notification id."""
    db.create_test_send(
        "announcement",
        {"kind": "announcement", "en": {"title": "T", "intro": "I"}, "de": {"title": "T"}},
        "reader@example.com",
        "en",
        "UTC",
        clock(),
        clock() + timedelta(hours=hours),
    )
    return db._scalar("SELECT MAX(id) FROM notifications")


def test_the_backlog_alert_fires_at_the_threshold_and_not_before(app, db, clock, mail):
    queue_one(db, clock)
    clock.advance(minutes=10, seconds=-1)
    assert check(app) == alerts.AlertRun()
    clock.advance(seconds=1)
    run = check(app)
    assert (run.opened, len(run.mailed)) == (["backlog"], 1)
    [alert] = alert_rows(db)
    assert (alert["kind"], alert["episode_key"], alert["message"]) == (
        "backlog",
        "backlog",
        "the oldest due delivery has waited 10 min (due since 12:00 UTC)",
    )
    # The alert mail is claimed before the backlog it is about (priority -1).
    rows = db.claim_due("w9", clock(), clock() + timedelta(minutes=1), 2)
    assert [(r["notification_id"], r["email"]) for r in rows] == [
        (run.mailed[0], "ops@example.com"),
        (run.mailed[0], "oncall@example.com"),
    ]


def test_the_backlog_ends_when_the_queue_drains_and_is_not_judged_while_paused(
    app, db, clock, mail
):
    db.pause_sending("paused by ops (admin)", clock())
    queue_one(db, clock)
    clock.advance(minutes=30)
    assert check(app) == alerts.AlertRun()  # the pause is the news, not its backlog
    db.resume_sending(clock())
    [nid] = check(app).mailed
    dispatch(app, clock)
    run = check(app)
    assert (run.opened, run.ended, run.mailed) == ([], ["backlog"], [])
    assert subjects(mail) == ["[Alert] Sending backlog", "[Notice] T"]
    assert db.get_notification(nid)["content"]["alert"]["ended_at"] is None


# --- expiry --------------------------------------------------------------------------------
def test_expired_deliveries_alert_once_per_notification_in_ops_language(
    app, db, clock, mail, admin
):
    app.extensions["settings"] = replace(ops_settings(app), ops_language="de")
    nid = queue_one(db, clock, hours=1)
    db.pause_sending("paused by ops (admin)", clock())
    clock.advance(hours=2)
    db.resume_sending(clock())
    assert dispatch(app, clock).expired == 1
    run = check(app)
    assert run.opened == [f"expired:{nid}"]
    assert check(app) == alerts.AlertRun()
    [alert] = alert_rows(db)
    assert (alert["kind"], alert["subject"], alert["message"]) == (
        "expired",
        f"notification:{nid}",
        f"1 deliveries of notification #{nid} (announcement) expired",
    )
    assert ops_mails(db) == [
        (run.mailed[0], "oncall@example.com", "de", "UTC", "pending", -1, None),
        (run.mailed[0], "ops@example.com", "de", "UTC", "pending", -1, None),
    ]
    dispatch(app, clock)
    [request] = mail.accepted_requests()
    assert as_received(request.body) == expected_mails(app, db, run.mailed[0], "de")
    assert request.body["subject"] == f"[Alarm] Zustellungen abgelaufen: Benachrichtigung #{nid}"
    # Ops mark it resolved: it stays ended, the same expiry is not alerted again.
    login(admin)  # hours passed: the session has timed out
    assert post(admin, "/admin/alerts/resolve", {"alert": "1"}).status_code == 303
    assert check(app) == alerts.AlertRun()
    assert [a["resolved_at"] for a in alert_rows(db)] == ["2026-11-26T14:00:00.000000Z"]
    assert audit_rows(db)[-1] == ("admin", "alert.resolve", "alert:1", {"kind": "expired"})


def test_expired_alert_mails_raise_no_alert_of_their_own(app, db, clock, mail):
    db.raise_alert(DROP_ALERT, "dropped", clock())
    [nid] = check(app).mailed
    db.acknowledge_alert(1, "admin", clock())  # no reminders in this test
    db.pause_sending("paused by ops (admin)", clock())
    clock.advance(hours=25)  # past the alert mail's 24 h
    db.resume_sending(clock())
    assert dispatch(app, clock).expired == 2
    run = check(app)
    assert (run.opened, run.mailed) == ([], [])
    assert ops_mails(db) == [
        (nid, "oncall@example.com", "en", "UTC", "failed", -1, None),
        (nid, "ops@example.com", "en", "UTC", "failed", -1, None),
    ]
    assert [r["reason"] for r in raw_rows(db, "SELECT reason FROM deliveries")] == ["expired"] * 2
    assert [a["episode_key"] for a in alert_rows(db)] == [DROP_ALERT]


# --- sending paused ------------------------------------------------------------------------
def test_a_refused_key_opens_the_pause_alert_whose_mail_goes_once_sending_resumes(
    app, db, clock, mail, admin
):
    queue_one(db, clock)
    mail.auth_mode = 401
    dispatch(app, clock)
    [nid] = check(app).mailed
    [alert] = alert_rows(db)
    assert (alert["kind"], alert["notification_id"]) == ("sending_paused", nid)
    assert dispatch(app, clock).halted.startswith("sending paused")
    assert (len(mail.requests), mail.accepted_requests()) == (1, [])
    page = admin.get("/admin/").text
    assert "SendGrid does not send mail with a refused key: the alert mail to ops goes out " in page
    mail.auth_mode = None
    assert post(admin, "/admin/sending/resume").status_code == 303
    assert alert_rows(db)[0]["resolved_at"] is not None
    assert check(app) == alerts.AlertRun()  # no recovery mail for the pause: ops resumed it
    dispatch(app, clock)
    assert subjects(mail) == ["[Alert] Sending paused", "[Notice] T"]
    assert as_received(mail.accepted_requests()[0].body) == expected_mails(app, db, nid)
    content = db.get_notification(nid)["content"]
    assert content["alert"]["message"].startswith("SendGrid refused the API key (HTTP 401)")


def test_without_ops_addresses_episodes_are_recorded_and_nothing_is_mailed(app, db, clock, mail):
    app.extensions["settings"] = replace(ops_settings(app), ops_alert_emails=())
    db.raise_alert(DROP_ALERT, "dropped", clock())
    poll(app, db, clock, times=5)
    run = check(app)
    assert (len(run.opened), run.mailed) == (1, [])
    assert [(a["episode_key"].split(":")[0], a["notification_id"]) for a in alert_rows(db)] == [
        (DROP_ALERT, None),
        ("feed_stale", None),
    ]
    assert ops_mails(db) == []


# --- dashboard -----------------------------------------------------------------------------
def test_dashboard_lists_open_and_recently_ended_alerts(app, db, clock, admin):
    db.raise_alert(DROP_ALERT, "SendGrid dropped 2 messages", clock())
    db.raise_alert("backlog", "the oldest due delivery has waited 12 min", clock())
    db.end_alert("backlog", clock() + timedelta(minutes=5))
    db.raise_alert("backlog", "old", clock() - timedelta(days=9))
    db._execute(
        "UPDATE alerts SET resolved_at = ? WHERE message = 'old'", [clock() - timedelta(days=8)]
    )
    db.raise_alert("feed_stale", "5 polls failed", clock(), key="feed_stale:9", subject="u")
    clock.advance(minutes=10)
    rows = alert_rows(db)
    page = admin.get("/admin/").text
    assert alert_rows(db) == rows  # looking changes nothing
    open_part = page[page.index('id="alerts-heading"') : page.index("data-recent-alerts")]
    assert 'data-alert="1" data-alert-kind="message_dropped"' in open_part
    assert (
        "Message dropped by SendGrid</strong> · since 2026-11-26 12:00:00 UTC · "
        "SendGrid dropped 2 messages" in open_part
    )
    assert 'action="/admin/alerts/1/acknowledge"' in open_part
    assert '<input type="hidden" name="alert" value="1">' in open_part
    assert 'data-alert="2"' not in open_part
    feed = open_part[open_part.index('data-alert="4"') :]
    assert 'Feed failing</strong> · <span class="break">u</span>' in feed
    assert 'action="/admin/alerts/4/acknowledge"' in feed
    assert 'name="alert" value="4"' not in feed  # it ends by itself: no "Mark as resolved"
    recent = page[page.index("data-recent-alerts") :]
    assert "Alerts ended in the last 7 days: 1" in recent
    assert (
        '<tr data-alert="2"><td>Sending backlog</td><td>2026-11-26 12:00:00 UTC</td>'
        "<td>2026-11-26 12:05:00 UTC</td><td>–</td></tr>"
    ) in recent
    assert 'data-alert="3"' not in page


def test_acknowledge_is_a_post_with_csrf_audited_once(app, db, clock, admin):
    db.raise_alert(DROP_ALERT, "dropped", clock())
    before = alert_rows(db)
    assert admin.get("/admin/alerts/1/acknowledge").status_code == 405
    assert admin.post("/admin/alerts/1/acknowledge").status_code == 400  # no CSRF token
    assert alert_rows(db) == before
    assert post(admin, "/admin/alerts/99/acknowledge").status_code == 404
    clock.advance(minutes=3)
    response = post(admin, "/admin/alerts/1/acknowledge", follow_redirects=True)
    assert "Alert acknowledged: no more reminders about it." in response.text
    assert "Acknowledged by admin, 2026-11-26 12:03:00 UTC" in response.text
    response = post(admin, "/admin/alerts/1/acknowledge", follow_redirects=True)
    assert "This alert was acknowledged already." in response.text
    assert alert_rows(db) == [
        {**before[0], "acknowledged_at": "2026-11-26T12:03:00.000000Z", "acknowledged_by": "admin"}
    ]
    assert [r for r in audit_rows(db) if r[1].startswith("alert.")] == [
        ("admin", "alert.acknowledge", "alert:1", {"kind": DROP_ALERT})
    ]


def test_alerts_that_end_by_themselves_cannot_be_resolved_by_hand(app, db, clock, admin):
    db.raise_alert("feed_stale", "5 polls failed", clock(), key="feed_stale:1", subject="x")
    response = post(admin, "/admin/alerts/resolve", {"alert": "1"}, follow_redirects=True)
    assert "This alert ends by itself once its cause is gone." in response.text
    assert alert_rows(db)[0]["resolved_at"] is None
    assert post(admin, "/admin/alerts/resolve", {"alert": "77"}).status_code == 404


# --- the mail itself: golden files in both languages ---------------------------------------
GOLDEN_CASES = {
    "feed_stale_start": ("start", "feed_stale", "https://status.example.com/history.atom",
                         "5 polls in a row failed; last error: HTTP 503", None),
    "feed_stale_end": ("end", "feed_stale", "https://status.example.com/history.atom",
                       "5 polls in a row failed; last error: HTTP 503",
                       "2026-11-26T12:40:00+00:00"),
    "sending_paused_start": ("start", "sending_paused", None,
                             "SendGrid refused the API key (HTTP 401): authorization required",
                             None),
    "message_dropped_reminder": ("reminder", "message_dropped", None,
                                 "SendGrid dropped 1 message: Invalid", None),
    "backlog_start": ("start", "backlog", None,
                      "the oldest due delivery has waited 10 min (due since 11:55 UTC)", None),
    "expired_start": ("start", "expired", "notification:42",
                      "3 deliveries of notification #42 (incident) expired", None),
}  # fmt: skip


def golden_content(case: str) -> dict:
    event, kind, subject, message, ended = GOLDEN_CASES[case]
    return {
        "kind": "ops_alert",
        "event": event,
        "alert": {
            "id": 7,
            "kind": kind,
            "subject": subject,
            "message": message,
            "started_at": "2026-11-26T12:05:00+00:00",
            "ended_at": ended,
        },
        "dashboard_url": f"{BASE}/admin/",
    }


@pytest.mark.parametrize("lang", ["de", "en"])
@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_alert_mail_matches_golden(case, lang):
    email = render_email(golden_content(case), lang, "UTC")
    for ext, actual in (("txt", f"Subject: {email.subject}\n\n{email.text}"), ("html", email.html)):
        path = GOLDEN / f"{case}.{lang}.{ext}"
        if UPDATE:
            GOLDEN.mkdir(exist_ok=True)
            path.write_text(actual, encoding="utf-8")
            continue
        assert path.exists(), f"{path.name} is missing; run with UPDATE_GOLDEN=1 and review it"
        assert actual == path.read_text(encoding="utf-8"), f"{path.name} differs"


def test_alert_content_is_the_documented_snapshot():
    settings = load_settings({"PUBLIC_BASE_URL": BASE})
    alert = {
        "id": 3,
        "kind": "backlog",
        "subject": None,
        "message": "waited",
        "created_at": datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
        "resolved_at": None,
    }
    assert alert_content(alert, "start", settings) == {
        "kind": "ops_alert",
        "event": "start",
        "alert": {
            "id": 3,
            "kind": "backlog",
            "subject": None,
            "message": "waited",
            "started_at": "2026-01-02T03:04:00+00:00",
            "ended_at": None,
        },
        "dashboard_url": f"{BASE}/admin/",
    }


# --- migration 0015 on SQLite: the notifications table is rebuilt, nothing is lost ----------
def test_migration_0015_keeps_notifications_deliveries_and_their_references(tmp_path):
    import sqlite3

    import sqlite_utils
    from sqlite_utils import Migrations

    from notifier.store import migrations
    from notifier.store.sqlite import connect

    path = tmp_path / "old.db"
    conn = connect(path, dict_rows=False)
    old = Migrations("notifier")
    names = [name for name, _ in migrations.SCHEMA]
    for name, migration in migrations.SCHEMA[: names.index("0015_alert_episodes")]:
        old(name=name)(migrations._applier(migrations.statements(migration, "sqlite")))
    conn.execute("BEGIN IMMEDIATE")
    old.apply(sqlite_utils.Database(conn))
    ts = "2026-11-26T12:00:00.000000Z"
    conn.execute(
        "INSERT INTO notifications (id, kind, content, created_at, expires_at, batch_key) "
        f"VALUES (1, 'announcement', '{{}}', '{ts}', '{ts}', 'b1')"
    )
    conn.execute(
        "INSERT INTO notifications (id, kind, content, created_at, expires_at, resend_of) "
        f"VALUES (2, 'announcement', '{{}}', '{ts}', '{ts}', 1)"
    )
    conn.execute(
        "INSERT INTO deliveries (notification_id, email, language, timezone, state, "
        f"next_attempt_at, created_at, updated_at) VALUES (1, 'a@example.com', 'en', 'UTC', "
        f"'sent', '{ts}', '{ts}', '{ts}')"
    )
    conn.execute(
        f"INSERT INTO alerts (kind, message, created_at) VALUES ('sending_paused', 'x', '{ts}')"
    )
    conn.execute(
        f"INSERT INTO alerts (kind, message, created_at) VALUES ('sending_paused', 'y', '{ts}')"
    )
    conn.execute("COMMIT")
    before = conn.execute("SELECT * FROM notifications ORDER BY id").fetchall()
    conn.close()

    conn = connect(path, dict_rows=False)
    conn.execute("PRAGMA foreign_keys = OFF")  # as SQLiteStore.upgrade (migration 0019)
    conn.execute("BEGIN IMMEDIATE")
    migrations.MIGRATIONS.apply(sqlite_utils.Database(conn))
    conn.execute("COMMIT")
    conn.execute("PRAGMA foreign_keys = ON")
    assert conn.execute("SELECT * FROM notifications ORDER BY id").fetchall() == before
    assert conn.execute("SELECT notification_id, email FROM deliveries").fetchall() == [
        (1, "a@example.com")
    ]
    assert conn.execute("SELECT kind, episode_key, resolved_at FROM alerts").fetchall() == [
        ("sending_paused", "sending_paused", None),
        ("sending_paused", "sending_paused", ts),
    ]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert conn.execute(
        "SELECT name FROM sqlite_master WHERE tbl_name = 'notifications' AND type = 'index' "
        "AND sql IS NOT NULL ORDER BY name"
    ).fetchall() == [
        ("notifications_batch",),
        ("notifications_incident",),
        ("notifications_review",),
    ]
    conn.close()
    conn = connect(path, dict_rows=False)  # a connection that never saw the old schema
    conn.execute(
        "INSERT INTO notifications (kind, content, created_at, expires_at) "
        f"VALUES ('ops_alert', '{{}}', '{ts}', '{ts}')"
    )
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        conn.execute(
            "INSERT INTO notifications (kind, content, created_at, expires_at) "
            f"VALUES ('nonsense', '{{}}', '{ts}', '{ts}')"
        )
    conn.execute("DELETE FROM notifications WHERE id = 1")  # still cascades to its deliveries
    assert conn.execute("SELECT COUNT(*) FROM deliveries").fetchone() == (0,)
    assert conn.execute("SELECT resend_of FROM notifications WHERE id = 2").fetchone() == (None,)
    conn.close()


def test_a_feed_urls_query_never_reaches_an_alert_or_its_mail(app, db, clock, mail, feed_url):
    """A private page's feed URL carries its access key in the query (metrics label feeds
    `feed-N` for that reason): the alert, the dashboard and the mail through SendGrid show the
    URL without it."""
    secret_url = feed_url + "?access_key=s3cret-key"
    app.extensions["settings"] = replace(ops_settings(app), feed_urls=(secret_url,))
    poll(app, db, clock, times=5)
    assert len(check(app).mailed) == 1
    dispatch(app, clock)
    stored = json.dumps(
        [alert_rows(db), [db.get_notification(n["id"]) for n in table(db, "notifications")]],
        default=str,
    )
    sent = json.dumps([r.body for r in mail.accepted_requests()])
    assert "s3cret" not in stored and "s3cret" not in sent
    assert f"[Alert] Feed failing: {feed_url}" in sent
