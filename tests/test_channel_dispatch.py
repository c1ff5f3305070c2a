"""Channel dispatch (issue 12) against the fake Slack, Teams and webhook receivers: audience,
whole payloads, signatures, 429 holds per host, backoff, lost answers, pauses and their notice,
verification, resume and resend. In process, with the injectable clock, on both databases."""

from __future__ import annotations

import json
import random
import re
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from notifier.delivery import payloads
from notifier.delivery.channels import ChannelDispatcher
from notifier.delivery.dispatch import backoff
from notifier.delivery.senders import mask_target
from notifier.feed import parse_feed
from notifier.notifications import notify_changes
from notifier.poller import ingest
from notifier.shutdown import Shutdown
from notifier.store import open_store
from notifier.store.base import from_db_time, to_db_time
from notifier.tokens import MANAGE, read_token

from . import fake_receivers
from .conftest import Clock
from .fake_receivers import Answer
from .helpers import add_component, add_subscriber, atom, table
from .test_dispatch import CONTENT

FEED = "https://status.example.com/history.atom"
receivers = fake_receivers.receivers  # the fixture: real Slack, Teams and webhook receivers
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def clock() -> Clock:
    # Real time, to the second: the webhook receiver checks webhook-timestamp against its own
    # clock (Standard Webhooks: five minutes of tolerance).
    return Clock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def ch_settings(settings):
    return replace(
        settings,
        channel_allow_private_targets=True,
        channel_timeout_seconds=2.0,  # a loaded CI machine answers late, not never
        channel_concurrency=4,
    )


def add_channel(
    db,
    channel: str,
    url: str,
    *,
    now: datetime,
    owner: str | None = None,
    language: str = "en",
    timezone: str = "UTC",
    components=None,
    incidents: bool = True,
    verified: bool = True,
    paused: bool = False,
    secret: str | None = None,
) -> int:
    """A confirmed channel subscription, inserted directly (sign-up has its own tests)."""
    owner = owner or f"owner-{channel}-{abs(hash(url)) % 10**8}@example.com"
    row = db._query_one(
        "INSERT INTO subscribers (email, channel, target_url, webhook_secret, language, "
        "timezone, all_components, notify_incidents, notify_maintenance, state, link_nonce, "
        "created_at, updated_at, confirmed_at, verified_at, paused_at, paused_reason) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, 'confirmed', ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [owner, channel, url, secret, language, timezone, components is None, incidents,
         f"nonce{abs(hash(url)) % 10**8}", now, now, now, now if verified else None,
         now if paused else None, "test pause" if paused else None],
    )  # fmt: skip
    for component in components or []:
        db._execute(
            "INSERT INTO subscriber_components (subscriber_id, component_id) VALUES (?, ?)",
            [row["id"], component],
        )
    return row["id"]


def dispatcher(db, settings, clock, **kw) -> ChannelDispatcher:
    return ChannelDispatcher(db, settings, clock, rng=random.Random(1), owner="w1", **kw)


def feed_change(db, settings, clock, components=("sms",)) -> int:
    """A new incident in the feed (baseline first), detected and fanned out: its id."""
    feed_id = db.ensure_feed(FEED, clock())["id"]
    old = {"key": "old000000001", "title": "Old",
           "updates": [(clock() - timedelta(days=9), "Resolved", "Done.")]}  # fmt: skip
    ingest(db, feed_id, parse_feed(atom([old])), clock())
    posted = clock() - timedelta(minutes=2)
    new = {"key": "sms000000001", "title": "Delayed SMS delivery",
           "updates": [(posted, "Investigating", "Looking into it.")]}  # fmt: skip
    ingest(db, feed_id, parse_feed(atom([new, old])), clock())
    incident = db._scalar("SELECT id FROM incidents WHERE key = 'sms000000001'")
    db.set_incident_enrichment(incident, list(components), "major", clock())
    [nid] = notify_changes(db, settings, clock())
    return nid


def notification(db, clock, ttl_hours: int = 48) -> int:
    """An incident notification of no feed incident (never superseded), fanned out."""
    nid = db.create_notification(
        "incident", CONTENT, clock(), clock() + timedelta(hours=ttl_hours), audience={}
    )
    db.fan_out(nid, clock())
    return nid


