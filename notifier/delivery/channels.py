"""Channel dispatch (issue 12): Slack, Microsoft Teams and webhook deliveries from the same ledger.

A channel delivery is one request to one target, so unlike mail nothing is grouped: the
dispatcher claims a handful of due rows with a lease (store.claim_channel_due), builds each
reader's payload (notifier.delivery.payloads) and posts it (notifier.delivery.senders), up to
CHANNEL_CONCURRENCY requests in flight. As in the mail Dispatcher the run's thread claims,
builds, writes every answer to the database and keeps the counts; sender threads only make the
HTTP requests. Delivery is at-least-once: a row is marked sent after the target's 2xx, and a
request whose answer was lost (a timeout or reset after sending, a worker killed mid-request)
is sent again flagged `possible_duplicate`. A webhook's `webhook-id` is "msg_<delivery id>",
the same on every attempt, so a receiver can drop the second copy (Standard Webhooks,
"Idempotency").

Holds are per target (`hold_key`: a Slack or Teams webhook URL, a generic webhook's host): a
429 says when that target takes requests again (Retry-After, RFC 9110 section 10.2.3), so that
row and every other claimed row for it wait until then, while the others go on; a 429 is not
counted as an attempt. A target gets one request alone until it accepted one in this run, so
a closed rate-limit window costs one request, not CHANNEL_CONCURRENCY. A run stops claiming
after RUN_BUDGET_SECONDS, so a hanging target cannot hold the worker's mail back.

5xx, 408 and timeouts are retried with the mail path's backoff (dispatch.backoff, up to
dispatch.MAX_ATTEMPTS); 404/410, other 4xx and a target refused by the address guard fail the
row. Every answer counts towards the subscription's health (store.record_channel_outcome):
repeated permanent failures, or a day of failures, pause it and mail its owner once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from urllib.parse import urlsplit

from ..settings import Settings
from ..shutdown import Shutdown
from . import payloads, senders
from .dispatch import MAX_ATTEMPTS, DispatchStats, backoff, worker_id

log = logging.getLogger(__name__)

# Answers that say the target will not take this message, however often it is sent.
PERMANENT_OUTCOMES = frozenset({"gone", "rejected", "unsafe"})
RATE_LIMIT_DEFAULT_SECONDS = 60.0  # a 429 without a usable Retry-After
VERIFICATION = "channel_verification"


# The longest a run keeps claiming: a target that hangs (an outage at Slack) makes each of its
# requests take CHANNEL_TIMEOUT_SECONDS, and the worker's dispatch pass runs mail first, then
# channels, then mail again: mail never waits longer than this plus one timeout.
RUN_BUDGET_SECONDS = 20.0
# How recent the mail run's expiry and lease reclaim must be for a channel run to skip its own.
HOUSEKEPT_FRESH_SECONDS = 1.0


def hold_key(channel: str, url: str) -> str:
    """The key of a hold (and of "one request alone until it accepted one"): a Slack or Teams
    incoming webhook's limits are its own (Slack: per webhook; one hooks.slack.com serves every
    workspace), so the whole target URL; a generic webhook's host, scheme://host:port."""
    if channel in ("slack", "teams"):
        return url
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass
class _Flight:
    """One claimed row ready to send, and (once handed to a sender) the critical section it
    holds open until its answer is recorded."""

    row: dict
    kind: str
    url: str
    host: str
    payload: dict
    secret: str | None
    now: datetime
    critical: ExitStack | None = None

    @property
    def message_id(self) -> str:
        return f"msg_{self.row['id']}"


