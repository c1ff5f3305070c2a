"""Dispatch: claim due deliveries with a lease, render once per group, send in batches.

A group is a notification's readers of one language and "mailed before" wording, in every
time zone: their times travel as per-recipient substitutions (notifier.render.SharedEmail),
so 100,000 readers in 400 zones still fill requests of SEND_BATCH_SIZE.

Delivery is at-least-once. A row is marked sent right after the provider's 202; the only
duplicate window is a request whose 202 was lost (timeout or reset after sending, or a worker
killed between 202 and the database write), and such rows carry `possible_duplicate`.

Concurrency (issue 14): a worker keeps up to SEND_CONCURRENCY requests in flight. The thread
that runs `Dispatcher.run()` claims, renders, writes to the database and records every answer
but SendGrid's 202; a small pool of sender threads builds each request's recipients (their
signed links) and makes the HTTP request (`backend.send`), because that is where a worker
waits, and the run's thread claims the next request meanwhile. A 202 (nearly every answer of a
fan-out) is recorded by one recorder thread on its own connection, while the run's thread
builds the next request: recording is database time (SQLite and psycopg run it without the
GIL), so the two overlap on a second core instead of taking turns. On SQLite the run's
thread and the recorder take one lock around their writes, so neither sleeps in SQLite's
busy handler waiting for the other. DispatchStats and the halt state change on the run's
thread only (the recorder hands back how many rows it marked sent), and nothing else needs a
lock but the hold flag the senders share. Each claim is still one request's worth: a request
is counted against SEND_CONCURRENCY from its hand-over to a sender until its answer is
recorded, and the next claim waits for a free place, so at most SEND_CONCURRENCY requests'
rows (the one being built included) are claimed and unrecorded at any time, and that is all a
kill -9 strands (and flags). When the recorder cannot record (its connection is its own, opened
at the run's first 202), the run's thread records that 202 itself. A run starts
with one request alone and opens up only after SendGrid accepted one: a refused key or a
closed rate-limit window then costs one request, not SEND_CONCURRENCY. A 429, 401 or 403
raises the hold flag in the sender that sees it, so no further request starts; the rows of
requests not started go back, due when the limit resets.
"""

from __future__ import annotations

import logging
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby

from ..metrics import count_sends
from ..render import PLACEHOLDERS, Email, SharedEmail
from ..settings import Settings
from ..shutdown import Shutdown
from ..store.base import StoreError
from ..tokens import recipient_links
from .mailer import Message, Recipient, SendResult
from .mailheaders import UnsafeHeader, plain_address

log = logging.getLogger(__name__)

_PERSONALIZATION = re.compile(r"personalizations\.(\d+)\.")
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP_SECONDS = 300.0
MAX_ATTEMPTS = 12
BROADCAST_KINDS = frozenset({"incident", "maintenance", "announcement"})
# Mails that carry a one-click unsubscribe: everything but the receipt of an unsubscribe. The
# confirmation has one too, so "I never signed up" is one click in the mail client.
ONE_CLICK_KINDS = BROADCAST_KINDS | {"confirmation"}
# Answers that hold every other sender of this worker: SendGrid's rate limit and its API key
# are per account, so any other request would get the same answer.
HOLD_OUTCOMES = frozenset({"rate_limited", "unauthorized"})
# The request counters (notifier.metrics) are written at most this often during a run, and at
# its end: a fan-out's requests then share a transaction instead of one commit each. A kill -9
# loses at most this long of counts, never a delivery's state.
COUNT_INTERVAL_SECONDS = 1.0
# How long the recorder waits for a claim in progress before it starts its own transaction
# anyway (SQLite; _record_on_recorder): the claim's own wait for the writer is bounded by the
# store (notifier.store.sqlite.WRITER_WAIT_SECONDS, 10 s), so this only bounds a bug.
CLAIM_FIRST_SECONDS = 10.0


@dataclass
class DispatchStats:
    """Counts of one run. Changed only on the thread that runs `Dispatcher.run()` (senders
    hand their answers back to it), so it needs no lock."""

    requests: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    expired: int = 0
    reclaimed: int = 0
    halted: str | None = None
    outcomes: dict[str, int] = field(default_factory=dict)

    def summary(self, ttl_hours: int | None = None) -> str:
        """One line for the log and `dispatch-once`: "3 sent, 0 to retry, 0 failed, 2 expired
        (older than NOTIFICATION_TTL_HOURS=24 when due: never sent late), 1 request(s)".
        Expired deliveries say why: a notification expires NOTIFICATION_TTL_HOURS after its
        change was posted (notifier/notifications.py) or its announcement queued, so changes
        in replayed old captures expire at once. `ttl_hours` is the setting's value, named
        when given."""
        expired = f"{self.expired} expired"
        if self.expired:
            setting = "NOTIFICATION_TTL_HOURS" + (f"={ttl_hours}" if ttl_hours else "")
            expired += f" (older than {setting} when due: never sent late)"
        text = (
            f"{self.sent} sent, {self.retried} to retry, {self.failed} failed, "
            f"{expired}, {self.requests} request(s)"
        )
        return text + (f"; halted: {self.halted}" if self.halted else "")