def expected_payload(db, settings, nid: int, sub_id: int) -> dict:
    """The payload payloads.build makes for this reader (its language, zone and links), its
    management tokens checked and replaced (tokenless)."""
    sub = db.get_subscriber(sub_id)
    payload = payloads.build(
        sub["channel"],
        db.get_notification(nid),
        sub["language"],
        sub["timezone"],
        settings=settings,
    )
    return tokenless(payload, settings, sub)


def got(db, settings, request: dict, sub_id: int) -> dict:
    """A received request's JSON body, tokens checked and replaced as in expected_payload. A
    webhook body must validate against the published JSON Schema (docs/webhooks/)."""
    sub = db.get_subscriber(sub_id)
    if sub["channel"] == "webhook":
        from .test_channel_payloads import ROOT, Draft202012Validator, format_checker

        schema = json.loads((ROOT / payloads.WEBHOOK_SCHEMA).read_text(encoding="utf-8"))
        Draft202012Validator(schema, format_checker=format_checker()).validate(request["json"])
    return tokenless(request["json"], settings, sub)


_LINK = re.compile(r"(/(?:preferences|unsubscribe(?:/one-click)?)/)([A-Za-z0-9_.\-]+)")


def tokenless(value, settings, subscriber: dict):
    """`value` with every management token replaced by <token>, after checking that it names
    this subscriber: tokens carry the second they were made, the payload is otherwise exact."""
    if isinstance(value, dict):
        return {k: tokenless(v, settings, subscriber) for k, v in value.items()}
    if isinstance(value, list):
        return [tokenless(v, settings, subscriber) for v in value]
    if not isinstance(value, str) or settings.public_base_url not in value:
        return value

    def check(match: re.Match) -> str:
        data = read_token(settings.secret_key, MANAGE, match.group(2))
        assert (data.subscriber_id, data.nonce) == (subscriber["id"], subscriber["link_nonce"])
        return match.group(1) + "<token>"

    return _LINK.sub(check, value)


def delivery(db, nid: int, sub_id: int) -> dict:
    return db._query_one(
        "SELECT * FROM deliveries WHERE notification_id = ? AND subscriber_id = ?", [nid, sub_id]
    )


def brief(row: dict) -> dict:
    """A delivery row's outcome columns (times as datetimes on both backends)."""
    keys = ("channel", "state", "attempts", "possible_duplicate", "message_id")
    out = {k: row[k] for k in keys}
    out["next_attempt_at"] = from_db_time(row["next_attempt_at"])
    return out


def health(db, sub_id: int) -> dict:
    row = db.get_subscriber(sub_id)
    return {
        "verified_at": from_db_time(row["verified_at"]),
        "paused_at": from_db_time(row["paused_at"]),
        "paused_reason": row["paused_reason"],
        "failure_count": row["failure_count"],
        "failing_since": from_db_time(row["failing_since"]),
    }


def notices(db) -> list[dict]:
    return [
        {"content": n["content"], "batch_key": n["batch_key"], "deliveries": [
            {k: d[k] for k in ("subscriber_id", "email", "channel", "state", "priority")}
            for d in table(db, "deliveries") if d["notification_id"] == n["id"]]}
        for n in (db.get_notification(r["id"]) for r in table(db, "notifications"))
        if n["kind"] == "channel_notice"
    ]  # fmt: skip


