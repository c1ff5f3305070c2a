"""The 202s' recorder (notifier/delivery/dispatch.py, issue 14): a worker records SendGrid's
202s on a thread of its own while the run's thread builds the next request, still counts a
request against SEND_CONCURRENCY until its answer is recorded, closes the recorder's
connection at the end of every run, and loses nothing when recording fails."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from dataclasses import replace

import pytest

from notifier.store import StoreError

from . import test_dispatch
from .helpers import table
from .test_dispatch import dispatcher
from .test_dispatch_concurrency import _subscribers

sg_settings = test_dispatch.sg_settings
notification = test_dispatch.notification


def _slow_mark_sent(db, seconds: float, log: list):
    """Wrap db.mark_sent (the recorder's "sent" UPDATE): note when each starts and ends."""
    original = db.mark_sent

    def slow(ids, *args, **kwargs):
        log.append(("start", time.monotonic(), threading.current_thread().name))
        time.sleep(seconds)
        try:
            return original(ids, *args, **kwargs)
        finally:
            log.append(("end", time.monotonic(), threading.current_thread().name))

    db.mark_sent = slow
    return original


def test_a_202_is_recorded_off_the_runs_thread_while_the_next_request_goes_out(
    db, sg_settings, clock, notification, sendgrid
):
    _subscribers(db, clock, "d" * 12)
    notification()
    settings = replace(sg_settings, send_batch_size=4, send_concurrency=3)
    log: list = []
    _slow_mark_sent(db, 0.5, log)
    arrivals: list[float] = []
    sent = []

    d = dispatcher(db, settings, clock)
    send = d.backend.send

    def noting(message, recipients, **options):
        arrivals.append(time.monotonic())
        sent.append(len(recipients))
        return send(message, recipients, **options)

    d.backend.send = noting
    stats = d.run()

    assert (stats.requests, stats.sent) == (3, 12)
    assert sent == [4, 4, 4]
    ends = [t for kind, t, _ in log if kind == "end"]
    # The first 202 was still being recorded when the second request was handed to a sender:
    # the run's thread did not wait for the database write.
    assert arrivals[1] < ends[0]
    assert {name for _, _, name in log} == {"dispatch-record_0"}
    assert Counter(r["state"] for r in table(db, "deliveries")) == {"sent": 12}
    assert {r["lease_owner"] for r in table(db, "deliveries")} == {None}


def test_a_request_counts_against_send_concurrency_until_its_202_is_recorded(
    db, sg_settings, clock, notification, sendgrid
):
    # A slow recorder must not let the run claim more: at every claim at most
    # SEND_CONCURRENCY - 1 requests' rows are claimed and not yet recorded (leased, 'sending'),
    # so a kill -9 still strands at most SEND_CONCURRENCY requests' rows.
    _subscribers(db, clock, "d" * 40)
    notification()
    concurrency, batch = 2, 4
    settings = replace(sg_settings, send_batch_size=batch, send_concurrency=concurrency)
    _slow_mark_sent(db, 0.3, [])
    leased_at_claim = []
    claim_due = db.claim_due

    def counting(*args, **kwargs):
        leased_at_claim.append(sum(r["state"] == "sending" for r in table(db, "deliveries")))
        return claim_due(*args, **kwargs)

    db.claim_due = counting
    stats = dispatcher(db, settings, clock).run()

    assert (stats.requests, stats.sent) == (10, 40)
    assert max(leased_at_claim) == (concurrency - 1) * batch


def test_on_sqlite_a_claim_in_progress_goes_before_the_recorders_next_transaction(
    db, sg_settings, clock, notification, sendgrid
):
    """SQLite has one writer: a 202 that reaches the recorder while the run's thread claims
    waits for the claim, instead of taking the writer lock first and holding up the next
    request's claim (Python's locks are not fair, so a busy recorder could win it transaction
    after transaction). PostgreSQL has no such lock: there the recorder does not wait.

    The run's first 202 goes to the recorder right after the second claim; the recorder
    holds it until the third claim has begun, and the third claim waits until the recording
    arrived and then (up to 0.3 s on SQLite, where it must not come) for its transaction."""
    _subscribers(db, clock, "d" * 12)
    notification()
    settings = replace(sg_settings, send_batch_size=4, send_concurrency=3)
    log: list[str] = []
    third_claim, arrived, began = threading.Event(), threading.Event(), threading.Event()
    claim_due, record = db.claim_due, db.record_request_attempt

    def noted_claim(*args, **kwargs):
        log.append("claim")
        if log.count("claim") == 3:
            third_claim.set()
            assert arrived.wait(20)
            began.wait(0.3 if db.backend == "sqlite" else 20)
        try:
            return claim_due(*args, **kwargs)
        finally:
            log.append("claimed")

    def noted_record(*args, **kwargs):  # the recording transaction's first statement
        log.append("transaction")
        began.set()
        return record(*args, **kwargs)

    db.claim_due, db.record_request_attempt = noted_claim, noted_record
    d = dispatcher(db, settings, clock)
    on_recorder = d._record_on_recorder

    def arriving(*args):
        if not arrived.is_set():  # the run's first 202
            assert third_claim.wait(20)
            log.append("arrived")
            arrived.set()
        return on_recorder(*args)

    d._record_on_recorder = arriving
    stats = d.run()

    assert (stats.requests, stats.sent) == (3, 12)
    third = [i for i, entry in enumerate(log) if entry == "claim"][2]
    first = log.index("transaction")
    if db.backend == "sqlite":  # the recording began once the claim was done
        assert log[third : first + 1] == ["claim", "arrived", "claimed", "transaction"], log
    else:  # it began at once, during the claim
        assert log[third : first + 2] == ["claim", "arrived", "transaction", "claimed"], log
    assert Counter(r["state"] for r in table(db, "deliveries")) == {"sent": 12}


def test_every_run_closes_the_recorders_connection(db, sg_settings, clock, notification, sendgrid):
    _subscribers(db, clock, "d" * 8)
    settings = replace(sg_settings, send_batch_size=4, send_concurrency=2)
    db.ping()  # the test's own connection
    before = len(db._all)
    for _ in range(3):
        notification()
        stats = dispatcher(db, settings, clock).run()
        assert (stats.requests, stats.sent) == (2, 8)
        assert len(db._all) == before  # the recorder's connection is gone with its thread
    assert Counter(r["state"] for r in table(db, "deliveries")) == {"sent": 24}


def test_a_recording_that_fails_raises_at_the_end_and_leaves_its_rows_leased(
    db, sg_settings, clock, notification, sendgrid
):
    # SendGrid took the request, so its rows must never go back as unsent: they stay leased
    # ('sending') and a later run reclaims them as possible duplicates once the lease is over.
    _subscribers(db, clock, "d" * 12)
    notification()
    settings = replace(sg_settings, send_batch_size=4, send_concurrency=2)
    original = db.mark_sent
    calls: list[tuple[str, list[int]]] = []

    def second_fails(ids, *args, **kwargs):
        # The second request's rows fail wherever they are recorded (the recorder, then the
        # run's thread); by rows, not by call count: a third 202 may reach the recorder first.
        calls.append((threading.current_thread().name, sorted(ids)))
        if min(ids) == second[0]:
            raise StoreError("disk I/O error")
        return original(ids, *args, **kwargs)

    second = [min(r["id"] for r in table(db, "deliveries")) + 4]  # claims go in id order
    db.mark_sent = second_fails
    with pytest.raises(StoreError, match="disk I/O error"):
        dispatcher(db, settings, clock).run()

    rows = {r["id"]: r for r in table(db, "deliveries")}
    failed = [(thread, ids) for thread, ids in calls if min(ids) == second[0]]
    # Tried on the recorder, then once more on the run's thread with the same rows.
    assert [thread for thread, _ in failed] == ["dispatch-record_0", "MainThread"]
    assert failed[0][1] == failed[1][1]
    failed_ids = set(failed[0][1])
    assert {rows[i]["state"] for i in failed_ids} == {"sending"}
    assert {rows[i]["lease_owner"] for i in failed_ids} == {"w1"}
    assert len(sendgrid.requests) >= 2
    others = Counter(r["state"] for i, r in rows.items() if i not in failed_ids)
    # The first request's rows are sent; a third request either went out (sent) or was
    # handed back unsent (pending), depending on when the failure was seen.
    assert set(others) <= {"sent", "pending"} and others["sent"] >= 4
    assert others["sent"] == 4 * (len(sendgrid.requests) - 1)
    db.mark_sent = original
    clock.advance(seconds=settings.dispatch_lease_seconds + 1)
    stats = dispatcher(db, settings, clock).run()
    assert stats.reclaimed == 4
    after = {r["id"]: r for r in table(db, "deliveries")}
    assert {(after[i]["state"], after[i]["possible_duplicate"]) for i in failed_ids} == {
        ("sent", 1)
    }
    assert Counter(r["state"] for r in after.values()) == {"sent": 12}


def _recorder_cannot_connect(db):
    """Make the store refuse a connection to the recorder thread only (a full pooler, "too
    many clients", a connect timeout); the run's own connection keeps working."""
    base = type(db)

    class Refusing(base):
        @property
        def conn(self):
            if threading.current_thread().name.startswith("dispatch-record"):
                connects.append(1)
                raise StoreError("cannot connect to PostgreSQL: too many clients")
            return base.conn.fget(self)

    connects: list[int] = []
    db.__class__ = Refusing
    return base, connects


def test_when_the_recorder_cannot_connect_the_runs_thread_records_every_202(
    db, sg_settings, clock, notification, sendgrid, caplog
):
    # SendGrid took the mail: recording it must not depend on a second connection, or every
    # 202 of the run would come back as a possible duplicate and be mailed twice.
    emails = _subscribers(db, clock, "d" * 12)
    notification()
    settings = replace(sg_settings, send_batch_size=4, send_concurrency=2)
    base, connects = _recorder_cannot_connect(db)
    try:
        stats = dispatcher(db, settings, clock).run()
    finally:
        db.__class__ = base

    assert (stats.requests, stats.sent) == (3, 12)
    rows = table(db, "deliveries")
    assert Counter((r["state"], r["attempts"], r["possible_duplicate"]) for r in rows) == {
        ("sent", 1, 0): 12
    }
    assert {r["lease_owner"] for r in rows} == {None}
    assert sorted(r["email"] for r in sendgrid.accepted_recipients()) == emails
    # One warning, and one connect attempt: the run's thread records the rest of the run.
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "recording a 202 on the recorder thread failed (cannot connect to PostgreSQL: too many "
        "clients); the run's thread records the 202s of this run"
    ]
    assert connects == [1]


