"""Change detection: which updates in a parsed feed are new. Pure values in, values out.

An update is identified by its (time, status) pair and its occurrence number among equal pairs
(two posts in the same minute with the same status are two updates). `updated` timestamps and
content bytes move on edits and template changes; they are never triggers. Text edits of an
existing update and renamed titles are stored but are not events. Entries that leave the feed
are not events either.

A stored update whose time changed is re-timed, not new (a status page editing a post's time,
or a parser that now reads an ambiguous zone or a year right): a parsed update that is not
stored pairs with a stored one that vanished from the entry in this same parse (one already
gone at an earlier poll never pairs: a post deleted then written again later is new), when the
time moved by what a misread zone or year explains (a multiple of 15 minutes, within 26 hours,
or a year give or take that), and either status and text are the same, or at least two posts
are left unpaired on both sides with the same statuses in the same order, all moved by the
same amount. Re-timed updates are stored with their new time and never mailed. When in doubt
an update is new: a missed incident mail is worse than a second one.

A maintenance window that moves is an event of its own, `rescheduled` (issue 11): the entry's
window (its "THIS IS A SCHEDULED EVENT" banner, or the end in RSS <maintenanceEndDate>) differs
from the window stored for it, in a part both know (see moved_window). The stored window is
the one every source (feed, JSON API in notifier/enrich.py) compares with and writes, so the
same move seen by both is one event. Only a maintenance still open (its newest status is not
completed) and not cancelled can be rescheduled; the first window seen is part of
`new_incident`, and a window that merely disappears (the banner goes when the maintenance
starts, Statuspage behaviour) is no change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .feed import Entry, Update


@dataclass(frozen=True)
class NumberedUpdate:
    status: str
    at: datetime
    seq: int
    text: str
    gone: bool = field(default=False, compare=False)  # stored, and missing from the feed since

    @property
    def ident(self) -> tuple[datetime, str, int]:
        return (self.at, self.status, self.seq)


@dataclass(frozen=True)
class SeenIncident:
    """What the store knows about one incident; `updates` is None when not loaded."""

    id: int
    key: str
    title: str
    content_hash: str | None
    updates: tuple[NumberedUpdate, ...] | None = None
    window: tuple[datetime | None, datetime | None] = (None, None)  # as stored (UTC)
    cancelled: bool = False


@dataclass(frozen=True)
class Event:
    key: str
    type: str  # new_incident | new_update
    status: str
    at: datetime
    count: int


@dataclass(frozen=True)
class WindowEvent:
    """A maintenance window that moved (`rescheduled`) or was called off (`cancelled`).

    `window` is the new (start, end) in UTC, None for cancelled; `previous_window` the one it
    replaces (for cancelled: the window that was cancelled). `status` is the maintenance's
    current status (its newest update's), "cancelled" for a cancellation.
    """

    key: str
    type: str  # rescheduled | cancelled
    status: str
    window: tuple[datetime | None, datetime | None] | None
    previous_window: tuple[datetime | None, datetime | None]


# A maintenance whose newest status is one of these is upcoming or running (Statuspage's
# maintenance statuses: scheduled, in progress, verifying, completed).
OPEN_MAINTENANCE = frozenset({"scheduled", "in_progress", "verifying"})


def moved_window(
    stored: tuple[datetime | None, datetime | None],
    offered: tuple[datetime | None, datetime | None],
) -> tuple[datetime | None, datetime | None] | None:
    """The window after a move, when `offered` moves `stored`; None when it does not.

    Both are (start, end) in UTC, either part None when unknown. Only a part known on both
    sides can move: a part the source does not state (a banner gone once the maintenance
    started, an RSS end date without a start) keeps the stored value, and a part stored for the
    first time is not a move. The result keeps the stored value for parts `offered` lacks.
    """
    moved = any(
        new is not None and old is not None and new != old
        for old, new in zip(stored, offered, strict=True)
    )
    if not moved:
        return None
    return tuple(new if new is not None else old for old, new in zip(stored, offered, strict=True))


def entry_window(entry: Entry) -> tuple[datetime | None, datetime | None]:
    """The window parts an entry states: both from a banner, only the end from an RSS
    <maintenanceEndDate> (its start is the <pubDate>, which is not the window's once the
    maintenance started)."""
    if entry.window_from == "banner":
        return (entry.scheduled_start, entry.scheduled_end)
    if entry.window_from == "end_date":
        return (None, entry.scheduled_end)
    return (None, None)


def current_status(updates) -> str:
    """The newest update's status ("scheduled" for a maintenance without any yet)."""
    return updates[0].status if updates else "scheduled"


@dataclass(frozen=True)
class IncidentDiff:
    entry: Entry
    seen: SeenIncident | None
    updates: tuple[NumberedUpdate, ...]  # all of the entry's updates, newest first
    new_updates: tuple[NumberedUpdate, ...] = ()  # newest first
    edited_updates: tuple[NumberedUpdate, ...] = ()
    # (as stored, as now parsed): one post whose time changed; stored with the new time
    retimed_updates: tuple[tuple[NumberedUpdate, NumberedUpdate], ...] = ()
    vanished_updates: tuple[NumberedUpdate, ...] = ()  # stored, missing from this parse
    returned_updates: tuple[NumberedUpdate, ...] = ()  # marked gone earlier, back now
    title_changed: bool = False
    silent: bool = False  # baseline: store, never report
    moved_to: tuple[datetime | None, datetime | None] | None = None  # the window after a move

    @property
    def window_event(self) -> WindowEvent | None:
        """The `rescheduled` event of this diff, when the entry moved the stored window."""
        if self.silent or self.moved_to is None or self.seen is None:
            return None
        return WindowEvent(
            key=self.entry.key,
            type="rescheduled",
            status=current_status(self.updates),
            window=self.moved_to,
            previous_window=self.seen.window,
        )

    @property
    def event(self) -> Event | None:
        if self.silent or not self.new_updates:
            return None
        newest = self.new_updates[0]
        return Event(
            key=self.entry.key,
            type="new_incident" if self.seen is None else "new_update",
            status=newest.status,
            at=newest.at,
            count=len(self.new_updates),
        )

    @property
    def changed(self) -> bool:
        """Anything to write: a new incident, new updates, edits, or a new content hash."""
        return (
            self.seen is None
            or bool(
                self.new_updates
                or self.edited_updates
                or self.retimed_updates
                or self.vanished_updates
                or self.returned_updates
                or self.title_changed
            )
            or self.seen.content_hash != self.entry.content_hash
        )


@dataclass(frozen=True)
class Detection:
    diffs: tuple[IncidentDiff, ...] = field(default=())

    @property
    def events(self) -> list[Event | WindowEvent]:
        """Per diff its update event, then its window event (each when there is one)."""
        return [e for d in self.diffs for e in (d.event, d.window_event) if e is not None]


def number_updates(updates: Iterable[Update]) -> tuple[NumberedUpdate, ...]:
    """Give each update its occurrence number, counted from the oldest, newest-first order kept.

    Counting from the oldest keeps existing numbers stable when a new post lands in the same
    minute with the same status as an older one.
    """
    counts: Counter = Counter()
    numbered = []
    for update in reversed(tuple(updates)):
        pair = (update.at, update.status)
        numbered.append(NumberedUpdate(update.status, update.at, counts[pair], update.text))
        counts[pair] += 1
    return tuple(reversed(numbered))


def diff_entry(entry: Entry, seen: SeenIncident | None, silent: bool = False) -> IncidentDiff:
    """Compare one entry with what was stored for its key."""
    numbered = number_updates(entry.updates)
    if seen is None:
        return IncidentDiff(entry, None, numbered, new_updates=numbered, silent=silent)
    if seen.content_hash == entry.content_hash:
        return IncidentDiff(entry, seen, numbered, silent=silent)
    if seen.updates is None:
        raise ValueError(f"updates of {seen.key} were not loaded but its content changed")
    known = {u.ident: u.text for u in seen.updates}
    new = tuple(u for u in numbered if u.ident not in known)
    edited = tuple(u for u in numbered if u.ident in known and known[u.ident] != u.text)
    current = {u.ident for u in numbered}
    vanishing = tuple(u for u in seen.updates if u.ident not in current and not u.gone)
    new, retimed = _pair_retimed(new, vanishing)
    moved = {old.ident for old, _new in retimed}
    return IncidentDiff(
        entry,
        seen,
        numbered,
        new_updates=new,
        edited_updates=edited,
        retimed_updates=retimed,
        vanished_updates=tuple(u for u in vanishing if u.ident not in moved),
        returned_updates=tuple(u for u in seen.updates if u.gone and u.ident in current),
        title_changed=seen.title != entry.title,
        silent=silent,
        moved_to=_moved_to(entry, seen, numbered),
    )


def _moved_to(entry: Entry, seen: SeenIncident, numbered) -> tuple | None:
    """The window an open, uncancelled maintenance moved to in this entry, or None."""
    if entry.kind != "maintenance" or seen.cancelled:
        return None
    if current_status(numbered) not in OPEN_MAINTENANCE:
        return None
    return moved_window(seen.window, entry_window(entry))


QUARTER_HOUR = timedelta(minutes=15)
MAX_ZONE_SHIFT = timedelta(hours=26)  # UTC-12 read as UTC+14, or the other way round
YEAR_SHIFTS = (timedelta(days=365), timedelta(days=366))


def plausible_shift(delta: timedelta) -> bool:
    """Whether a post's time could have moved by `delta` through a misread zone or year."""
    if not delta or delta % QUARTER_HOUR:
        return False
    size = abs(delta)
    return size <= MAX_ZONE_SHIFT or any(abs(size - y) <= MAX_ZONE_SHIFT for y in YEAR_SHIFTS)


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def _pair_retimed(
    new: tuple[NumberedUpdate, ...], vanishing: tuple[NumberedUpdate, ...]
) -> tuple[tuple[NumberedUpdate, ...], tuple[tuple[NumberedUpdate, NumberedUpdate], ...]]:
    """(really new updates, (stored, re-timed) pairs); both inputs newest first."""
    if not new or not vanishing:
        return new, ()
    left = list(vanishing)
    pairs, unpaired = [], []
    for u in new:
        match = next(
            (
                g
                for g in left
                if g.status == u.status
                and _same_text(g.text, u.text)
                and plausible_shift(u.at - g.at)
            ),
            None,
        )
        if match is None:
            unpaired.append(u)
        else:
            left.remove(match)
            pairs.append((match, u))
    if (
        len(unpaired) >= 2
        and [u.status for u in unpaired] == [g.status for g in left]
        and len({u.at - g.at for u, g in zip(unpaired, left, strict=True)}) == 1
        and plausible_shift(unpaired[0].at - left[0].at)
    ):
        pairs.extend(zip(left, unpaired, strict=True))
        unpaired = []
    return tuple(unpaired), tuple(pairs)


def detect_changes(
    entries: Iterable[Entry], seen: Mapping[str, SeenIncident], baseline: bool = False
) -> Detection:
    """Diff every entry (feeds are only roughly ordered, so all are scanned).

    With `baseline` (the first poll of a feed) everything is stored and nothing is reported.
    """
    return Detection(tuple(diff_entry(e, seen.get(e.key), silent=baseline) for e in entries))