# --- audience and payloads -------------------------------------------------------------------
def test_a_feed_change_reaches_exactly_the_matching_ready_channels_once(
    db, ch_settings, clock, receivers
):
    feed_id = db.ensure_feed(FEED, clock())["id"]
    add_component(db, feed_id, "sms", "SMS (EU)", clock())
    add_component(db, feed_id, "voice", "Voice", clock())
    now = clock()
    slack = add_channel(db, "slack", receivers.slack.url("/services/T1/B1/x"), now=now)
    teams = add_channel(
        db, "teams", receivers.teams.url("/workflows/de"), now=now, language="de",
        timezone="Europe/Berlin", components=["sms"],
    )  # fmt: skip
    hook = add_channel(
        db, "webhook", receivers.webhook.url("/hook"), now=now, timezone="America/New_York",
        secret=SECRET,
    )  # fmt: skip
    receivers.webhook.secrets["/hook"] = SECRET
    # Not in the audience: another component, incidents off, not verified yet, paused.
    add_channel(db, "slack", receivers.slack.url("/voice"), now=now, components=["voice"])
    add_channel(db, "webhook", receivers.webhook.url("/maint"), now=now, incidents=False)
    add_channel(db, "teams", receivers.teams.url("/unverified"), now=now, verified=False)
    add_channel(db, "slack", receivers.slack.url("/paused"), now=now, paused=True)
    mail = add_subscriber(db, "anna@example.com", now=now)

    nid = feed_change(db, ch_settings, clock)
    stats = dispatcher(db, ch_settings, clock).run()
    again = dispatcher(db, ch_settings, clock).run()

    assert (stats.requests, stats.sent, stats.failed, again.requests) == (3, 3, 0, 0)
    assert [(r["path"], got(db, ch_settings, r, slack)) for r in receivers.slack.received()] == [
        ("/services/T1/B1/x", expected_payload(db, ch_settings, nid, slack))
    ]
    assert [(r["path"], got(db, ch_settings, r, teams)) for r in receivers.teams.received()] == [
        ("/workflows/de", expected_payload(db, ch_settings, nid, teams))
    ]
    [signed] = receivers.webhook.received()
    row = delivery(db, nid, hook)
    assert (signed["path"], got(db, ch_settings, signed, hook), signed["verified"]) == (
        "/hook",
        expected_payload(db, ch_settings, nid, hook),
        True,
    )
    assert signed["headers"]["webhook-id"] == f"msg_{row['id']}"
    for sub in (slack, teams, hook):
        assert brief(delivery(db, nid, sub)) == {
            "channel": db.get_subscriber(sub)["channel"], "state": "sent", "attempts": 1,
            "possible_duplicate": 0, "message_id": f"msg_{delivery(db, nid, sub)['id']}",
            "next_attempt_at": now,
        }  # fmt: skip
    # The mail subscriber's row is the mail Dispatcher's, untouched here.
    assert brief(delivery(db, nid, mail))["state"] == "pending"
    assert len(table(db, "deliveries")) == 4


def test_a_wrong_secret_is_refused_by_the_receiver_and_the_row_fails(
    db, ch_settings, clock, receivers
):
    hook = add_channel(db, "webhook", receivers.webhook.url("/hook"), now=clock(), secret=SECRET)
    receivers.webhook.secrets["/hook"] = "whsec_" + "A" * 32  # the receiver's secret differs
    nid = notification(db, clock)

    dispatcher(db, ch_settings, clock).run()

    [request] = receivers.webhook.received()
    assert request["verified"] is False
    assert brief(delivery(db, nid, hook))["state"] == "failed"  # a 401 is a permanent answer
    assert health(db, hook)["failure_count"] == 1


# --- faults ------------------------------------------------------------------------------
def test_429_holds_that_target_until_retry_after_while_others_go_on(
    db, ch_settings, clock, receivers
):
    """A Slack (or Teams) webhook's rate limit is its own: one hooks.slack.com serves every
    workspace, so a 429 holds that webhook URL only. A generic webhook's limit is its host's:
    a 429 holds every row for that host. Neither counts as an attempt or a failing target."""
    now = clock()
    first = add_channel(db, "slack", receivers.slack.url("/a"), now=now)
    second = add_channel(db, "slack", receivers.slack.url("/b"), now=now)
    hooks = [
        add_channel(db, "webhook", receivers.webhook.url(p), now=now, secret=SECRET)
        for p in ("/w1", "/w2")
    ]
    for path in ("/w1", "/w2"):
        receivers.webhook.secrets[path] = SECRET
        receivers.webhook.answer(path, Answer(429, {"Retry-After": "120"}))
    receivers.slack.answer("/a", Answer(429, {"Retry-After": "120"}, b"rate_limited"))
    nid = notification(db, clock)

    stats = dispatcher(db, ch_settings, clock).run()

    assert sorted(r["path"] for r in receivers.slack.received()) == ["/a", "/b"]
    # The first request to a webhook host goes alone: its 429 holds the other row unsent.
    assert len(receivers.webhook.received()) == 1
    later = now + timedelta(seconds=120)
    held = {"channel": "slack", "state": "pending", "attempts": 0, "possible_duplicate": 0,
            "message_id": None, "next_attempt_at": later}  # fmt: skip
    assert brief(delivery(db, nid, first)) == held
    assert brief(delivery(db, nid, second))["state"] == "sent"
    assert [brief(delivery(db, nid, h)) for h in hooks] == [{**held, "channel": "webhook"}] * 2
    assert (stats.requests, stats.sent, stats.retried) == (3, 1, 2)
    assert health(db, first)["failing_since"] is None  # a rate limit is not a failing target

    receivers.webhook.answers.clear()
    clock.advance(seconds=119)
    assert dispatcher(db, ch_settings, clock).run().requests == 0
    clock.advance(seconds=1)
    assert dispatcher(db, ch_settings, clock).run().sent == 3
    assert sorted(r["path"] for r in receivers.slack.received()) == ["/a", "/a", "/b"]
    assert sorted(r["path"] for r in receivers.webhook.received()[1:]) == ["/w1", "/w2"]


