"""The worker's shutdown budget: the stop flag every job checks, and the deadline that every
blocking step (a feed fetch, an enrichment request, a SendGrid request) takes its timeout from.

Heroku sends SIGTERM, then SIGKILL 30 s later (Heroku Dev Center, "Dynos", Graceful shutdown
with SIGTERM). The worker gives itself BUDGET_SECONDS (the setting SHUTDOWN_BUDGET_SECONDS, for
platforms with another grace period: it less 5 s): after SIGTERM no new work starts, work in
flight must end RESERVE_SECONDS before the exit deadline, and the reserve is what the database
writes after it (a SendGrid 202 recorded as sent, the lease released) may use.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

BUDGET_SECONDS = 25.0  # SIGTERM to exit; 5 s short of Heroku's SIGKILL
RESERVE_SECONDS = 5.0  # the end of the budget kept for database writes and clean-up


class Shutdown(threading.Event):
    """A stop flag (a threading.Event) that starts the budget's clock when it is set."""

    def __init__(
        self,
        budget_seconds: float = BUDGET_SECONDS,
        reserve_seconds: float = RESERVE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__()
        self.budget_seconds = budget_seconds
        self.reserve_seconds = reserve_seconds
        self.clock = clock  # monotonic seconds
        self.exit_at: float | None = None  # when the process must be gone (monotonic)
        self._critical = 0
        self._idle = threading.Condition()

    @classmethod
    def configured(cls, settings) -> Shutdown:
        """A stop flag with the budget SHUTDOWN_BUDGET_SECONDS sets (settings.Settings)."""
        return cls(budget_seconds=settings.shutdown_budget_seconds)

    def set(self) -> None:
        """Raise the flag; the first call starts the budget."""
        if self.exit_at is None:
            self.exit_at = self.clock() + self.budget_seconds
        super().set()

    @property
    def steps_end_at(self) -> float | None:
        """When blocking steps must have ended (monotonic); None before a stop."""
        return None if self.exit_at is None else self.exit_at - self.reserve_seconds

    def timeout(self, cap: float, until: float | None = None) -> float:
        """Seconds the next blocking step may take; 0.0 means: do not start it.

        At most `cap` (the step's own timeout), never past `until` (the caller's own monotonic
        deadline, e.g. the poll's), never past `steps_end_at` after a stop, and never longer
        than the budget less the reserve: a step that starts just before SIGTERM still ends in
        time.
        """
        now = self.clock()
        limit = min(cap, self.budget_seconds - self.reserve_seconds)
        for end in (until, self.steps_end_at):
            if end is not None:
                limit = min(limit, end - now)
        return max(0.0, limit)

    def exit_in(self) -> float | None:
        """Seconds left until the exit deadline (never negative); None before a stop."""
        return None if self.exit_at is None else max(0.0, self.exit_at - self.clock())

    @contextmanager
    def critical(self) -> Iterator[None]:
        """Mark work a forced exit must wait for: a request SendGrid may have accepted, and the
        database write that records its answer."""
        with self._idle:
            self._critical += 1
        try:
            yield
        finally:
            with self._idle:
                self._critical -= 1
                self._idle.notify_all()

    def wait_critical(self, timeout: float) -> bool:
        """Wait until no critical section runs; False when one still runs after `timeout`."""
        with self._idle:
            return self._idle.wait_for(lambda: self._critical == 0, timeout)