def test_a_failed_recording_is_logged_when_the_runs_thread_fails_while_stopping(
    db, sg_settings, clock, notification, sendgrid, caplog
):
    # The run's thread fails while a 202's recording is still out (recording the 500 raises),
    # and that recording fails on both threads: the run raises its own error, the recording's
    # failure is logged (not lost), its rows stay leased (reclaimed later as possible
    # duplicates) and every critical section ends.
    _subscribers(db, clock, "d" * 8)
    notification()
    settings = replace(sg_settings, send_batch_size=4, send_concurrency=2)
    sendgrid.script("accept", "server_error")

    def mark_sent(*args, **kwargs):
        time.sleep(0.5)  # still out when the run's thread records the 500
        raise StoreError("recorder boom")

    def mark_retry(*args, **kwargs):
        raise StoreError("run-thread boom")

    db.mark_sent, db.mark_retry = mark_sent, mark_retry
    d = dispatcher(db, settings, clock)
    with pytest.raises(StoreError, match="run-thread boom"):
        d.run(max_claims=2)

    assert d.stop._critical == 0
    assert d._recordings == {}
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [
        "recording the 202 for 4 deliveries of notification 1 failed: recorder boom; they "
        "stay leased and come back as possible duplicates"
    ]
    rows = table(db, "deliveries")
    assert {(r["state"], r["lease_owner"]) for r in rows} == {("sending", "w1")}