def test_5xx_is_retried_with_backoff_then_sent(db, ch_settings, clock, receivers):
    hook = add_channel(db, "webhook", receivers.webhook.url("/w"), now=clock(), secret=SECRET)
    receivers.webhook.answer("/w", Answer(503))
    nid = notification(db, clock)
    start = clock()

    dispatcher(db, ch_settings, clock).run()

    delay = backoff(0, random.Random(1))
    assert brief(delivery(db, nid, hook)) == {
        "channel": "webhook", "state": "pending", "attempts": 1, "possible_duplicate": 0,
        "message_id": None, "next_attempt_at": start + delay,
    }  # fmt: skip
    assert health(db, hook)["failing_since"] == start
    clock.advance(seconds=delay.total_seconds() + 1)
    assert dispatcher(db, ch_settings, clock).run().sent == 1
    row = delivery(db, nid, hook)
    assert brief(row)["state"] == "sent" and row["attempts"] == 2
    assert [a["outcome"] for a in db.delivery_attempts([row["id"]])[row["id"]]] == [
        "transient", "accepted",
    ]  # fmt: skip
    assert health(db, hook)["failing_since"] is None  # a success ends the streak


def test_a_lost_answer_is_sent_again_flagged_as_a_possible_duplicate(
    db, ch_settings, clock, receivers
):
    settings = replace(ch_settings, channel_timeout_seconds=0.5)
    hook = add_channel(db, "webhook", receivers.webhook.url("/w"), now=clock(), secret=SECRET)
    receivers.webhook.secrets["/w"] = SECRET
    receivers.webhook.answer("/w", Answer(204, delay_seconds=3))
    nid = notification(db, clock)

    dispatcher(db, settings, clock).run()
    assert brief(delivery(db, nid, hook))["possible_duplicate"] == 1
    assert brief(delivery(db, nid, hook))["state"] == "pending"
    # Past the first backoff (at most 7.5 s), within the receiver's 5-minute Standard
    # Webhooks tolerance: the retry is signed with the (injected) time it is sent at.
    clock.advance(seconds=30)
    dispatcher(db, settings, clock).run()

    row = delivery(db, nid, hook)
    first, second = receivers.webhook.wait_for(2, "/w")
    assert (row["state"], row["possible_duplicate"], row["attempts"]) == ("sent", 1, 2)
    # The same webhook-id both times: the receiver can drop the copy (Standard Webhooks).
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"] == f"msg_{row['id']}"
    assert got(db, settings, first, hook) == got(db, settings, second, hook)
    assert got(db, settings, first, hook) == expected_payload(db, settings, nid, hook)
    assert (first["verified"], second["verified"]) == (True, True)


# --- pause -------------------------------------------------------------------------------
def test_410_fails_the_row_and_pauses_after_n_with_one_notice_to_the_owner(
    db, ch_settings, clock, receivers
):
    settings = replace(ch_settings, channel_pause_after_failures=3)
    url = receivers.slack.url("/services/T1/B1/gone")
    sub = add_channel(db, "slack", url, now=clock(), owner="ops@example.com")
    receivers.slack.answer("/services/T1/B1/gone", *[Answer(410, body=b"no_service")] * 5)
    nids = []
    for _ in range(3):
        nids.append(notification(db, clock))
        dispatcher(db, settings, clock).run()
        clock.advance(minutes=1)
    paused_at = clock() - timedelta(minutes=1)

    assert [brief(delivery(db, n, sub))["state"] for n in nids] == ["failed"] * 3
    state = health(db, sub)
    assert state["paused_at"] == paused_at and state["failure_count"] == 3
    assert state["paused_reason"].startswith("3 permanent failures in a row: gone")
    stamp = to_db_time(paused_at)
    assert notices(db) == [{
        "content": {"kind": "channel_notice", "channel": "slack", "target": mask_target(url),
                    "reason": state["paused_reason"], "event": "paused", "paused_at": stamp},
        "batch_key": f"channel_notice:{sub}:{stamp}",
        "deliveries": [{"subscriber_id": sub, "email": "ops@example.com", "channel": "email",
                        "state": "pending", "priority": 1}],
    }]  # fmt: skip
    # Paused: the next change reaches it no more, nothing further is sent there.
    later = notification(db, clock)
    assert dispatcher(db, settings, clock).run().requests == 0
    assert delivery(db, later, sub) is None
    assert len(receivers.slack.received()) == 3


