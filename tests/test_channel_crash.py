"""Crash safety of channel dispatch (issue 12) with real processes: kill -9 while requests to
hanging Slack, Teams and webhook receivers are in flight, then restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notifier.settings import load_settings
from notifier.store import open_store

from . import fake_receivers
from .fake_receivers import Answer
from .helpers import table
from .test_dispatch import CONTENT

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
receivers = fake_receivers.receivers  # the fixture: real Slack, Teams and webhook receivers
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PER_HOST = 3


def process_env(tmp_path: Path, database_url: str) -> dict:
    return {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key-that-is-long-enough-for-tokens",
        "EMAIL_BACKEND": "outbox",
        "PUBLIC_BASE_URL": "https://status-notify.example.com",
        "APP_ENV": "test",
        "CHANNEL_ALLOW_PRIVATE_TARGETS": "1",
        "CHANNEL_TIMEOUT_SECONDS": "20",  # longer than the test waits: the hang is in flight
        "CHANNEL_CONCURRENCY": "4",
        "DISPATCH_LEASE_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    }


def seed(database_url: str, receivers) -> dict[str, int]:
    """PER_HOST verified subscriptions on each receiver and one incident notification:
    {target url: subscriber id}."""
    store = open_store(load_settings({"DATABASE_URL": database_url}))
    store.upgrade()
    now = datetime.now(UTC)
    targets = {}
    # Round robin over the hosts: the first claim (CHANNEL_CONCURRENCY rows, in id order)
    # holds every host's first row.
    for i in range(PER_HOST):
        for receiver in (receivers.slack, receivers.teams, receivers.webhook):
            url = receiver.url(f"/{receiver.kind}/{i}")
            row = store._query_one(
                "INSERT INTO subscribers (email, channel, target_url, webhook_secret, language, "
                "timezone, state, link_nonce, created_at, updated_at, confirmed_at, "
                "verified_at) VALUES (?, ?, ?, ?, 'en', 'UTC', 'confirmed', ?, ?, ?, ?, ?) "
                "RETURNING id",
                [f"owner-{receiver.kind}-{i}@example.com", receiver.kind, url,
                 SECRET if receiver.kind == "webhook" else None, f"n{i}", now, now, now, now],
            )  # fmt: skip
            targets[url] = row["id"]
            if receiver.kind == "webhook":
                receiver.secrets[f"/webhook/{i}"] = SECRET
    nid = store.create_notification("incident", CONTENT, now, now + timedelta(hours=2))
    store.fan_out(nid, now)
    store.close()
    return targets


def dispatch_once(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "dispatch-once"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_kill_9_mid_send_loses_nothing_and_flags_the_requests_in_flight(
    tmp_path, database_url, receivers
):
    targets = seed(database_url, receivers)
    hosts = (receivers.slack, receivers.teams, receivers.webhook)
    # Each host's first request hangs: three requests in flight (one per host: a host gets one
    # request alone until it accepted one), the other rows claimed and waiting.
    for receiver in hosts:
        receiver.answer(f"/{receiver.kind}/0", Answer(hang=True))
    env = process_env(tmp_path, database_url)

    proc = dispatch_once(env)
    try:
        for receiver in hosts:
            receiver.wait_for(1, f"/{receiver.kind}/0", timeout=15)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    time.sleep(1.2)  # the dead worker's lease (DISPATCH_LEASE_SECONDS=1) runs out
    proc = dispatch_once(env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "channels: " in out

    store = open_store(load_settings({"DATABASE_URL": database_url}))
    rows = {r["subscriber_id"]: r for r in table(store, "deliveries")}
    store.close()
    assert len(rows) == len(targets)
    assert {r["state"] for r in rows.values()} == {"sent"}  # none lost
    sent = Counter()
    for receiver in hosts:
        for request in receiver.received():
            sent[receiver.url(request["path"])] += 1
    assert set(sent) == set(targets)  # every target has the message
    in_flight = {receiver.url(f"/{receiver.kind}/0") for receiver in hosts}
    twice = {url for url, n in sent.items() if n > 1}
    assert in_flight <= twice  # the hanging requests were sent again after the kill
    flagged = {url for url, sub in targets.items() if rows[sub]["possible_duplicate"]}
    # The rows in flight are flagged (the target may have posted them). Besides them the dead
    # worker can only have claimed the next rows: the second generic webhook, waiting behind
    # the first on the same host, and the second Slack and Teams webhooks (targets of their
    # own, a hold is per webhook URL), which went at once, their answers maybe cut off by the
    # kill. Those it had claimed are flagged too (it cannot know); nothing else is, and
    # nothing went out twice unflagged.
    next_rows = {receiver.url(f"/{receiver.kind}/1") for receiver in hosts}
    assert in_flight <= flagged <= in_flight | next_rows
    assert twice <= flagged
    ids = {request["headers"]["webhook-id"] for request in receivers.webhook.received("/webhook/0")}
    assert ids == {f"msg_{rows[targets[receivers.webhook.url('/webhook/0')]]['id']}"}
    assert all(r["verified"] for r in receivers.webhook.received())
