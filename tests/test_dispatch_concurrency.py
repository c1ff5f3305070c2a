"""Several SendGrid requests in flight per worker (issue 14, item 1), against the fake SendGrid:
how many are on the wire, and a 429, a refused key or a stop holding every sender at once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest

from notifier.delivery.dispatch import RecipientsError
from notifier.settings import SettingsError, load_settings

from . import test_dispatch
from .helpers import add_subscriber, table
from .test_dispatch import dispatcher

# test_dispatch's fixtures: settings that point at the fake SendGrid, a fanned-out incident.
sg_settings = test_dispatch.sg_settings
notification = test_dispatch.notification

HELD = "dispatch stopped before sending"


def _until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _subscribers(db, clock, languages: str) -> list[str]:
    """One subscriber per letter: d = German, e = English; ids (and claim order) follow."""
    emails = []
    for i, code in enumerate(languages):
        email = f"user{i:02d}@example.com"
        add_subscriber(db, email, now=clock(), language={"d": "de", "e": "en"}[code])
        emails.append(email)
    return emails


def _rows(db) -> list[tuple]:
    return [
        (r["email"], r["state"], r["attempts"], r["next_attempt_at"], r["reason"])
        for r in table(db, "deliveries")
    ]


class Run:
    """Dispatcher.run() on a thread, so the test can hold and release the fake's answers."""

    def __init__(self, d):
        self.dispatcher, self.stats, self.error = d, None, None
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self):
        try:
            self.stats = self.dispatcher.run()
        except BaseException as exc:  # handed to the test
            self.error = exc

    def join(self):
        self.thread.join(30)
        assert not self.thread.is_alive(), "the dispatch run did not end"
        if self.error:
            raise self.error
        return self.stats


def _probe_then_hold(sendgrid, start) -> tuple[threading.Event, Run]:
    """Start the run (`start()` returns it) behind a gate, let its first request (sent alone)
    through, and hold every later one at a new gate: (that gate, the run). The first gate is
    in place before the run starts; installed after, a run that got ahead on a loaded machine
    had its first request answered ungated, and the test waited for it in vain."""
    first = sendgrid.gate = threading.Event()
    run = start()
    _until(lambda: sendgrid.in_flight == 1, 20, "the first request")
    held = sendgrid.gate = threading.Event()
    first.set()
    return held, run


@pytest.mark.parametrize("concurrency", [1, 4])
def test_send_concurrency_requests_are_in_flight_at_once(
    db, sg_settings, clock, notification, sendgrid, concurrency
):
    emails = _subscribers(db, clock, "d" * 40)
    notification()
    sendgrid.latency_seconds = 0.3
    settings = replace(sg_settings, send_batch_size=4, send_concurrency=concurrency)

    held, run = _probe_then_hold(sendgrid, lambda: Run(dispatcher(db, settings, clock)))
    # Every sender's first request is held until all are on the wire: on a loaded machine a
    # sender can start later than the latency, and the others' requests would have landed.
    _until(lambda: sendgrid.arrived == 1 + concurrency, 20, "a request from every sender")
    held.set()
    stats = run.join()

    assert (stats.requests, stats.sent, stats.retried, stats.failed, stats.halted) == (
        10, 40, 0, 0, None
    )  # fmt: skip
    assert sendgrid.max_in_flight == concurrency
    assert sorted(r["email"] for r in sendgrid.accepted_recipients()) == emails
    assert {(state, attempts) for _, state, attempts, _, _ in _rows(db)} == {("sent", 1)}


def test_a_run_sends_its_first_request_alone_until_sendgrid_accepts_one(
    db, sg_settings, clock, notification, sendgrid
):
    _subscribers(db, clock, "d" * 12)
    notification()
    settings = replace(sg_settings, send_batch_size=4, send_concurrency=3)
    sendgrid.gate = threading.Event()

    run = Run(dispatcher(db, settings, clock))
    _until(lambda: sendgrid.in_flight == 1, 20, "the first request")
    time.sleep(0.3)
    assert sendgrid.in_flight == 1  # nothing else on the wire before the first answer
    sendgrid.gate.set()
    stats = run.join()

    assert (stats.requests, stats.sent) == (3, 12)