def test_two_dispatchers_racing_to_pause_queue_one_notice(db, ch_settings, clock, receivers):
    settings = replace(ch_settings, channel_pause_after_failures=1, channel_concurrency=1)
    url = receivers.webhook.url("/gone")
    sub = add_channel(db, "webhook", url, now=clock(), secret=SECRET)
    receivers.webhook.answer("/gone", *[Answer(404)] * 4)
    for _ in range(2):
        notification(db, clock)
    other = open_store(settings)
    start = threading.Barrier(2)
    errors = []

    def run(store, owner):
        try:
            start.wait()
            ChannelDispatcher(store, settings, clock, owner=owner, rng=random.Random(1)).run(
                max_claims=1
            )
        except Exception as exc:  # pragma: no cover - shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s, o)) for s, o in ((db, "w1"), (other, "w2"))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        other.close()
    assert errors == []
    assert health(db, sub)["paused_at"] == clock()
    assert len(notices(db)) == 1
    assert db.pause_channel(sub, "again", clock()) is False  # already paused: no second notice
    assert len(notices(db)) == 1


def test_a_success_resets_the_streak(db, ch_settings, clock, receivers):
    settings = replace(ch_settings, channel_pause_after_failures=3)
    sub = add_channel(db, "teams", receivers.teams.url("/t"), now=clock())
    receivers.teams.answer("/t", Answer(404), Answer(404), Answer(202), Answer(404), Answer(404))
    for _ in range(5):
        notification(db, clock)
        dispatcher(db, settings, clock).run()
        clock.advance(minutes=1)

    state = health(db, sub)
    assert (state["paused_at"], state["failure_count"]) == (None, 2)
    assert notices(db) == []


def test_a_day_of_transient_failures_pauses(db, ch_settings, clock, receivers):
    sub = add_channel(db, "webhook", receivers.webhook.url("/down"), now=clock(), secret=SECRET)
    receivers.webhook.answer("/down", *[Answer(502)] * 3)
    nid = notification(db, clock, ttl_hours=48)
    start = clock()

    dispatcher(db, ch_settings, clock).run()
    clock.advance(hours=23)
    dispatcher(db, ch_settings, clock).run()
    assert health(db, sub)["paused_at"] is None
    clock.advance(hours=1)
    dispatcher(db, ch_settings, clock).run()

    state = health(db, sub)
    assert (state["paused_at"], state["failing_since"]) == (clock(), start)
    assert state["paused_reason"].startswith("failing for 24 hours: ")
    row = delivery(db, nid, sub)
    assert (row["state"], row["reason"], row["attempts"]) == ("cancelled", "channel paused", 3)
    [notice] = notices(db)
    assert notice["content"]["event"] == "paused"


# --- verification, resume, resend ----------------------------------------------------------
def test_an_accepted_verification_makes_the_channel_ready(db, ch_settings, clock, receivers):
    sub = add_channel(
        db, "webhook", receivers.webhook.url("/v"), now=clock(), secret=SECRET, verified=False
    )
    receivers.webhook.secrets["/v"] = SECRET
    nid, _ = db.create_personal_notification(
        "channel_verification", sub, {"kind": "channel_verification"}, clock(),
        clock() + timedelta(hours=72),
    )  # fmt: skip

    assert dispatcher(db, ch_settings, clock).run().sent == 1

    [ping] = receivers.webhook.received("/v")
    assert got(db, ch_settings, ping, sub) == expected_payload(db, ch_settings, nid, sub)
    assert ping["verified"] is True
    assert health(db, sub)["verified_at"] == clock()
    assert notification(db, clock) and len(receivers.webhook.received("/v")) == 1
    assert dispatcher(db, ch_settings, clock).run().sent == 1  # now in the audience