class ChannelDispatcher:
    """One channel dispatch run: `run()` sends every due channel row now, or until told to stop.

    `stop` is the worker's Shutdown: after it is set no new request starts, and a request in
    flight is answered (or times out: its timeout comes from the budget) and recorded. `send`
    replaces senders.send (same signature) in tests.
    """

    def __init__(
        self,
        store,
        settings: Settings,
        clock: Callable[[], datetime],
        *,
        stop: Shutdown | None = None,
        owner: str | None = None,
        rng: random.Random | None = None,
        send: Callable | None = None,
        housekept_at: datetime | None = None,
    ):
        self.store, self.settings, self.clock = store, settings, clock
        self.housekept_at = housekept_at
        self.stop = stop or Shutdown()
        self.owner = owner or worker_id()
        self.rng = rng or random.Random()
        self.send = send or senders.send
        self.stats = DispatchStats()
        self._notifications: dict[int, dict | None] = {}
        self._health: list[Callable[[], object]] = []  # the answer's subscription updates

    # --- the run ---------------------------------------------------------------------
    def run(self, max_claims: int | None = None) -> DispatchStats:
        now = self.clock()
        # `housekept_at`: when the mail Dispatcher of the same pass expired stale rows and
        # reclaimed dead workers' leases (both cover every channel; a scan of every pending
        # row, issue 14). Only if that was a moment ago are they skipped here: after a long
        # mail run (a big fan-out) a channel row's notification may have expired since, and
        # alone (tests, a channel-only run) or after a mail run that halted first they run
        # here too. Stale rows never go out.
        fresh = timedelta(seconds=HOUSEKEPT_FRESH_SECONDS)
        if self.housekept_at is None or now - self.housekept_at > fresh:
            self.stats.expired += self.store.expire_due(now)
            self.stats.reclaimed += self.store.reclaim_expired_leases(now)
        self._waiting: list[_Flight] = []  # claimed and built, not yet handed to a sender
        self._flights: dict[Future, _Flight] = {}
        self._holds: dict[str, datetime] = {}  # host -> when it takes requests again
        self._opened: set[str] = set()  # hosts that accepted a request in this run
        self._error: BaseException | None = None
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, self.settings.channel_concurrency), thread_name_prefix="channel"
        )
        try:
            self._claim_and_send(max_claims)
        finally:
            self._finish()
        return self.stats

    def _claim_and_send(self, max_claims: int | None) -> None:
        concurrency = max(1, self.settings.channel_concurrency)
        claims, drained = 0, False
        started = time.monotonic()
        while not self.stop.is_set():
            if not drained and time.monotonic() - started > RUN_BUDGET_SECONDS:
                drained = True  # what is claimed still goes; the rest waits for the next pass
            room = concurrency - len(self._waiting) - len(self._flights)
            if not drained and room > 0 and (max_claims is None or claims < max_claims):
                # A handful at a time: a killed worker strands (and flags) at most
                # CHANNEL_CONCURRENCY rows.
                now = self.clock()
                lease = now + timedelta(seconds=self.settings.dispatch_lease_seconds)
                rows = self.store.claim_channel_due(self.owner, now, lease, room)
                claims += 1
                drained = not rows
                self._prepare(rows)
            elif max_claims is not None and claims >= max_claims:
                drained = True
            self._launch()
            if not self._flights:
                if drained and not self._waiting:
                    return
                continue
            self._land_some()

    def _finish(self) -> None:
        """Record every request in flight, hand back what was never sent, end the threads."""
        try:
            while self._flights:
                self._land_some()
        finally:
            self._pool.shutdown(wait=True)
            for flight in self._flights.values():  # only when recording itself failed
                flight.critical.close()
        self._release(self._waiting, "dispatch stopped before sending")
        self._waiting = []
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    # --- building --------------------------------------------------------------------
    def _prepare(self, rows: list[dict]) -> None:
        """Build each claimed row's request (payload, target, secret); rows that cannot be
        built fail with the reason."""
        subscribers = self.store.channel_subscribers(
            r["subscriber_id"] for r in rows if r["subscriber_id"] is not None
        )
        for row in rows:
            notification = self._notification(row["notification_id"])
            sub = subscribers.get(row["subscriber_id"])
            if notification is None or sub is None or not sub.get("target_url"):
                self._fail([row], "not sent: no channel subscription behind this delivery")
                continue
            try:
                payload = payloads.build(
                    row["channel"], notification, row["language"], row["timezone"],
                    settings=self.settings,
                )  # fmt: skip
            except Exception as exc:  # a payload bug must fail this row, not loop forever
                log.exception("building notification %s for %s failed",
                              row["notification_id"], row["channel"])  # fmt: skip
                self._fail([row], f"render error: {type(exc).__name__}: {exc}")
                continue
            url = sub["target_url"]
            self._waiting.append(
                _Flight(row, notification["kind"], url, hold_key(row["channel"], url), payload,
                        sub.get("webhook_secret"), self.clock())
            )  # fmt: skip

    def _notification(self, notification_id: int) -> dict | None:
        """The notification row, read once per run."""
        if notification_id not in self._notifications:
            self._notifications[notification_id] = self.store.get_notification(notification_id)
        return self._notifications[notification_id]

    # --- the senders -------------------------------------------------------------------
    def _launch(self) -> None:
        """Hand waiting rows to free senders: held hosts' rows go back until the hold ends, a
        host not yet opened in this run gets one request at a time."""
        concurrency = max(1, self.settings.channel_concurrency)
        busy = {f.host for f in self._flights.values()}
        for flight in list(self._waiting):
            if self.stop.is_set() or len(self._flights) >= concurrency:
                return
            until = self._holds.get(flight.host)
            if until is not None:
                self._waiting.remove(flight)
                self._release([flight], "target host rate limited (429)", due=until)
                continue
            if flight.host not in self._opened and flight.host in busy:
                continue
            self._waiting.remove(flight)
            # Right before the request: an unsubscribe or a pause since the claim still stops it.
            if not self.store.still_sending([flight.row["id"]], self.owner, flight.kind):
                self.store.mark_cancelled(
                    [flight.row["id"]], self.clock(), "subscriber no longer eligible", self.owner
                )
                continue
            flight.now = self.clock()
            flight.critical = ExitStack()
            # A forced exit waits until the answer is recorded (Shutdown.critical).
            flight.critical.enter_context(self.stop.critical())
            try:
                self._flights[self._pool.submit(self._fly, flight)] = flight
            except BaseException:
                flight.critical.close()
                raise
            busy.add(flight.host)

    def _fly(self, flight: _Flight) -> senders.ChannelResult | None:
        """On a sender thread: the request, unless a stop came first or no time is left."""
        if self.stop.is_set():
            return None
        timeout = self.stop.timeout(self.settings.channel_timeout_seconds)
        if timeout <= 0:
            return None
        return self.send(
            flight.row["channel"], flight.url, flight.payload, self.settings,
            secret=flight.secret, message_id=flight.message_id, now=flight.now, timeout=timeout,
        )  # fmt: skip

    def _land_some(self) -> None:
        done, _ = wait(self._flights, return_when=FIRST_COMPLETED)
        for future in done:
            self._land(self._flights.pop(future), future)

    def _land(self, flight: _Flight, future: Future) -> None:
        """Record one sender's answer (on the run's thread), then end its critical section."""
        try:
            try:
                result = future.result()
            except Exception as exc:
                # Not an answer from the target (a bug in building the request): this row
                # would fail the same way on every attempt, so it fails now, once, with the
                # reason; handing it back due now would claim it again at once, for ever.
                log.error("channel delivery %s: %s", flight.row["id"], exc, exc_info=exc)
                self._fail([flight.row], f"not sent: {type(exc).__name__}: {exc}")
                return
            if result is None:
                self._release([flight], "dispatch stopped before sending")
                return
            self._record(flight, result)
        finally:
            flight.critical.close()

    # --- outcomes ----------------------------------------------------------------------
    def _record(self, flight: _Flight, result: senders.ChannelResult) -> None:
        self.stats.requests += 1
        self.stats.outcomes[result.outcome] = self.stats.outcomes.get(result.outcome, 0) + 1
        handler = getattr(self, f"_on_{result.outcome}", None)
        if handler is None:
            log.error("unknown channel send outcome %r; retrying later", result.outcome)
            handler = self._on_transient
        now = self.clock()
        self._health = []
        # The attempt and the row's new state in one transaction, locking only that row.
        with self.store.write(exclusive=False):
            self.store.record_attempts(
                [(flight.row["id"], now, result.outcome, result.status_code, result.error,
                  flight.message_id)]
            )  # fmt: skip
            handler(flight, result, now)
        # Then the subscription's health, in a transaction of its own: a pause cancels the
        # subscription's other rows, which another worker may hold locked in its own outcome
        # transaction while it waits for the subscription row (a deadlock on PostgreSQL if
        # both were one transaction). A crash in between loses one count of a heuristic.
        for update in self._health:
            update()

    def _on_accepted(self, flight: _Flight, result, now: datetime) -> None:
        self._opened.add(flight.host)
        row, sub_id = flight.row, flight.row["subscriber_id"]
        self.stats.sent += self.store.mark_sent([row["id"]], now, flight.message_id, self.owner)
        if flight.kind == VERIFICATION:
            self._health.append(partial(self.store.mark_channel_verified, sub_id, now))
        else:
            self._health.append(partial(self._count, sub_id, True, None, now, False))

    def _on_rate_limited(self, flight: _Flight, result, now: datetime) -> None:
        # The host said when it takes requests again: this row and every other row we hold for
        # that host wait until then (not a failure of the target: no streak).
        seconds = result.retry_after_seconds
        until = now + timedelta(seconds=RATE_LIMIT_DEFAULT_SECONDS if seconds is None else seconds)
        self._holds[flight.host] = max(until, self._holds.get(flight.host, until))
        # Not counted as an attempt: a busy target must not use up the retries of its rows.
        self.store.mark_retry(
            [flight.row["id"]], now, until, "rate limited (429)", self.owner, attempted=False
        )
        self.stats.retried += 1
        held = [f for f in self._waiting if f.host == flight.host]
        self._waiting = [f for f in self._waiting if f.host != flight.host]
        self._release(held, "target host rate limited (429)", due=self._holds[flight.host])

    def _on_transient(self, flight: _Flight, result, now: datetime) -> None:
        self._retry(flight, result, now, result.error or "temporary error", duplicate=False)

    def _on_maybe_sent(self, flight: _Flight, result, now: datetime) -> None:
        # The request went out and the answer was lost: the target may have posted it. Sending
        # again is the lesser evil (at-least-once); the row is flagged, and the webhook-id
        # stays the same so a receiver can drop the copy.
        self._retry(flight, result, now, result.error or "response lost", duplicate=True)

    def _on_gone(self, flight: _Flight, result, now: datetime) -> None:
        self._permanent(flight, result, now)

    def _on_rejected(self, flight: _Flight, result, now: datetime) -> None:
        if flight.kind == VERIFICATION and flight.row["channel"] == "webhook":
            # The owner sees the signing secret when confirming, and the ping goes out at
            # once: a receiver refuses it (401/403) until the secret is configured. Retried
            # with backoff for the ping's attempts; only then does it count as not verified.
            reason = result.error or f"rejected (HTTP {result.status_code})"
            self._retry(flight, result, now, reason, duplicate=False)
            return
        self._permanent(flight, result, now)

    _on_unsafe = _on_gone

    def _retry(self, flight: _Flight, result, now: datetime, reason: str, *, duplicate: bool):
        row = flight.row
        if row["attempts"] + 1 >= MAX_ATTEMPTS:
            self._fail([row], f"retries exhausted: {reason}")
            self._failure(flight, f"retries exhausted: {reason}", now, permanent=False)
            return
        delay = backoff(row["attempts"], self.rng)
        if result.retry_after_seconds is not None:  # a 503's Retry-After (RFC 9110)
            delay = max(delay, timedelta(seconds=result.retry_after_seconds))
        self.store.mark_retry(
            [row["id"]], now, now + delay, reason, self.owner, possible_duplicate=duplicate
        )
        self.stats.retried += 1
        self._failure(flight, reason, now, permanent=False)

    def _permanent(self, flight: _Flight, result, now: datetime) -> None:
        reason = result.error or f"{result.outcome} (HTTP {result.status_code})"
        if result.status_code and str(result.status_code) not in reason:
            reason = f"{reason} (HTTP {result.status_code})"
        self._fail([flight.row], f"{result.outcome}: {reason}")
        self._failure(flight, f"{result.outcome}: {reason}", now, permanent=True)

    def _failure(self, flight: _Flight, reason: str, now: datetime, *, permanent: bool) -> None:
        """Count a failure against the subscription; a verification that failed for good
        pauses it at once (its owner is told the target did not accept the test message)."""
        sub_id = flight.row["subscriber_id"]
        if flight.kind == VERIFICATION:
            if permanent or reason.startswith("retries exhausted"):
                pause = partial(self.store.pause_channel, event="verification_failed")
                self._health.append(partial(pause, sub_id, reason, now))
            return
        self._health.append(partial(self._count, sub_id, False, reason, now, permanent))

    def _count(self, sub_id: int, ok: bool, reason, now: datetime, permanent: bool) -> None:
        self.store.record_channel_outcome(
            sub_id, ok, reason, now, permanent,
            pause_after_failures=self.settings.channel_pause_after_failures,
            pause_after_hours=self.settings.channel_pause_after_hours,
        )  # fmt: skip

    def _fail(self, rows: list[dict], reason: str) -> None:
        self.stats.failed += self.store.mark_failed(
            [r["id"] for r in rows], self.clock(), reason, self.owner
        )

    def _release(self, flights: list[_Flight], reason: str, due: datetime | None = None) -> None:
        """Hand claimed rows back unsent and unflagged, due at `due` (default: now)."""
        if not flights:
            return
        now = self.clock()
        self.store.mark_retry(
            [f.row["id"] for f in flights], now, due or now, reason, self.owner, attempted=False
        )
