"""Store queries for feeds, incidents, updates, recorded changes and the component catalogue."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from ..changes import Detection, IncidentDiff, NumberedUpdate, SeenIncident, entry_window
from .base import dumps, loads

_FEED_COLUMNS = (
    "id, url, title, page_url, etag, last_modified, body_hash, baseline_at, last_poll_at, "
    "last_success_at, last_error, last_error_at, consecutive_failures, components_synced_at"
)


class FeedQueries:
    # --- feed state ------------------------------------------------------------------
    def ensure_feed(self, url: str, now: datetime) -> dict:
        """The feed's state row, created on first use."""
        # Read first: the insert takes SQLite's write lock, which every poll (304s included)
        # would otherwise contend for with the other process polling or sending.
        row = self.get_feed(url)
        if row is not None:
            return row
        self._execute(
            "INSERT INTO feeds (url, created_at) VALUES (?, ?) ON CONFLICT (url) DO NOTHING",
            [url, now],
        )
        return self.get_feed(url)

    def get_feed(self, url: str) -> dict | None:
        return self._query_one(f"SELECT {_FEED_COLUMNS} FROM feeds WHERE url = ?", [url])

    def feed_by_id(self, feed_id: int) -> dict | None:
        return self._query_one(f"SELECT {_FEED_COLUMNS} FROM feeds WHERE id = ?", [feed_id])

    def list_feeds(self) -> list[dict]:
        return self._query(f"SELECT {_FEED_COLUMNS} FROM feeds ORDER BY id")

    def record_poll_success(
        self,
        feed_id: int,
        now: datetime,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        body_hash: str | None = None,
        title: str | None = None,
        page_url: str | None = None,
    ) -> None:
        """A poll that got a usable answer (200 or 304); keeps stored values when given None."""
        self._execute(
            "UPDATE feeds SET last_poll_at = ?, last_success_at = ?, consecutive_failures = 0, "
            "etag = COALESCE(?, etag), last_modified = COALESCE(?, last_modified), "
            "body_hash = COALESCE(?, body_hash), title = COALESCE(?, title), "
            "page_url = COALESCE(?, page_url) WHERE id = ?",
            [now, now, etag, last_modified, body_hash, title, page_url, feed_id],
        )
        self.log_poll(feed_id, now, "ok")

    def record_poll_error(self, feed_id: int, now: datetime, error: str) -> None:
        self._execute(
            "UPDATE feeds SET last_poll_at = ?, last_error = ?, last_error_at = ?, "
            "consecutive_failures = consecutive_failures + 1 WHERE id = ?",
            [now, error[:1000], now, feed_id],
        )
        self.log_poll(feed_id, now, "error")

    def record_feed_warning(self, feed_id: int, now: datetime, warning: str) -> None:
        """A problem inside an otherwise usable feed (skipped entry, unknown status word)."""
        self._execute(
            "UPDATE feeds SET last_error = ?, last_error_at = ? WHERE id = ?",
            [warning[:1000], now, feed_id],
        )
        self.log_poll(feed_id, now, "warning")

    def feed_has_incidents(self, feed_id: int) -> bool:
        """Whether any incident was ever stored from this feed (incidents are never deleted)."""
        return (
            self._query_one("SELECT 1 AS found FROM incidents WHERE feed_id = ? LIMIT 1", [feed_id])
            is not None
        )

    # --- detection state -------------------------------------------------------------
    def seen_incidents(self, feed_id: int, hashes: dict[str, str]) -> dict[str, SeenIncident]:
        """Stored incidents for these keys; updates loaded only where the content hash moved."""
        if not hashes:
            return {}
        keys = list(hashes)
        marks = ",".join("?" * len(keys))
        rows = self._query(
            f"SELECT id, key, title, content_hash, scheduled_start_at, scheduled_end_at, "
            f"cancelled_at FROM incidents WHERE feed_id = ? AND key IN ({marks})",
            [feed_id, *keys],
        )
        changed = [r["id"] for r in rows if r["content_hash"] != hashes[r["key"]]]
        updates = self._updates_by_incident(changed)
        return {
            r["key"]: SeenIncident(
                id=r["id"],
                key=r["key"],
                title=r["title"],
                content_hash=r["content_hash"],
                updates=updates.get(r["id"]),
                window=(r["scheduled_start_at"], r["scheduled_end_at"]),
                cancelled=r["cancelled_at"] is not None,
            )
            for r in rows
        }

    def _updates_by_incident(self, incident_ids: Sequence[int]) -> dict[int, tuple]:
        if not incident_ids:
            return {}
        marks = ",".join("?" * len(incident_ids))
        rows = self._query(
            f"SELECT incident_id, status, posted_at, seq, text, gone_at FROM updates "
            f"WHERE incident_id IN ({marks}) ORDER BY posted_at DESC, seq DESC",
            list(incident_ids),
        )
        grouped: dict[int, list] = {i: [] for i in incident_ids}
        for r in rows:
            grouped[r["incident_id"]].append(
                NumberedUpdate(
                    r["status"], r["posted_at"], r["seq"], r["text"], r["gone_at"] is not None
                )
            )
        return {k: tuple(v) for k, v in grouped.items()}

    def save_detection(
        self, feed_id: int, detection: Detection, now: datetime, *, baseline: bool
    ) -> list[dict]:
        """Write a detection; returns the change rows recorded (none for a baseline)."""
        recorded = []
        for diff in detection.diffs:
            if not diff.changed:
                continue
            incident_id = self._save_incident(feed_id, diff, now)
            inserted = self._save_updates(incident_id, diff, now)
            recorded.extend(self._record_update_change(feed_id, incident_id, diff, inserted, now))
            moved = diff.window_event
            if moved is not None:
                change = self.record_window_change(
                    feed_id, incident_id, moved.key, moved.type, moved.status,
                    moved.window, moved.previous_window, now,
                )  # fmt: skip
                recorded.extend([change] if change else [])
        if baseline:
            self._execute(
                "UPDATE feeds SET baseline_at = COALESCE(baseline_at, ?) WHERE id = ?",
                [now, feed_id],
            )
        return recorded

    def _record_update_change(
        self, feed_id: int, incident_id: int, diff: IncidentDiff, inserted: dict, now: datetime
    ) -> list[dict]:
        """The new_incident / new_update change of a diff, as recorded (none when not news)."""
        recorded = []
        event = diff.event
        if event is not None:
            newest = inserted[diff.new_updates[0].ident]
            row = self._query_one(
                "INSERT INTO changes (feed_id, incident_id, update_id, type, status, posted_at, "
                "count, detected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (update_id) DO NOTHING RETURNING id",
                [
                    feed_id,
                    incident_id,
                    newest,
                    event.type,
                    event.status,
                    event.at,
                    event.count,
                    now,
                ],
            )
            if row is not None:
                recorded.append(
                    {
                        "id": row["id"],
                        "incident_id": incident_id,
                        "key": event.key,
                        "type": event.type,
                        "status": event.status,
                        "posted_at": event.at,
                        "count": event.count,
                    }
                )
        return recorded

    def record_window_change(
        self,
        feed_id: int,
        incident_id: int,
        key: str,
        kind: str,
        status: str,
        window: tuple | None,
        previous: tuple,
        now: datetime,
    ) -> dict | None:
        """Record a `rescheduled` (window: the new (start, end)) or `cancelled` (window None)
        change of a maintenance; the caller holds the feed's lock (feed_lock) or the write
        transaction of a detection.

        Bumps incidents.window_sequence (the iCalendar SEQUENCE, RFC 5545 3.8.7.4), moves the
        stored window (rescheduled) or sets cancelled_at (cancelled), and inserts the change
        with that sequence: UNIQUE (incident_id, window_sequence), so a second recorder of the
        same change inserts nothing. Returns the change as save_detection does (plus "window"
        and "previous_window"), or None when nothing was recorded.
        """
        start, end = window if window is not None else (None, None)
        row = self._query_one(
            "UPDATE incidents SET window_sequence = window_sequence + 1, "
            "scheduled_start_at = COALESCE(?, scheduled_start_at), "
            "scheduled_end_at = COALESCE(?, scheduled_end_at), "
            "cancelled_at = CASE WHEN ? = 'cancelled' THEN ? ELSE cancelled_at END "
            "WHERE id = ? AND cancelled_at IS NULL RETURNING window_sequence",
            [start, end, kind, now, incident_id],
        )
        if row is None:  # cancelled already: nothing moves or ends twice
            return None
        change = self._query_one(
            "INSERT INTO changes (feed_id, incident_id, update_id, type, status, posted_at, "
            "count, detected_at, window_start_at, window_end_at, previous_start_at, "
            "previous_end_at, window_sequence) VALUES (?, ?, NULL, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (incident_id, window_sequence) DO NOTHING RETURNING id",
            [feed_id, incident_id, kind, status, now, now, start, end, *previous,
             row["window_sequence"]],
        )  # fmt: skip
        if change is None:
            return None
        return {
            "id": change["id"],
            "incident_id": incident_id,
            "key": key,
            "type": kind,
            "status": status,
            "posted_at": now,
            "count": 0,
            "window": window,
            "previous_window": tuple(previous),
        }

    def _save_incident(self, feed_id: int, diff: IncidentDiff, now: datetime) -> int:
        e = diff.entry
        if diff.seen is None:
            row = self._query_one(
                "INSERT INTO incidents (feed_id, key, kind, title, link, scheduled_start_at, "
                "scheduled_end_at, content_hash, time_doubt, first_seen_at, last_changed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                [
                    feed_id,
                    e.key,
                    e.kind,
                    e.title,
                    e.link,
                    e.scheduled_start,
                    e.scheduled_end,
                    e.content_hash,
                    _doubt(e),
                    now,
                    now,
                ],
            )
            return row["id"]
        # A moved window is written by record_window_change; otherwise only the parts the
        # entry states fill in what is stored (never the RSS <pubDate> as a start).
        start, end = (None, None) if diff.moved_to else entry_window(e)
        self._execute(
            "UPDATE incidents SET kind = ?, title = ?, link = ?, "
            "scheduled_start_at = COALESCE(?, scheduled_start_at), "
            "scheduled_end_at = COALESCE(?, scheduled_end_at), content_hash = ?, time_doubt = ?, "
            "last_changed_at = COALESCE(?, last_changed_at), edited_at = COALESCE(?, edited_at) "
            "WHERE id = ?",
            [
                e.kind,
                e.title,
                e.link,
                start,
                end,
                e.content_hash,
                _doubt(e),
                now if diff.new_updates else None,
                now
                if (diff.edited_updates or diff.retimed_updates or diff.title_changed)
                else None,
                diff.seen.id,
            ],
        )
        return diff.seen.id

    def _save_updates(self, incident_id: int, diff: IncidentDiff, now: datetime) -> dict:
        inserted = {}
        if diff.retimed_updates:  # first: a new post may take a time a moved one leaves
            # The same rows (their change records point at them) move to their new times, in
            # two steps: a negative seq first, so no move collides with a row not moved yet.
            where = "WHERE incident_id = ? AND posted_at = ? AND status = ? AND seq = ?"
            pairs = list(enumerate(diff.retimed_updates, 1))
            self._executemany(
                f"UPDATE updates SET seq = ? {where}",
                [[-i, incident_id, old.at, old.status, old.seq] for i, (old, _) in pairs],
            )
            self._executemany(
                "UPDATE updates SET posted_at = ?, seq = ?, text = ?, edited_at = ? "
                "WHERE incident_id = ? AND status = ? AND seq = ?",
                [[new.at, new.seq, new.text, now, incident_id, old.status, -i]
                 for i, (old, new) in pairs],
            )  # fmt: skip
            self._executemany(
                "UPDATE changes SET posted_at = ? WHERE update_id IN (SELECT id FROM updates "
                f"{where})",
                [[new.at, incident_id, new.at, new.status, new.seq] for _, (_, new) in pairs],
            )
        for u in diff.new_updates:
            row = self._query_one(
                "INSERT INTO updates (incident_id, posted_at, status, seq, text, first_seen_at) "
                "VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (incident_id, posted_at, status, seq) DO NOTHING RETURNING id",
                [incident_id, u.at, u.status, u.seq, u.text, now],
            )
            if row is not None:
                inserted[u.ident] = row["id"]
        self._executemany(
            "UPDATE updates SET text = ?, edited_at = ? "
            "WHERE incident_id = ? AND posted_at = ? AND status = ? AND seq = ?",
            [[u.text, now, incident_id, u.at, u.status, u.seq] for u in diff.edited_updates],
        )
        # Which stored posts the feed no longer shows, and which came back: only a post that
        # vanishes in the same parse as another appears can be the same post re-timed.
        marks = [(now, u) for u in diff.vanished_updates] + [
            (None, u) for u in diff.returned_updates
        ]
        self._executemany(
            "UPDATE updates SET gone_at = ? "
            "WHERE incident_id = ? AND posted_at = ? AND status = ? AND seq = ?",
            [[gone, incident_id, u.at, u.status, u.seq] for gone, u in marks],
        )
        return inserted

    # --- incidents and changes for later stages ------------------------------------------
    def get_incident(self, incident_id: int) -> dict | None:
        row = self._query_one("SELECT * FROM incidents WHERE id = ?", [incident_id])
        if row is not None:
            row["components"] = loads(row["components"])
            row["time_doubt"] = loads(row["time_doubt"])
        return row

    def incident_updates(self, incident_id: int) -> list[dict]:
        """An incident's stored updates, newest first."""
        return self._query(
            "SELECT id, posted_at, status, seq, text, first_seen_at, edited_at FROM updates "
            "WHERE incident_id = ? ORDER BY posted_at DESC, seq DESC",
            [incident_id],
        )

    def list_changes(self, *, unprocessed_only: bool = False, limit: int = 500) -> list[dict]:
        where = "WHERE c.processed_at IS NULL" if unprocessed_only else ""
        return self._query(
            "SELECT c.id, c.feed_id, c.incident_id, c.update_id, c.type, c.status, c.posted_at, "
            "c.count, c.detected_at, c.processed_at, c.window_start_at, c.window_end_at, "
            "c.previous_start_at, c.previous_end_at, c.window_sequence, i.key, i.kind, i.title "
            "FROM changes c "
            f"JOIN incidents i ON i.id = c.incident_id {where} ORDER BY c.id LIMIT ?",
            [limit],
        )

    def mark_change_processed(self, change_id: int, now: datetime) -> None:
        self._execute(
            "UPDATE changes SET processed_at = ? WHERE id = ? AND processed_at IS NULL",
            [now, change_id],
        )

    # --- JSON API enrichment ---------------------------------------------------------
    def incidents_missing_enrichment(self, feed_id: int, since: datetime) -> list[dict]:
        return self._query(
            "SELECT id, key, last_changed_at FROM incidents WHERE feed_id = ? "
            "AND last_changed_at >= ? "
            "AND (enriched_at IS NULL OR enriched_at < last_changed_at)",
            [feed_id, since],
        )

    def open_maintenances(self, feed_id: int, since: datetime) -> list[dict]:
        """The feed's maintenances that are not cancelled, whose newest shown update is not
        completed (or that have none) and whose window ends (or, without one, which last
        changed) after `since`: id, key, scheduled_start_at, scheduled_end_at, api_listed_at,
        time_doubt (as stored), status (the newest update's, None without one). A page that
        never marks a maintenance completed does not keep it open for ever."""
        return self._query(
            "SELECT * FROM (SELECT i.id, i.key, i.scheduled_start_at, i.scheduled_end_at, "
            "i.api_listed_at, i.time_doubt, (SELECT u.status FROM updates u "
            "WHERE u.incident_id = i.id AND u.gone_at IS NULL "
            "ORDER BY u.posted_at DESC, u.seq DESC LIMIT 1) AS status "
            "FROM incidents i WHERE i.feed_id = ? AND i.kind = 'maintenance' "
            "AND i.cancelled_at IS NULL "
            "AND COALESCE(i.scheduled_end_at, i.last_changed_at) > ?) m "
            "WHERE status IS NULL OR status IN ('scheduled', 'in_progress', 'verifying') "
            "ORDER BY id",
            [feed_id, since],
        )

    def correct_window(self, incident_id: int, window: tuple) -> None:
        """Store a maintenance's window as a better source states it; no change, no event."""
        self._execute(
            "UPDATE incidents SET scheduled_start_at = COALESCE(?, scheduled_start_at), "
            "scheduled_end_at = COALESCE(?, scheduled_end_at) WHERE id = ?",
            [*window, incident_id],
        )

    def mark_api_listed(self, incident_ids: Sequence[int], now: datetime) -> None:
        """A JSON API answer named these incidents at `now`."""
        self._executemany(
            "UPDATE incidents SET api_listed_at = ? WHERE id = ?", [[now, i] for i in incident_ids]
        )

    def set_incident_enrichment(
        self, incident_id: int, components: list[str], impact: str | None, now: datetime
    ) -> None:
        self._execute(
            "UPDATE incidents SET components = ?, impact = ?, enriched_at = ? WHERE id = ?",
            [dumps(sorted(components)), impact, now, incident_id],
        )

    def replace_components(self, feed_id: int, components: Iterable[dict], now: datetime) -> int:
        """Upsert the page's component catalogue; components gone from the page are dropped."""
        rows = list(components)
        with self.write():
            self._executemany(
                "INSERT INTO components (id, feed_id, name, description, group_id, is_group, "
                "position, status, only_show_if_degraded, showcase, synced_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "feed_id = excluded.feed_id, name = excluded.name, "
                "description = excluded.description, group_id = excluded.group_id, "
                "is_group = excluded.is_group, position = excluded.position, "
                "status = excluded.status, only_show_if_degraded = excluded.only_show_if_degraded, "
                "showcase = excluded.showcase, synced_at = excluded.synced_at",
                [
                    [
                        c["id"],
                        feed_id,
                        c["name"],
                        c.get("description"),
                        c.get("group_id"),
                        bool(c.get("group")),
                        c.get("position") or 0,
                        c.get("status"),
                        bool(c.get("only_show_if_degraded")),
                        bool(c.get("showcase", True)),
                        now,
                    ]
                    for c in rows
                ],
            )
            self._execute(
                "DELETE FROM components WHERE feed_id = ? AND synced_at < ?", [feed_id, now]
            )
            self._remember_group_members(feed_id, now)
            self._execute("UPDATE feeds SET components_synced_at = ? WHERE id = ?", [now, feed_id])
        return len(rows)

    def _remember_group_members(self, feed_id: int, now: datetime) -> None:
        """Record every (group, member) pair of the page as it is now; pairs the page dropped
        stay as they were (a group choice keeps covering them, notifier/subscriptions.py)."""
        self._execute(
            "INSERT INTO group_memberships (group_id, component_id, feed_id, group_name, "
            "component_name, first_seen_at, last_seen_at) "
            "SELECT g.id, m.id, m.feed_id, g.name, m.name, ?, ? FROM components m "
            "JOIN components g ON g.id = m.group_id "
            "WHERE m.feed_id = ? AND g.is_group = 1 AND m.is_group = 0 "
            "ON CONFLICT (group_id, component_id) DO UPDATE SET feed_id = excluded.feed_id, "
            "group_name = excluded.group_name, component_name = excluded.component_name, "
            "last_seen_at = excluded.last_seen_at",
            [now, now, feed_id],
        )

    def list_components(self, feed_id: int | None = None) -> list[dict]:
        """The cached catalogue, in page order (groups and their members)."""
        where, params = ("WHERE feed_id = ?", [feed_id]) if feed_id is not None else ("", [])
        return self._query(
            "SELECT id, feed_id, name, description, group_id, is_group, position, status "
            f"FROM components {where} ORDER BY feed_id, position, name",
            params,
        )


def _doubt(entry) -> str | None:
    """The entry's time doubts as stored: a JSON list, NULL when the parser was sure."""
    return dumps(list(entry.time_doubts)) if entry.time_doubts else None
