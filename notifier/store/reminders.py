"""Store queries for reminders before a maintenance window opens (notifier/reminders.py)."""

from __future__ import annotations

from datetime import datetime


class ReminderQueries:
    def upcoming_maintenance(self, now: datetime, until: datetime) -> list[dict]:
        """Maintenance whose window opens after `now` and by `until`, soonest first:
        [{id, feed_id, scheduled_start_at, first_seen_at}]. `first_seen_at` is when the
        current window was first seen: the maintenance's first poll, or the detection of its
        latest rescheduled change (the rescheduled mail has just told readers the new time).

        Upcoming (issue 11 contract): not cancelled, a known start in the future, and its
        newest update (posted_at, then seq, as incident_updates orders them) still says
        'scheduled' - one that has started or completed early gets no reminder. One with a
        notification still in review waits: fan-out drops a notification once a newer one
        about the same maintenance went out, so a reminder would make the reviewed one vanish.
        """
        return self._query(
            "SELECT i.id, i.feed_id, i.scheduled_start_at, COALESCE((SELECT MAX(c.detected_at) "
            "FROM changes c WHERE c.incident_id = i.id AND c.type = 'rescheduled'), "
            "i.first_seen_at) AS first_seen_at FROM incidents i "
            "WHERE i.kind = 'maintenance' AND i.cancelled_at IS NULL "
            "AND i.scheduled_start_at > ? AND i.scheduled_start_at <= ? "
            "AND (SELECT u.status FROM updates u WHERE u.incident_id = i.id "
            "ORDER BY u.posted_at DESC, u.seq DESC LIMIT 1) = 'scheduled' "
            "AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.incident_id = i.id "
            "AND n.review_state = 'pending') "
            "ORDER BY i.scheduled_start_at, i.id",
            [now, until],
        )

    def reminder_offsets(self, incident_id: int, window_start: datetime) -> list[int]:
        """The offsets (minutes) already reminded of for this window start, smallest first."""
        rows = self._query(
            "SELECT offset_minutes FROM maintenance_reminders WHERE incident_id = ? "
            "AND window_start_at = ? ORDER BY offset_minutes",
            [incident_id, window_start],
        )
        return [r["offset_minutes"] for r in rows]

    def record_reminder(
        self, incident_id: int, offset_minutes: int, window_start: datetime, now: datetime
    ) -> int | None:
        """Claim the reminder `offset_minutes` before this window start: the new ledger row's
        id, or None when it, or one closer to the start, is recorded already (another worker
        got there first, or a late worker's nearer reminder made this one pointless).

        Call it inside the write transaction that queues the reminder: the exclusive lock
        orders the check before the insert, and UNIQUE (incident_id, offset_minutes,
        window_start_at) holds whatever happens.
        """
        row = self._query_one(
            "INSERT INTO maintenance_reminders (incident_id, offset_minutes, window_start_at, "
            "created_at) SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM maintenance_reminders "
            "WHERE incident_id = ? AND window_start_at = ? AND offset_minutes <= ?) "
            "ON CONFLICT (incident_id, offset_minutes, window_start_at) DO NOTHING RETURNING id",
            [incident_id, offset_minutes, window_start, now, incident_id, window_start,
             offset_minutes],
        )  # fmt: skip
        return None if row is None else row["id"]

    def set_reminder_notification(self, reminder_id: int, notification_id: int) -> None:
        self._execute(
            "UPDATE maintenance_reminders SET notification_id = ? WHERE id = ?",
            [notification_id, reminder_id],
        )