def test_a_429_holds_every_sender_and_hands_back_what_did_not_start_due_at_the_reset(
    db, sg_settings, clock, notification, sendgrid
):
    # Claims of 4: [d0-d3] alone (accepted), then [d4-d7] and [d8 | e9-e11] on the wire at
    # once (2 senders) while e9-e11 wait for a sender; both in flight get a 429.
    emails = _subscribers(db, clock, "ddddddddd" + "eeee")
    notification()
    sendgrid.rate_limit_reset_at = int(clock().timestamp()) + 40
    sendgrid.script("accept", "rate_limited", "rate_limited")
    settings = replace(sg_settings, send_batch_size=4, send_concurrency=2)

    held, run = _probe_then_hold(sendgrid, lambda: Run(dispatcher(db, settings, clock)))
    _until(lambda: sendgrid.arrived == 3, 20, "two requests in flight after the first")
    time.sleep(0.3)
    assert sendgrid.in_flight == 2  # the English batch waits for a free sender
    held.set()
    stats = run.join()

    assert (stats.requests, stats.sent, stats.retried, stats.halted) == (
        3, 4, 5, "rate limited for 40s"
    )  # fmt: skip
    assert [r.status for r in sendgrid.requests] == [202, 429, 429]
    now, reset = clock(), clock() + timedelta(seconds=40)
    assert _rows(db) == (
        [(e, "sent", 1, now, None) for e in emails[:4]]
        + [(e, "pending", 1, reset, "rate limited (429)") for e in emails[4:9]]
        + [(e, "pending", 0, reset, HELD) for e in emails[9:12]]  # never sent: no attempt
        + [(emails[12], "pending", 0, now, None)]  # never claimed
    )
    assert db.rate_limited_until() == reset
    assert {r["lease_owner"] for r in table(db, "deliveries")} == {None}
    assert dispatcher(db, settings, clock).run().requests == 0  # the window is still closed


def test_a_refused_key_on_one_sender_pauses_them_all(
    db, sg_settings, clock, notification, sendgrid
):
    emails = _subscribers(db, clock, "ddddddddd" + "eeee")
    notification()
    settings = replace(sg_settings, send_batch_size=4, send_concurrency=2)

    held, run = _probe_then_hold(sendgrid, lambda: Run(dispatcher(db, settings, clock)))
    _until(lambda: sendgrid.arrived == 3, 20, "two requests in flight after the first")
    sendgrid.auth_mode = 401  # the key is revoked while both are on the wire
    held.set()
    stats = run.join()

    assert (stats.requests, stats.sent, stats.halted) == (
        3, 4, "sending paused: API key refused"
    )  # fmt: skip
    assert [r.status for r in sendgrid.requests] == [202, 401, 401]
    assert db.sending_paused().startswith("SendGrid refused the API key (HTTP 401)")
    assert [a["kind"] for a in db.open_alerts()] == ["sending_paused"]
    now = clock()
    reason = db.sending_paused()
    assert (
        _rows(db)
        == (
            [(e, "sent", 1, now, None) for e in emails[:4]]
            + [(e, "pending", 0, now, reason) for e in emails[4:9]]  # refused: not an attempt
            + [(e, "pending", 0, now, HELD) for e in emails[9:12]]
            + [(emails[12], "pending", 0, now, None)]
        )
    )
    assert dispatcher(db, settings, clock).run().requests == 0  # paused


def test_a_stop_mid_fan_out_records_every_request_in_flight_and_starts_none(
    db, sg_settings, clock, notification, sendgrid
):
    emails = _subscribers(db, clock, "d" * 40)
    notification()
    settings = replace(sg_settings, send_batch_size=4, send_concurrency=3)

    d = dispatcher(db, settings, clock)
    held, run = _probe_then_hold(sendgrid, lambda: Run(d))
    _until(lambda: sendgrid.arrived == 4, 20, "three requests in flight after the first")
    d.stop.set()  # SIGTERM
    held.set()
    stats = run.join()

    # The first request and the three in flight are answered and recorded; nothing else went.
    assert (stats.requests, stats.sent) == (4, 16)
    assert len(sendgrid.requests) == 4
    sent = sorted(r["email"] for r in sendgrid.accepted_recipients())
    assert sent == emails[:16]
    assert Counter((state, attempts) for _, state, attempts, _, _ in _rows(db)) == {
        ("sent", 1): 16,
        ("pending", 0): 24,
    }
    assert {r["lease_owner"] for r in table(db, "deliveries")} == {None}


def test_an_unexpected_error_in_a_sender_lets_the_others_land_then_raises(
    db, sg_settings, clock, notification, sendgrid
):
    _subscribers(db, clock, "d" * 12)
    notification()
    settings = replace(sg_settings, send_batch_size=4, send_concurrency=2)
    sendgrid.latency_seconds = 0.5
    d = dispatcher(db, settings, clock)
    send = d.backend.send
    calls, counting = [], threading.Lock()

    def second_explodes(message, recipients, **options):
        # Two senders call at once: each takes its number under the lock, or both could
        # append before either reads len(calls) == 3 and neither would explode.
        with counting:
            calls.append(len(recipients))
            number = len(calls)
        if number == 2:
            # Fail only once the third request is on the wire (held by the fake's latency).
            _until(lambda: sendgrid.arrived == 2, 20, "the third request")
            raise RuntimeError("out of memory")
        return send(message, recipients, **options)

    d.backend.send = second_explodes
    with pytest.raises(RuntimeError, match="out of memory"):
        d.run()
    rows = table(db, "deliveries")
    assert Counter((r["state"], r["attempts"], r["possible_duplicate"]) for r in rows) == {
        ("sent", 1, 0): 8,  # the first and the one in flight beside the failure
        ("pending", 0, 0): 4,  # handed back unflagged
    }
    assert {r["lease_owner"] for r in rows} == {None}


