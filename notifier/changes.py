"""Change detection: which updates in a parsed feed are new. Pure values in, values out.

An update is identified by its (time, status) pair and its occurrence number among equal pairs
(two posts in the same minute with the same status are two updates). `updated` timestamps and
content bytes move on edits and template changes; they are never triggers. Text edits of an
existing update and renamed titles are stored but are not events. Entries that leave the feed
are not events either.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from .feed import Entry, Update


@dataclass(frozen=True)
class NumberedUpdate:
    status: str
    at: datetime
    seq: int
    text: str

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


@dataclass(frozen=True)
class Event:
    key: str
    type: str  # new_incident | new_update
    status: str
    at: datetime
    count: int


@dataclass(frozen=True)
class IncidentDiff:
    entry: Entry
    seen: SeenIncident | None
    updates: tuple[NumberedUpdate, ...]  # all of the entry's updates, newest first
    new_updates: tuple[NumberedUpdate, ...] = ()  # newest first
    edited_updates: tuple[NumberedUpdate, ...] = ()
    title_changed: bool = False
    silent: bool = False  # baseline: store, never report

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
            or bool(self.new_updates or self.edited_updates or self.title_changed)
            or self.seen.content_hash != self.entry.content_hash
        )


@dataclass(frozen=True)
class Detection:
    diffs: tuple[IncidentDiff, ...] = field(default=())

    @property
    def events(self) -> list[Event]:
        return [d.event for d in self.diffs if d.event is not None]


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
    return IncidentDiff(
        entry,
        seen,
        numbered,
        new_updates=new,
        edited_updates=edited,
        title_changed=seen.title != entry.title,
        silent=silent,
    )


def detect_changes(
    entries: Iterable[Entry], seen: Mapping[str, SeenIncident], baseline: bool = False
) -> Detection:
    """Diff every entry (feeds are only roughly ordered, so all are scanned).

    With `baseline` (the first poll of a feed) everything is stored and nothing is reported.
    """
    return Detection(tuple(diff_entry(e, seen.get(e.key), silent=baseline) for e in entries))