def test_a_202_still_on_the_wire_when_the_runs_thread_fails_while_stopping_is_recorded(
    db, sg_settings, clock, notification, sendgrid
):
    # The run's thread fails while stopping (recording a 500 raises) with another request
    # still on the wire. SendGrid accepts that one: its rows must be recorded as sent now,
    # not left leased until the lease runs out and then mailed again as possible duplicates.
    _subscribers(db, clock, "d" * 12)
    notification()
    settings = replace(sg_settings, send_batch_size=4, send_concurrency=2)
    sendgrid.script("accept", "server_error")  # then accept
    failed = threading.Event()

    def mark_retry(*args, **kwargs):
        failed.set()
        raise StoreError("run-thread boom")

    db.mark_retry = mark_retry
    d = dispatcher(db, settings, clock)
    send = d.backend.send
    third_started = threading.Event()
    first_id = min(r["id"] for r in table(db, "deliveries"))

    def in_order(message, recipients, **options):
        # Which request this is, by its rows (claims of 4 in id order), not by arrival: two
        # senders build their requests side by side and either may reach send() first.
        request = (recipients[0].delivery_id - first_id) // 4 + 1
        if request == 2:  # the 500 comes back only once the third request is out
            assert third_started.wait(10)
        elif request == 3:  # on the wire until the run's thread has failed
            third_started.set()
            assert failed.wait(10)
        return send(message, recipients, **options)

    d.backend.send = in_order
    with pytest.raises(StoreError, match="run-thread boom"):
        d.run(max_claims=3)

    assert d.stop._critical == 0
    assert [r.outcome for r in sendgrid.requests] == ["accepted", "server_error", "accepted"]
    by_id = {r["id"]: r for r in table(db, "deliveries")}
    first = min(by_id)
    states = [(by_id[i]["state"], by_id[i]["lease_owner"]) for i in sorted(by_id)]
    assert states == [("sent", None)] * 4 + [("sending", "w1")] * 4 + [("sent", None)] * 4
    assert {by_id[first + 8 + k]["message_id"] for k in range(4)} == {
        sendgrid.requests[2].message_id
    }
    assert d.stats.sent == 8