def test_a_webhook_ping_refused_for_its_signature_is_retried_until_the_receiver_has_the_secret(
    db, ch_settings, clock, receivers
):
    """The owner sees the signing secret on the confirmation page, and the ping goes out at
    once: the receiver refuses it (401) until the secret is configured. A refused ping is
    retried with backoff; the channel is verified when one is accepted, and nobody is told
    the channel failed."""
    sub = add_channel(
        db, "webhook", receivers.webhook.url("/new"), now=clock(), secret=SECRET, verified=False
    )
    receivers.webhook.secrets["/new"] = "whsec_" + "A" * 43 + "="  # not configured yet
    db.create_personal_notification(
        "channel_verification", sub, {"kind": "channel_verification"}, clock(),
        clock() + timedelta(hours=24),
    )  # fmt: skip

    dispatcher(db, ch_settings, clock).run()
    [first] = receivers.webhook.received("/new")
    assert first["verified"] is False
    assert health(db, sub) == {
        "verified_at": None, "paused_at": None, "paused_reason": None, "failure_count": 0,
        "failing_since": None,
    }  # fmt: skip
    assert notices(db) == []

    receivers.webhook.secrets["/new"] = SECRET  # the owner configured the receiver
    clock.advance(seconds=30)
    assert dispatcher(db, ch_settings, clock).run().sent == 1
    assert [r["verified"] for r in receivers.webhook.received("/new")] == [False, True]
    assert health(db, sub)["verified_at"] == clock()


def test_a_refused_verification_pauses_with_one_notice(db, ch_settings, clock, receivers):
    url = receivers.teams.url("/nope")
    sub = add_channel(db, "teams", url, now=clock(), verified=False, owner="it@example.com")
    receivers.teams.answer("/nope", Answer(404))
    db.create_personal_notification(
        "channel_verification", sub, {"kind": "channel_verification"}, clock(),
        clock() + timedelta(hours=72),
    )  # fmt: skip

    dispatcher(db, ch_settings, clock).run()

    state = health(db, sub)
    assert (state["verified_at"], state["paused_at"]) == (None, clock())
    [notice] = notices(db)
    assert notice["content"]["event"] == "verification_failed"
    assert notice["deliveries"][0]["email"] == "it@example.com"


def test_resume_clears_the_pause_and_verifies_again(db, ch_settings, clock, receivers):
    url = receivers.slack.url("/back")
    sub = add_channel(db, "slack", url, now=clock(), paused=True)
    clock.advance(hours=1)

    delivery_id = db.resume_channel(sub, clock())

    assert health(db, sub) == {
        "verified_at": None, "paused_at": None, "paused_reason": None, "failure_count": 0,
        "failing_since": None,
    }  # fmt: skip
    row = db._query_one("SELECT * FROM deliveries WHERE id = ?", [delivery_id])
    assert (row["channel"], row["state"], row["priority"]) == ("slack", "pending", 1)
    assert db.resume_channel(sub, clock()) is None  # not paused any more
    assert dispatcher(db, ch_settings, clock).run().sent == 1
    assert health(db, sub)["verified_at"] == clock()
    assert len(receivers.slack.received("/back")) == 1


def test_a_failed_channel_row_can_be_resent_from_the_ledger(db, ch_settings, clock, receivers):
    sub = add_channel(db, "teams", receivers.teams.url("/again"), now=clock())
    receivers.teams.answer("/again", Answer(400))
    nid = notification(db, clock)
    dispatcher(db, ch_settings, clock).run()
    failed = delivery(db, nid, sub)
    assert failed["state"] == "failed"

    new_nid, count = db.resend(nid, "one", clock(), clock() + timedelta(hours=24), failed["id"])
    assert count == 1
    assert dispatcher(db, ch_settings, clock).run().sent == 1

    resent = delivery(db, new_nid, sub)
    assert (resent["channel"], resent["state"]) == ("teams", "sent")
    [_, second] = receivers.teams.received("/again")
    assert got(db, ch_settings, second, sub) == expected_payload(db, ch_settings, new_nid, sub)