def _group_key(row: dict) -> tuple:
    return (row["notification_id"], row["language"])


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def backoff(attempts: int, rng: random.Random) -> timedelta:
    """Exponential backoff with jitter (x0.5-1.5), capped, for the n-th failed attempt."""
    base = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts))
    return timedelta(seconds=base * rng.uniform(0.5, 1.5))


class Dispatcher:
    """One dispatch run: `run()` sends everything due now, or until told to stop.

    `stop` is the worker's Shutdown: after it is set no new request starts, and a request in
    flight is answered (or times out) and recorded within its budget.
    """

    def __init__(
        self,
        store,
        backend,
        settings: Settings,
        clock: Callable[[], datetime],
        *,
        stop: Shutdown | None = None,
        owner: str | None = None,
        rng: random.Random | None = None,
    ):
        self.store, self.backend, self.settings, self.clock = store, backend, settings, clock
        self.stop = stop or Shutdown()
        self.owner = owner or worker_id()
        self.rng = rng or random.Random()
        # One writer at a time (SQLite): claims and the recorder's transactions take turns.
        self._serial_writes = getattr(store, "backend", None) == "sqlite"
        self.stats = DispatchStats()
        self._resume_at: datetime | None = None
        self._notifications: dict[int, dict] = {}
        self._emails: dict[tuple, SharedEmail] = {}
        self._filled_messages: dict[tuple, Message] = {}
        # When run() expired stale rows and reclaimed dead workers' leases (of every channel);
        # None when it halted first (sending paused, rate limited).
        self.housekept_at: datetime | None = None

    # --- the run ---------------------------------------------------------------------
    def run(self, max_claims: int | None = None) -> DispatchStats:
        paused = self.store.sending_paused()
        if paused:
            self.stats.halted = f"sending paused: {paused}"
            return self.stats
        now = self.clock()
        limited = self.store.rate_limited_until()
        if limited and limited > now:
            # SendGrid's limit is per account: no worker sends before the window reopens.
            self.stats.halted = f"rate limited until {limited:%H:%M:%S} UTC"
            return self.stats
        self.stats.expired += self.store.expire_due(now)
        self.stats.reclaimed += self.store.reclaim_expired_leases(now)
        self.housekept_at = now
        self._start_senders()
        try:
            self._claim_and_send(max_claims)
        finally:
            self._stop_senders()
        return self.stats

    def _claim_and_send(self, max_claims: int | None) -> None:
        claims = 0
        while not self._holding():
            if max_claims is not None and claims >= max_claims:
                break
            # A free sender first: at most SEND_CONCURRENCY requests' rows are claimed and
            # unrecorded at any time.
            self._wait_for_sender()
            if self._holding():
                break
            now = self.clock()
            lease = timedelta(seconds=self.settings.dispatch_lease_seconds)
            # Claim one request's worth at a time: a killed worker then strands (and flags as
            # possible duplicates) only the rows of the requests it had in flight.
            self._claim_done.clear()  # recordings not yet begun wait (_record_on_recorder)
            try:
                rows = self.store.claim_due(self.owner, now, now + lease, self._batch_size())
            finally:
                self._claim_done.set()
            # Now, not as they land: the recorder's transaction then runs while this thread
            # builds the claimed request, instead of holding up the claim (SQLite's one lock).
            self._record_landed()
            claims += 1
            if not rows:
                break
            self._send_claimed(rows)

    def _send_claimed(self, rows: list[dict]) -> None:
        self._handed = set()  # this claim's rows only: a run may claim 100,000
        try:
            self._send_groups(rows)
        finally:
            # Whatever was claimed but not handed to a sender (stop, halt, an unexpected error)
            # goes back at once, unflagged, instead of waiting for the lease to run out. After
            # a hold, not before the requests in flight are recorded: one may be the 429 that
            # says when the rows are due.
            unsent = [r for r in rows if r["id"] not in self._handed]
            if self._hold.is_set():
                self._unsent.extend(unsent)
            else:
                self._release(unsent, "dispatch stopped before sending")

    # --- the senders -------------------------------------------------------------------
    def _start_senders(self) -> None:
        self._hold = threading.Event()  # set by the sender that sees a 429, 401 or 403
        self._flights: dict[Future, _Flight] = {}
        self._handed: set[int] = set()  # ids of the current claim given to a sender
        self._unsent: list[dict] = []  # claimed rows to hand back once nothing is in flight
        self._resends: list[tuple] = []  # (message, rows) to send again after a 400
        self._error: BaseException | None = None
        self._opened = False  # True after SendGrid accepted a request in this run
        self._pool = ThreadPoolExecutor(
            max_workers=self.settings.send_concurrency, thread_name_prefix="sendgrid"
        )
        # The 202s' recorder (see the module docstring), started at the run's first 202.
        self._recorder: ThreadPoolExecutor | None = None
        self._landed: list[tuple[_Flight, SendResult]] = []  # 202s not yet handed to it
        self._recordings: dict[Future, tuple[_Flight, SendResult]] = {}  # 202s it holds
        # Clear while the run's thread claims: the recorder begins no new recording meanwhile.
        self._claim_done = threading.Event()
        self._claim_done.set()
        self._recorder_failed = False  # then the run's thread records the rest of the run's
        # Set on the recorder to its first failure: what it still holds fails fast with it.
        self._recorder_broken: Exception | None = None
        self._failing = False  # the run's thread failed while stopping (_stop_senders)
        self._gave_up = False  # ...and a write on that path failed too: no further writes
        self._uncounted: list[SendResult] = []  # answers not yet in the metric counters
        self._counted_at = time.monotonic()

    def _count(self, result: SendResult) -> None:
        """Add an answer to the request counters (notifier.metrics), in one transaction per
        COUNT_INTERVAL_SECONDS and at the end of the run rather than one per request."""
        self._uncounted.append(result)
        if time.monotonic() - self._counted_at >= COUNT_INTERVAL_SECONDS:
            self._flush_counts()

    def _flush_counts(self) -> None:
        results, self._uncounted = self._uncounted, []
        self._counted_at = time.monotonic()
        if results:
            count_sends(self.store, results)

    def _stop_senders(self) -> None:
        """Record every request in flight, hand back what was never sent, end the threads.

        When the run's thread fails in here (its error is on its way up), the rest is best
        effort and bounded: the answers still out are landed and recorded, so a 202 SendGrid
        gave is recorded now instead of waiting out the lease and going again as a possible
        duplicate, and what was never sent is handed back; but after the first write on
        this path that fails (the database is out of reach), nothing more is written. The
        rest stays leased and comes back flagged after the lease; every critical section
        ends; failures are logged, never raised over the run's own error."""
        try:
            self._wait_for_sender(0)
        except BaseException:
            self._failing = True
            raise
        finally:
            self._pool.shutdown(wait=True)
            for future, flight in list(self._flights.items()):  # only when failing
                del self._flights[future]
                if self._gave_up:
                    flight.critical.close()
                    continue
                try:
                    self._land(flight, future)
                except Exception as exc:
                    self._gave_up = True
                    _log_unrecorded("answer", flight, exc)
            self._record_landed()
            self._stop_recorder()
            # Only when the run's thread failed while recordings were out: count them, and
            # log (and end the critical section of) any that failed.
            for future, (flight, result) in list(self._recordings.items()):
                del self._recordings[future]
                self._recorded(future, flight, result)
            if self._failing:
                self._hand_back_unsent()
        self._hand_back_unsent()
        self._flush_counts()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _hand_back_unsent(self) -> None:
        """Release the claimed rows no sender took (a hold or a stop came first), and a 400's
        remainders that were never sent again; on the failure path best effort (logged)."""
        for _message, rows in self._resends:
            self._unsent.extend(r for r in rows if r["id"] not in self._handed)
        self._resends = []
        unsent, self._unsent = self._unsent, []
        if not self._failing:
            self._release(unsent, "dispatch stopped before sending")
            return
        if unsent and not self._gave_up:
            try:
                self._release(unsent, "dispatch stopped before sending")
            except Exception as exc:
                self._gave_up = True
                log.error(
                    "handing back %d unsent deliveries failed: %s; they stay leased and come "
                    "back after the lease",
                    len(unsent), exc,
                )  # fmt: skip

    def _holding(self) -> bool:
        """True once nothing new may start: stop, a recorded halt, or a sender's hold."""
        return self.stop.is_set() or bool(self.stats.halted) or self._hold.is_set()

    def _senders_allowed(self) -> int:
        # One request alone until SendGrid accepted one in this run: a revoked key or a closed
        # rate-limit window is then answered once, with nothing else on the wire.
        return self.settings.send_concurrency if self._opened else 1

    def _wait_for_sender(self, in_flight: int | None = None) -> None:
        """Record answers until at most `in_flight` requests are on the wire or waiting for
        the recorder (and no 400's remainder waits to be sent again). None: until a sender
        is free, asked again after every answer (the run's first 202 opens up the rest)."""
        while self._resends or self._unrecorded() > max(
            0, self._senders_allowed() - 1 if in_flight is None else in_flight
        ):
            if self._resends:
                message, rows = self._resends.pop(0)
                self._send_batch(message, rows)
                # Rows of a 400's remainder that no sender took (a hold came first) go back
                # with the rest once nothing is in flight.
                self._unsent.extend(r for r in rows if r["id"] not in self._handed)
                continue
            self._record_landed()  # before waiting: the recorder must hold what it can finish
            done, _ = wait([*self._flights, *self._recordings], return_when=FIRST_COMPLETED)
            for future in done:
                if future in self._flights:
                    self._land(self._flights.pop(future), future)
                else:
                    self._recorded(future, *self._recordings.pop(future))

    def _fly(self, flight: _Flight) -> SendResult | None:
        """On a sender thread: the request, unless a stop or a hold came first (None).

        Its recipients (links signed per reader) are built here, not on the run's thread: that
        claims the next request meanwhile, and its SQLite statements run without the GIL these
        1000 links need (issue 14). An error while building them is not the message's fault
        (ValueError means that, see _land): it comes back as RecipientsError."""
        if self.stop.is_set() or self._hold.is_set():
            return None
        kind = flight.message.category
        try:
            recipients = [self._recipient(r, kind, flight.nonces) for r in flight.batch]
        except Exception as exc:
            raise RecipientsError(f"building the request's recipients failed: {exc}") from exc
        # Checked again after the build, which takes milliseconds: a 429 another sender saw
        # or a SIGTERM meanwhile still stops this request.
        if self.stop.is_set() or self._hold.is_set():
            return None
        # A request started just before SIGTERM must be answered, and recorded, before the
        # budget runs out: its timeout comes from the budget (Shutdown.timeout).
        timeout = self.stop.timeout(self.settings.sendgrid_timeout_seconds)
        if timeout <= 0:
            return None  # no time left for a request
        result = self.backend.send(flight.message, recipients, timeout_seconds=timeout)
        if result.outcome in HOLD_OUTCOMES:
            self._hold.set()  # before this answer is recorded: no other sender starts
        return result

    def _land(self, flight: _Flight, future: Future) -> None:
        """Act on one sender's answer (on the run's thread): a 202 goes to the recorder, and
        its critical section ends once it is recorded (_recorded); anything else is recorded
        here, and the critical section ends here."""
        recording = False
        try:
            try:
                result = future.result()
            except ValueError as exc:
                self._invalid(flight, exc)
                return
            except Exception as exc:
                # Not an answer from SendGrid (a bug, memory): hand the rows back unflagged as
                # before, let the others land, and raise it at the end of the run.
                self._hold.set()
                self._release(flight.batch, "dispatch stopped before sending")
                self._error = self._error or exc
                return
            if result is None:
                self._unsent.extend(flight.batch)  # not started: handed back at the end
                return
            self._count(result)
            if result.outcome == "accepted":
                self._answered(result)
                # To the recorder after the next claim; _recorded ends the critical section.
                self._landed.append((flight, result))
                recording = True
                return
            self._send_and_record(flight.message, flight.batch, result)
        finally:
            if not recording:
                flight.critical.close()

    # --- the recorder ------------------------------------------------------------------
    def _unrecorded(self) -> int:
        """Requests handed to a sender whose answer is not yet recorded."""
        return len(self._flights) + len(self._landed) + len(self._recordings)

    def _record_landed(self) -> None:
        """Hand the landed 202s to the recorder thread (started here at the run's first)."""
        while self._landed:
            if self._recorder_failed:  # its connection failed once: no new connect per 202
                self._recorded(None, *self._landed.pop(0))
                continue
            if self._recorder is None:
                self._recorder = ThreadPoolExecutor(1, thread_name_prefix="dispatch-record")
            flight, result = self._landed[0]
            future = self._recorder.submit(self._record_on_recorder, flight, result)
            self._recordings[future] = (flight, result)
            self._landed.pop(0)

    def _record_on_recorder(self, flight: _Flight, result: SendResult) -> int:
        """_record_accepted on the recorder thread. Once one of its recordings failed, the
        rest it holds fail at once (the run's thread records them, _recorded) instead of each
        waiting out the same connect or lock timeout."""
        if self._recorder_broken is not None:
            # The same message whichever of its failures the run's thread looks at first.
            raise StoreError(str(self._recorder_broken))
        # On SQLite (one writer at a time) a claim in progress goes first: the run's thread
        # waits for it, and the recorder's queue of 202s would otherwise hold the writer lock
        # transaction after transaction (Python's locks are not fair) while the next request
        # waits to be claimed (issue 14). Best effort: a recording that passed this point just
        # before the claim began still races it for the lock. Bounded: a stuck claim fails by
        # its own deadline.
        if self._serial_writes:
            self._claim_done.wait(CLAIM_FIRST_SECONDS)
        try:
            return self._record_accepted(flight, result)
        except Exception as exc:
            self._recorder_broken = exc
            raise

    def _record_accepted(self, flight: _Flight, result: SendResult, again: bool = False) -> int:
        """The attempt rows and the rows' "sent" of a 202 in one transaction, on whichever
        thread calls it (the recorder; the run's thread when the recorder failed). Returns how
        many rows were marked sent (a row whose lease was lost meanwhile is not).

        again=True: the recorder's try failed in a way that may have committed (the
        connection dropped during COMMIT). Attempt rows this request already has are not
        written twice, and rows it already marked sent count as sent."""
        ids = [r["id"] for r in flight.batch]
        with self.store.write(exclusive=False):
            self.store.record_request_attempt(
                ids, self.clock(), result.outcome, result.status_code, result.error,
                result.message_id, once=again,
            )  # fmt: skip
            sent = self.store.mark_sent(ids, self.clock(), result.message_id, self.owner)
            if again and result.message_id is not None and sent < len(ids):
                sent = self.store.count_sent_with(ids, result.message_id)
            return sent

    def _recorded(self, future: Future | None, flight: _Flight, result: SendResult) -> None:
        """On the run's thread, once the recorder is done with a 202 (or at once, `future`
        None, after it failed): count what was marked sent, then end the flight's critical
        section.

        The recorder opens a connection of its own at the run's first 202; when that (or its
        write) fails, the 202 is recorded again here, on the connection that just claimed,
        so a full pooler or a failed connect does not turn the run's accepted mail into
        resends, and the rest of the run's 202s are recorded here too (one warning, no
        connect per request, which could wait connect_timeout each). When that fails too,
        nothing new starts, the error is logged and raised at the end of the run, and the
        rows stay 'sending' under this worker's lease: once it runs out they are reclaimed as
        possible duplicates (SendGrid took them), never lost.
        """
        try:
            sent = None
            if future is not None:
                try:
                    sent = future.result()
                except Exception as exc:
                    if not self._recorder_failed:
                        log.warning(
                            "recording a 202 on the recorder thread failed (%s); the run's "
                            "thread records the 202s of this run",
                            exc,
                        )
                    self._recorder_failed = True
            if sent is None:
                if self._gave_up:
                    raise StoreError("an earlier write failed while the run was failing")
                sent = self._record_accepted(flight, result, again=future is not None)
            self.stats.sent += sent
        except Exception as exc:
            if self._failing:
                self._gave_up = True
            _log_unrecorded("202", flight, exc)
            self._hold.set()
            self._error = self._error or exc
        finally:
            flight.critical.close()

    def _stop_recorder(self) -> None:
        """Let the recorder finish what it holds, close its connection, end its thread."""
        if self._recorder is None:
            return
        recorder, self._recorder = self._recorder, None
        try:
            recorder.submit(self.store.close_thread_connection)
        finally:
            recorder.shutdown(wait=True)

    def _send_groups(self, rows: list[dict]) -> None:
        """Send claimed rows: one rendering per (notification, language, mailed before), its
        readers of every zone in the same requests, each with their zone's substitutions
        (notifier.render.SharedEmail). The rows are sorted here (by priority, group, then id),
        whatever order the claim gave them in: broadcast mail before confirmations and receipts
        within a claim too (claim_due's priority column)."""
        ordered = sorted(rows, key=lambda r: (r.get("priority", 0), *_group_key(r), r["id"]))
        for key, members in groupby(ordered, key=_group_key):
            rows_of_key = list(members)
            # Readers mailed about this incident before read "since our last email", the others
            # their first-mail wording (issue 13): at most two renderings per group. Mail about
            # no incident (confirmations, announcements) skips the query.
            notification = self._notification(key[0])
            seen = (
                self.store.mailed_before(key[0], (r["subscriber_id"] for r in rows_of_key))
                if notification is not None and notification.get("incident_id") is not None
                else set()
            )
            for again in (False, True):
                group = [r for r in rows_of_key if (r["subscriber_id"] in seen) == again]
                if not group:
                    continue
                if self.stop.is_set() or self.stats.halted:
                    return
                for message, readers in self._by_zone_mail(*key, group, mailed_before=again):
                    size = self._batch_size()
                    for start in range(0, len(readers), size):
                        if self.stop.is_set() or self.stats.halted:
                            return
                        batch = readers[start : start + size]
                        self._send_batch(*self._one_zone(key, again, message, batch))

    def _by_zone_mail(self, notification_id: int, language: str, group, *, mailed_before):
        """[(Message, rows)]: the rows of `group` by the mail they share (usually one for all
        zones; see ZoneMail), each row carrying its zone's `zone_substitutions`. Rows whose
        mail cannot be rendered (a template bug, an unknown zone) fail with the reason."""
        shared = self._shared(notification_id, language, group, mailed_before)
        if shared is None:
            return []
        by_group: dict[tuple, tuple[Email, list[dict]]] = {}
        failed: dict[str, list[dict]] = {}
        for row in group:
            try:
                mail = shared.for_zone(row["timezone"])
            except Exception as exc:  # a template bug must fail these rows, not loop forever
                reason = f"render error: {type(exc).__name__}: {exc}"
                if reason not in failed:
                    log.exception(
                        "rendering notification %s (%s, %s, mailed before: %s) failed",
                        notification_id, language, row["timezone"], mailed_before,
                    )  # fmt: skip
                failed.setdefault(reason, []).append(row)
                continue
            reader = {**row, "zone_substitutions": mail.substitutions}
            by_group.setdefault(mail.group, (mail.email, []))[1].append(reader)
        for reason, rows in failed.items():
            self._fail(rows, reason)
        return [
            (self._message(notification_id, email), readers) for email, readers in by_group.values()
        ]

    def _one_zone(self, key: tuple, mailed_before: bool, message: Message, batch: list[dict]):
        """(message, batch) for one request. When every reader of the request lives in the same
        zone (a claim is one request's worth of rows in claim_due's zone order, so with few
        zones nearly every request does), the zone's times are filled into the message itself
        (SharedEmail.filled) and the readers carry no zone substitutions: each personalization
        shrinks from ~2 KB to its links, which SendGrid, the JSON encoder and the request body
        all pay for (issue 14). The rows are _by_zone_mail's own copies: changed in place."""
        zone = batch[0]["timezone"]
        if not batch[0].get("zone_substitutions") or any(r["timezone"] != zone for r in batch):
            return message, batch
        cache_key = (*key, mailed_before, zone)
        filled = self._filled_messages.get(cache_key)
        if filled is None:
            shared = self._shared(key[0], key[1], batch, mailed_before)
            filled = self._message(key[0], shared.filled(zone))
            self._filled_messages[cache_key] = filled
        for row in batch:
            row["zone_substitutions"] = None
        return filled, batch

    def _batch_size(self) -> int:
        return min(self.backend.max_batch, self.settings.send_batch_size)

    # --- rendering -------------------------------------------------------------------
    def _notification(self, notification_id: int) -> dict | None:
        """The notification row, read once per dispatcher run."""
        notification = self._notifications.get(notification_id)
        if notification is None:
            notification = self.store.get_notification(notification_id)
            self._notifications[notification_id] = notification
        return notification

    def _shared(self, notification_id: int, language: str, group, mailed_before: bool):
        """The SharedEmail, made once per dispatcher run; None (rows failed) when the content
        cannot be rendered at all."""
        key = (notification_id, language, mailed_before)
        shared = self._emails.get(key)
        if shared is None:
            content = self._notification(notification_id)["content"]
            try:
                shared = SharedEmail(content, language, mailed_before=mailed_before)
            except Exception as exc:
                log.exception("rendering notification %s (%s, mailed before: %s) failed", *key)
                self._fail(group, f"render error: {type(exc).__name__}: {exc}")
                return None
            self._emails[key] = shared
        return shared

    def _message(self, notification_id: int, email: Email) -> Message:
        notification = self._notification(notification_id)
        headers = {"List-Id": self.settings.list_id}
        if notification["kind"] in ONE_CLICK_KINDS:
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        return Message(
            notification_id=notification_id,
            category=notification["kind"],
            from_addr=self.settings.mail_from,
            subject=email.subject,
            text=email.text,
            html=email.html,
            headers=headers,
            attachments=email.attachments,
        )

    def _recipient(self, row: dict, kind: str, nonces: dict[int, dict]) -> Recipient:
        if row["subscriber_id"] is None:  # an ops test send: no subscription behind it
            base = self.settings.public_base_url
            links = {name: f"{base}/?test-send" for name in PLACEHOLDERS}
            substitutions = {PLACEHOLDERS[name]: url for name, url in links.items()}
            substitutions.update(row.get("zone_substitutions") or {})
            headers = (
                {"List-Unsubscribe": f"<{base}/?test-send>"} if kind in ONE_CLICK_KINDS else {}
            )
            return Recipient(row["id"], row["email"], substitutions, headers)
        sub = nonces.get(row["subscriber_id"]) or {}
        links = recipient_links(
            self.settings,
            row["subscriber_id"],
            sub.get("link_nonce") or "",
            confirm_nonce=sub.get("token_nonce") if kind == "confirmation" else None,
            undo=kind == "receipt",
            unsubscribed_at=sub.get("unsubscribed_at"),
        )
        substitutions = {
            PLACEHOLDERS[name]: url for name, url in links.items() if name in PLACEHOLDERS
        }
        # The reader's times (notifier.render.SharedEmail): set on the row by _by_zone_mail.
        substitutions.update(row.get("zone_substitutions") or {})
        headers = {}
        if kind in ONE_CLICK_KINDS:
            headers["List-Unsubscribe"] = f"<{links['one_click_url']}>"
        return Recipient(row["id"], row["email"], substitutions, headers)

    # --- sending ---------------------------------------------------------------------
    def _send_batch(self, message: Message, batch: list[dict]) -> None:
        """Hand one request to a sender, once one is free; the answer is recorded later."""
        if self._holding():
            return  # left claimed; _send_claimed hands it back
        # Which rows are still ours and wanted, with their subscribers' nonces as they are now
        # (the links are signed from them): one query per request.
        live = self.store.still_sending_subscribers(
            [r["id"] for r in batch], self.owner, message.category
        )
        nonces = {s["subscriber_id"]: s for s in live.values() if s["subscriber_id"] is not None}
        unwanted = [r["id"] for r in batch if r["id"] not in live]
        if unwanted:  # unsubscribed, bounced or confirmed meanwhile (no-op for lost leases)
            self._cancel(unwanted, "subscriber no longer eligible")
        batch = [r for r in batch if r["id"] in live]
        if message.category == "confirmation":
            # Confirmed (or purged) since it was queued: the link would be dead; do not send.
            stale = [
                r for r in batch if not (nonces.get(r["subscriber_id"]) or {}).get("token_nonce")
            ]
            if stale:
                self._cancel([r["id"] for r in stale], "link no longer valid")
                batch = [r for r in batch if r not in stale]
        batch = self._one_per_address(self._plain_addresses(batch))
        if not batch:
            return
        self._wait_for_sender()
        if self._holding():
            return  # left claimed; _send_claimed hands it back
        critical = ExitStack()
        # A forced exit waits until the answer is recorded (Shutdown.critical).
        critical.enter_context(self.stop.critical())
        flight = _Flight(message, batch, nonces, critical)
        try:
            self._flights[self._pool.submit(self._fly, flight)] = flight
        except BaseException:
            critical.close()
            raise
        self._handed.update(r["id"] for r in batch)

    def _invalid(self, flight: _Flight, exc: ValueError) -> None:
        # The message itself cannot be sent (e.g. MAIL_FROM is not an address): fail the rows
        # with the reason and tell ops, instead of retrying a request that can never work.
        reason = f"not sent: {exc}"
        self._fail(flight.batch, reason)
        self.store.raise_alert("message_invalid", reason, self.clock())
        log.error("notification %s: %s", flight.message.notification_id, reason)

    def _answered(self, result: SendResult) -> None:
        self.stats.requests += 1
        self.stats.outcomes[result.outcome] = self.stats.outcomes.get(result.outcome, 0) + 1
        if result.outcome == "accepted":
            self._opened = True

    def _send_and_record(self, message, batch, result: SendResult) -> None:
        """Record a sender's answer other than a 202 and act on its outcome (the run's
        thread; a 202 goes to _record_accepted)."""
        self._answered(result)
        handler = getattr(self, f"_on_{result.outcome}", None)
        if handler is None:
            log.error("unknown send outcome %r; retrying later", result.outcome)
            handler = self._on_transient
        # The attempts and the rows' new state in one transaction: one commit per request
        # instead of one per recipient (SQLite in autocommit mode commits every INSERT).
        with self.store.write(exclusive=False):
            self._record(batch, result)
            handler(message, batch, result)

    def _plain_addresses(self, batch: list[dict]) -> list[dict]:
        """Fail rows whose address is not a plain addr-spec (stored before the form refused
        such addresses, or by hand): no header may be built from it, the rest still go."""
        bad = []
        for row in batch:
            try:
                plain_address(row["email"])
            except UnsafeHeader:
                bad.append(row)
        if bad:
            self._fail(bad, "not sent: the address is not a plain email address")
        return [r for r in batch if r not in bad]

    def _one_per_address(self, batch: list[dict]) -> list[dict]:
        """SendGrid refuses a request naming one address twice; send the first, cancel the rest."""
        seen: dict[str, int] = {}
        keep, twins = [], []
        for row in batch:
            address = row["email"].lower()
            if address in seen:
                twins.append(row)
            else:
                seen[address] = row["id"]
                keep.append(row)
        for row in twins:
            self._cancel([row["id"]], f"same address as delivery {seen[row['email'].lower()]}")
        return keep

    def _record(self, batch: Sequence[dict], result: SendResult) -> None:
        self.store.record_request_attempt(
            [r["id"] for r in batch],
            self.clock(),
            result.outcome,
            result.status_code,
            result.error,
            result.message_id,
        )

    def _on_rate_limited(self, message, batch, result: SendResult) -> None:
        wait = timedelta(seconds=result.retry_after_seconds or 60)
        now = self.clock()
        self.store.mark_retry(
            [r["id"] for r in batch], now, now + wait, "rate limited (429)", self.owner
        )
        self.stats.retried += len(batch)
        # Everything else we hold would hit the same limit: hand it back and stop this run.
        self.stats.halted = f"rate limited for {int(wait.total_seconds())}s"
        self._resume_at = now + wait
        self.store.set_rate_limited_until(now + wait, now)

    def _on_transient(self, message, batch, result: SendResult) -> None:
        self._retry(batch, result.error or "temporary error", possible_duplicate=False)

    def _on_maybe_sent(self, message, batch, result: SendResult) -> None:
        # The request went out and the answer was lost: it may have been accepted. Sending again
        # is the lesser evil (at-least-once); the rows are flagged so ops can see it.
        self._retry(batch, result.error or "response lost", possible_duplicate=True)

    def _on_rejected(self, message, batch, result: SendResult) -> None:
        reason = result.error or f"rejected (HTTP {result.status_code})"
        named = {int(i) for i in _PERSONALIZATION.findall(reason) if int(i) < len(batch)}
        if not named or len(named) == len(batch):
            # Nothing points at single recipients: the message itself was refused.
            self._fail(batch, reason)
            return
        # One bad address makes SendGrid refuse the whole request. Its error names the
        # personalization; fail exactly those and send the rest again at once (queued: this
        # runs while an answer is recorded, and the next free sender takes it).
        self._fail([batch[i] for i in sorted(named)], reason)
        rest = [row for i, row in enumerate(batch) if i not in named]
        self._handed.difference_update(r["id"] for r in rest)
        self._resends.append((message, rest))

    def _on_unauthorized(self, message, batch, result: SendResult) -> None:
        now = self.clock()
        reason = f"SendGrid refused the API key (HTTP {result.status_code}): {result.error or ''}"
        self.store.pause_sending(reason.strip(), now)
        self.store.raise_alert("sending_paused", reason.strip(), now)
        self.store.mark_retry(
            [r["id"] for r in batch], now, now, reason, self.owner, attempted=False
        )
        self.stats.halted = "sending paused: API key refused"
        log.error("sending paused: %s", reason)

    def _retry(self, batch: list[dict], reason: str, *, possible_duplicate: bool) -> None:
        now = self.clock()
        exhausted = [r for r in batch if r["attempts"] + 1 >= MAX_ATTEMPTS]
        if exhausted:
            self._fail(exhausted, f"retries exhausted: {reason}")
        retry = [r for r in batch if r["attempts"] + 1 < MAX_ATTEMPTS]
        if not retry:
            return
        delay = backoff(max(r["attempts"] for r in retry), self.rng)
        self.store.mark_retry(
            [r["id"] for r in retry],
            now,
            now + delay,
            reason,
            self.owner,
            possible_duplicate=possible_duplicate,
        )
        self.stats.retried += len(retry)

    def _fail(self, rows: Sequence[dict], reason: str) -> None:
        if not rows:
            return
        self.stats.failed += self.store.mark_failed(
            [r["id"] for r in rows], self.clock(), reason, self.owner
        )

    def _cancel(self, ids: list[int], reason: str) -> None:
        self.store.mark_cancelled(ids, self.clock(), reason, self.owner)

    def _release(self, rows: Sequence[dict], reason: str) -> None:
        """Hand claimed rows back untouched (after a 429, not before the limit resets)."""
        if not rows:  # the end of nearly every claim: nothing to hand back, no lock to wait for
            return
        now = self.clock()
        due = self._resume_at or now
        self.store.mark_retry(
            [r["id"] for r in rows], now, due, reason, self.owner, attempted=False
        )


def _log_unrecorded(what: str, flight: _Flight, exc: Exception) -> None:
    log.error(
        "recording the %s for %d deliveries of notification %s failed: %s; they stay leased "
        "and come back as possible duplicates",
        what, len(flight.batch), flight.message.notification_id, exc,
    )  # fmt: skip


class RecipientsError(Exception):
    """A request's recipients could not be built (a bug in link signing, say). Deliberately
    not a ValueError: _land fails the rows of a request whose message is invalid, but these
    go back unflagged and the run raises at its end, as for any unexpected sender error."""


@dataclass
class _Flight:
    """One request handed to a sender thread, and the critical section it holds open until
    its answer is recorded."""

    message: Message
    batch: list[dict]
    nonces: dict[int, dict]  # what each subscriber's links are signed from (_recipient)
    critical: ExitStack