def test_when_the_database_fails_while_stopping_each_202_costs_no_new_wait(
    db, sg_settings, clock, notification, sendgrid, caplog
):
    # The run's thread fails while stopping because the database is out of reach (locked by
    # another process, gone), with three 202s on the wire. Each write then waits out a
    # timeout (busy_timeout, connect_timeout: 10 s). Landing them is best effort: one try on
    # the recorder and one on the run's thread, then nothing more is written, instead of two
    # tries per 202 (a review measured 41 s for two; up to ~140 s at SEND_CONCURRENCY 8).
    _subscribers(db, clock, "d" * 20)
    notification()
    settings = replace(sg_settings, send_batch_size=4, send_concurrency=4)
    sendgrid.script("accept", "server_error")  # then accept
    failed = threading.Event()
    original = db.mark_sent
    failing_writes: list[str] = []

    def mark_sent(*args, **kwargs):
        if failed.is_set():
            failing_writes.append(threading.current_thread().name)
            raise StoreError("database is locked")
        return original(*args, **kwargs)

    def mark_retry(*args, **kwargs):
        failed.set()
        raise StoreError("database is locked")

    db.mark_sent, db.mark_retry = mark_sent, mark_retry
    d = dispatcher(db, settings, clock)
    send = d.backend.send
    calls: list[int] = []
    later_started = threading.Event()

    def in_order(message, recipients, **options):
        calls.append(len(calls) + 1)
        n = len(calls)
        if n == 2:  # the 500 comes back once requests 3, 4 and 5 are out
            assert later_started.wait(10)
        elif n >= 3:
            if n == 5:
                later_started.set()
            assert failed.wait(10)  # on the wire until the run's thread has failed
        return send(message, recipients, **options)

    d.backend.send = in_order
    with pytest.raises(StoreError, match="database is locked"):
        d.run(max_claims=5)

    assert [r.outcome for r in sendgrid.requests] == ["accepted", "server_error"] + ["accepted"] * 3
    assert failing_writes == ["dispatch-record_0", "MainThread"]
    assert d.stop._critical == 0
    errors = Counter(r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert errors == {
        "recording the 202 for 4 deliveries of notification 1 failed: database is locked; "
        "they stay leased and come back as possible duplicates": 1,
        "recording the 202 for 4 deliveries of notification 1 failed: an earlier write failed "
        "while the run was failing; they stay leased and come back as possible duplicates": 2,
    }
    rows = [(r["state"], r["lease_owner"]) for r in table(db, "deliveries")]
    assert rows == [("sent", None)] * 4 + [("sending", "w1")] * 16


def test_a_recording_whose_commit_went_through_but_raised_is_not_written_twice(
    db, sg_settings, clock, notification, sendgrid, caplog
):
    """The connection drops during COMMIT after the server committed: the recorder sees an
    error, and the run's thread records the same 202 again. The ledger must still show one
    attempt per recipient, and the run count every sent row once."""
    emails = _subscribers(db, clock, "d" * 12)
    notification()
    settings = replace(sg_settings, send_batch_size=4, send_concurrency=2)
    base = type(db)
    raised: list[str] = []

    class DropsAfterCommit(base):
        @contextlib.contextmanager
        def write(self, exclusive: bool = True):
            outermost = not raised and threading.current_thread().name.startswith("dispatch-record")
            with base.write(self, exclusive):
                yield
            if outermost:  # committed: now the "connection" fails, once
                raised.append(threading.current_thread().name)
                raise StoreError("server closed the connection unexpectedly")

    db.__class__ = DropsAfterCommit
    try:
        stats = dispatcher(db, settings, clock).run()
    finally:
        db.__class__ = base

    assert raised == ["dispatch-record_0"]
    assert (stats.requests, stats.sent) == (3, 12)
    rows = table(db, "deliveries")
    assert Counter((r["state"], r["attempts"], r["possible_duplicate"]) for r in rows) == {
        ("sent", 1, 0): 12
    }
    attempts = table(db, "delivery_attempts")
    assert sorted(a["delivery_id"] for a in attempts) == sorted(r["id"] for r in rows)
    by_request = {r["id"]: r["message_id"] for r in rows}
    assert {(a["outcome"], a["status_code"]) for a in attempts} == {("accepted", 202)}
    assert all(a["message_id"] == by_request[a["delivery_id"]] for a in attempts)
    assert sorted(r["email"] for r in sendgrid.accepted_recipients()) == emails
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "recording a 202 on the recorder thread failed (server closed the connection "
        "unexpectedly); the run's thread records the 202s of this run"
    ]