def test_each_requests_links_are_signed_on_its_sender_while_the_run_claims_the_next(
    db, sg_settings, clock, notification, sendgrid
):
    """The 1000 links of a request are built on its sender thread, so the run's thread can
    claim the next request meanwhile (issue 14); a failure there is a sender's unexpected
    error, even a ValueError (which from backend.send means the message is invalid and fails
    its rows): its rows go back unflagged, the rest land, the run raises at the end."""
    _subscribers(db, clock, "d" * 12)
    notification()
    # One sender: the failing request is the only one in flight, so what follows is exact.
    settings = replace(sg_settings, send_batch_size=4, send_concurrency=1)
    d = dispatcher(db, settings, clock)
    recipient, threads, failing = d._recipient, Counter(), threading.Lock()

    def noted(row, *args):
        threads[threading.current_thread().name.rsplit("_", 1)[0]] += 1
        if row["email"] == "user05@example.com":  # in the second request
            with failing:
                raise UnicodeEncodeError("utf-8", "x", 0, 1, "link signing failed")
        return recipient(row, *args)

    d._recipient = noted
    with pytest.raises(RecipientsError, match="link signing failed"):
        d.run()
    assert threads == {"sendgrid": 4 + 2}  # the second request stopped at its second row
    rows = table(db, "deliveries")
    assert Counter((r["state"], r["attempts"], r["possible_duplicate"]) for r in rows) == {
        ("sent", 1, 0): 4,  # the first request
        ("pending", 0, 0): 8,  # the second handed back unflagged; the third never claimed
    }
    assert {r["lease_owner"] for r in rows} == {None}


def test_a_429_that_arrives_while_a_sender_builds_its_request_stops_that_request(
    db, sg_settings, clock, notification, sendgrid
):
    """Building a request's links takes milliseconds: the hold a 429 raises meanwhile on
    another sender still keeps this request off the wire (checked again after the build)."""
    emails = _subscribers(db, clock, "d" * 12)
    notification()
    sendgrid.rate_limit_reset_at = int(clock().timestamp()) + 40
    sendgrid.script("accept", "rate_limited")
    settings = replace(sg_settings, send_batch_size=4, send_concurrency=2)
    d = dispatcher(db, settings, clock)
    recipient, building = d._recipient, threading.Event()

    def after_the_429(row, *args):
        if row["email"] == emails[8]:  # the third request's first reader
            building.set()
            _until(d._hold.is_set, 20, "the second request's 429")
        return recipient(row, *args)

    d._recipient = after_the_429
    # The second request waits at the fake until the third is being built on the other sender.
    held, run = _probe_then_hold(sendgrid, lambda: Run(d))
    assert building.wait(20)
    held.set()
    stats = run.join()

    assert [r.status for r in sendgrid.requests] == [202, 429]
    assert (stats.requests, stats.sent, stats.halted) == (2, 4, "rate limited for 40s")
    now, reset = clock(), clock() + timedelta(seconds=40)
    assert _rows(db) == (
        [(e, "sent", 1, now, None) for e in emails[:4]]
        + [(e, "pending", 1, reset, "rate limited (429)") for e in emails[4:8]]
        + [(e, "pending", 0, reset, HELD) for e in emails[8:]]  # never sent: no attempt
    )
    assert {r["lease_owner"] for r in table(db, "deliveries")} == {None}


def test_send_concurrency_is_a_setting_from_1_to_32():
    assert load_settings({}).send_concurrency == 8
    assert load_settings({"SEND_CONCURRENCY": "1"}).send_concurrency == 1
    assert load_settings({"SEND_CONCURRENCY": "32"}).send_concurrency == 32
    for raw, message in [
        ("0", "SEND_CONCURRENCY must be at least 1, got 0"),
        ("33", "SEND_CONCURRENCY must be at most 32, got 33"),
        ("many", "SEND_CONCURRENCY must be a whole number, got 'many'"),
    ]:
        with pytest.raises(SettingsError) as refused:
            load_settings({"SEND_CONCURRENCY": raw})
        assert str(refused.value) == message
