"""Store queries for the private calendar feed (notifier/calendar_feed.py). Read only."""

from __future__ import annotations

from datetime import datetime

from .base import loads


class CalendarQueries:
    def calendar_maintenance(self, ends_after: datetime, cancelled_since: datetime) -> list[dict]:
        """Maintenance with a window that a calendar feed may list: not cancelled and ending
        after `ends_after`, or cancelled at or after `cancelled_since` (so calendar apps learn
        of the cancellation and remove the entry). Each row: the incident's columns
        (`components` decoded), the feed's `page_url` and `feed_title`, and `newest_status`
        and `newest_at` of its newest stored update (None without one). Ordered by window
        start, then id."""
        rows = self._query(
            "SELECT i.id, i.feed_id, i.key, i.title, i.link, i.components, "
            "i.scheduled_start_at, i.scheduled_end_at, i.window_sequence, i.cancelled_at, "
            "f.page_url, f.title AS feed_title, "
            "(SELECT u.status FROM updates u WHERE u.incident_id = i.id "
            " ORDER BY u.posted_at DESC, u.seq DESC LIMIT 1) AS newest_status, "
            "(SELECT MAX(u.posted_at) FROM updates u WHERE u.incident_id = i.id) AS newest_at "
            "FROM incidents i JOIN feeds f ON f.id = i.feed_id "
            "WHERE i.kind = 'maintenance' AND i.scheduled_start_at IS NOT NULL "
            "AND i.scheduled_end_at IS NOT NULL AND ((i.cancelled_at IS NULL "
            "AND i.scheduled_end_at > ?) OR i.cancelled_at >= ?) "
            "ORDER BY i.scheduled_start_at, i.id",
            [ends_after, cancelled_since],
        )
        for row in rows:
            row["components"] = loads(row["components"]) or []
        return rows

    def feed_choice_ids(self, feed_id: int) -> set[str]:
        """Every subscription choice of one page: its components and groups, and every group
        it ever had (group_memberships), as fan-out counts them for a maintenance that names
        no component (store.deliveries._audience_filter)."""
        rows = self._query(
            "SELECT id FROM components WHERE feed_id = ? "
            "UNION SELECT group_id AS id FROM group_memberships WHERE feed_id = ?",
            [feed_id, feed_id],
        )
        return {r["id"] for r in rows}