# --- never stale, never unwanted, stop ---------------------------------------------------------
def test_rows_of_an_expired_notification_are_never_sent(db, ch_settings, clock, receivers):
    sub = add_channel(db, "slack", receivers.slack.url("/late"), now=clock())
    nid = notification(db, clock, ttl_hours=1)
    clock.advance(hours=1)

    stats = dispatcher(db, ch_settings, clock).run()

    row = delivery(db, nid, sub)
    assert (stats.expired, stats.requests) == (1, 0)
    assert (row["state"], row["reason"], row["attempts"]) == ("failed", "expired", 0)
    assert receivers.slack.received() == []


def test_a_subscription_ended_after_the_claim_gets_nothing(db, ch_settings, clock, receivers):
    gone = add_channel(db, "teams", receivers.teams.url("/left"), now=clock())
    stays = add_channel(db, "teams", receivers.teams.url("/stays"), now=clock())
    nid = notification(db, clock)
    run = dispatcher(db, ch_settings, clock)
    claim = db.claim_channel_due

    def claim_then_unsubscribe(*args):
        rows = claim(*args)
        db._execute("UPDATE subscribers SET state = 'unsubscribed' WHERE id = ?", [gone])
        return rows

    db.claim_channel_due = claim_then_unsubscribe
    run.run()

    assert (delivery(db, nid, gone)["state"], delivery(db, nid, gone)["reason"]) == (
        "cancelled", "subscriber no longer eligible"
    )  # fmt: skip
    assert delivery(db, nid, stays)["state"] == "sent"
    assert [r["path"] for r in receivers.teams.received()] == ["/stays"]


def test_a_stop_lets_the_request_in_flight_land_and_hands_the_rest_back(
    db, ch_settings, clock, receivers
):
    first = add_channel(db, "webhook", receivers.webhook.url("/slow"), now=clock(), secret=SECRET)
    second = add_channel(db, "webhook", receivers.webhook.url("/next"), now=clock(), secret=SECRET)
    released = threading.Event()
    receivers.webhook.answer("/slow", Answer(204, release=released))
    nid = notification(db, clock)
    stop = Shutdown()

    def stop_while_on_the_wire():
        # The answer waits for the stop: a fixed delay lost the race when this thread was
        # scheduled late, and the row behind it went out before the stop.
        receivers.webhook.wait_for(1, "/slow")
        stop.set()
        released.set()

    threading.Thread(target=stop_while_on_the_wire, daemon=True).start()

    stats = dispatcher(db, ch_settings, clock, stop=stop).run()

    # The request on the wire was answered and recorded; the row waiting behind it (the host
    # had accepted nothing yet in this run) goes back unflagged, due now.
    assert (stats.requests, stats.sent) == (1, 1)
    assert brief(delivery(db, nid, first))["state"] == "sent"
    assert brief(delivery(db, nid, second)) == {
        "channel": "webhook", "state": "pending", "attempts": 0, "possible_duplicate": 0,
        "message_id": None, "next_attempt_at": clock(),
    }  # fmt: skip
    assert [r["path"] for r in receivers.webhook.received()] == ["/slow"]


def test_a_bounce_of_an_owner_mail_suppresses_the_address_not_the_channel(db, clock):
    """SendGrid's bounce of a mail to a channel's owner (a confirmation, a receipt, a notice)
    names the channel's subscriber: the address is bad, the Slack target is not. The channel
    keeps its messages; the owner's queued mails and the owner's email subscription stop."""
    owner = "it@example.com"
    mail_sub = add_subscriber(db, owner, now=clock())
    sub = add_channel(db, "slack", "https://hooks.slack.com/services/T/B/x", now=clock(),
                      owner=owner)  # fmt: skip
    nid = notification(db, clock)  # a broadcast: one row for each
    _, notice = db.create_personal_notification(
        "receipt", sub, {"kind": "receipt"}, clock(), clock() + timedelta(hours=24)
    )

    assert db.suppress_subscriber(sub, "bounce: mailbox unavailable", clock()) == 2

    states = {
        (r["subscriber_id"], r["channel"], r["state"])
        for r in db._query("SELECT subscriber_id, channel, state FROM deliveries")
    }
    assert states == {
        (mail_sub, "email", "suppressed"),  # the broadcast mail to the bad address
        (sub, "slack", "pending"),  # the channel's message still goes
        (sub, "email", "suppressed"),  # the owner's receipt does not
    }
    assert db.get_subscriber(sub)["state"] == "confirmed"
    assert db.get_subscriber(mail_sub)["state"] == "suppressed"
    assert delivery(db, nid, sub)["state"] == "pending" and notice
