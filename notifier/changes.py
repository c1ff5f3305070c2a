"""Change detection: which updates in a parsed feed are new. Pure values in, values out.

An update is identified by its (time, status) pair and its occurrence number among equal pairs
(two posts in the same minute with the same status are two updates). `updated` timestamps and
content bytes move on edits and template changes; they are never triggers. Text edits of an
existing update and renamed titles are stored but are not events. Entries that leave the feed
are not events either.

A stored update whose time changed is re-timed, not new: when a parse finds an update that is
not stored and a stored one of the same entry is gone, the two are one post if they have the
same status and the same text, or if what is left unpaired on both sides has the same statuses
in the same order (the whole entry read with another offset or year: a status page editing a
post's time, or a parser that now reads an ambiguous zone right). Re-timed updates are stored
with their new time and never mailed: their readers already had that post.
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
    # (as stored, as now parsed): one post whose time changed; stored with the new time
    retimed_updates: tuple[tuple[NumberedUpdate, NumberedUpdate], ...] = ()
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
            or bool(
                self.new_updates
                or self.edited_updates
                or self.retimed_updates
                or self.title_changed
            )
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
    current = {u.ident for u in numbered}
    gone = tuple(u for u in seen.updates if u.ident not in current)
    new, retimed = _pair_retimed(new, gone)
    return IncidentDiff(
        entry,
        seen,
        numbered,
        new_updates=new,
        edited_updates=edited,
        retimed_updates=retimed,
        title_changed=seen.title != entry.title,
        silent=silent,
    )


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def _pair_retimed(
    new: tuple[NumberedUpdate, ...], gone: tuple[NumberedUpdate, ...]
) -> tuple[tuple[NumberedUpdate, ...], tuple[tuple[NumberedUpdate, NumberedUpdate], ...]]:
    """(really new updates, (stored, re-timed) pairs); both inputs newest first."""
    if not new or not gone:
        return new, ()
    left = list(gone)
    pairs, unpaired = [], []
    for u in new:
        match = next((g for g in left if g.status == u.status and _same_text(g.text, u.text)), None)
        if match is None:
            unpaired.append(u)
        else:
            left.remove(match)
            pairs.append((match, u))
    if unpaired and [u.status for u in unpaired] == [g.status for g in left]:
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
