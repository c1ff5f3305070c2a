"""Store queries for ops alerts: episodes (open, refresh, end), acknowledgement, alert mails.

An `alerts` row is one episode (migration 0015): `episode_key` names what it is about,
`created_at` is its start and `resolved_at` its end; a partial unique index allows one open
episode per key. The rules for opening and ending them live in notifier/alerts.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ..privacy import mask_addresses

# Claim priority of alert mails (deliveries.priority): before every broadcast (0) and personal
# (1) row, so the mail about a backlog is not queued behind that backlog (claim_due).
PRIORITY_ALERT = -1
ALERT_KIND = "ops_alert"  # the notification kind of alert mails (notifier/emails/alerts.py)
_COLUMNS = (
    "id, kind, episode_key, subject, message, created_at, resolved_at, acknowledged_at, "
    "acknowledged_by, notification_id, end_notification_id, mailed_at"
)
# What each alert mail claims (queue_alert_mail): the episode must still be in that state.
_MAIL_CLAIMS = {
    "start": "resolved_at IS NULL AND notification_id IS NULL",
    "end": "resolved_at IS NOT NULL AND notification_id IS NOT NULL "
    "AND end_notification_id IS NULL",
    "reminder": "resolved_at IS NULL AND acknowledged_at IS NULL AND notification_id IS NOT NULL "
    "AND mailed_at <= ?",
}


class AlertQueries:
    # --- episodes --------------------------------------------------------------------
    def raise_alert(
        self,
        kind: str,
        message: str,
        now: datetime,
        *,
        key: str | None = None,
        subject: str | None = None,
    ) -> int | None:
        """Open an episode of `key` (default: `kind`) unless one is open; an open one only gets
        the new message. The new episode's id, or None when one was open already.

        Safe from several workers: the unique index on open keys turns a second insert into
        a refresh (ON CONFLICT DO NOTHING, then UPDATE)."""
        key = key or kind
        message = mask_addresses(message)  # shown on the dashboard, mailed to ops (issue 15)
        with self.write():
            row = self._query_one(
                "INSERT INTO alerts (kind, episode_key, subject, message, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (episode_key) WHERE resolved_at IS NULL "
                "DO NOTHING RETURNING id",
                [kind, key, subject, message[:1000], now],
            )
            if row is not None:
                return row["id"]
            self._execute(
                "UPDATE alerts SET message = ? WHERE episode_key = ? AND resolved_at IS NULL "
                "AND message <> ?",
                [message[:1000], key, message[:1000]],
            )
            return None

    def end_alert(self, key: str, now: datetime) -> int:
        """End the open episode of `key` (its cause is gone); 1 if one was open, else 0."""
        return self._execute(
            "UPDATE alerts SET resolved_at = ? WHERE episode_key = ? AND resolved_at IS NULL",
            [now, key],
        )

    def resolve_alert(self, kind: str, now: datetime) -> int:
        """End every open episode of `kind` (e.g. all "sending_paused" on resume)."""
        return self._execute(
            "UPDATE alerts SET resolved_at = ? WHERE kind = ? AND resolved_at IS NULL", [now, kind]
        )

    def resolve_alert_id(self, alert_id: int, now: datetime) -> int:
        """End one open episode by id (ops mark it resolved); 1 if it was open, else 0."""
        return self._execute(
            "UPDATE alerts SET resolved_at = ? WHERE id = ? AND resolved_at IS NULL",
            [now, alert_id],
        )

    def acknowledge_alert(self, alert_id: int, user: str, now: datetime) -> int:
        """Record that `user` has seen this episode (stops reminder mails); 1 if it was
        unacknowledged, else 0. Ended episodes can be acknowledged too."""
        return self._execute(
            "UPDATE alerts SET acknowledged_at = ?, acknowledged_by = ? WHERE id = ? "
            "AND acknowledged_at IS NULL",
            [now, user[:200], alert_id],
        )

    def get_alert(self, alert_id: int) -> dict | None:
        return self._query_one(f"SELECT {_COLUMNS} FROM alerts WHERE id = ?", [alert_id])

    def open_alerts(self, kind: str | None = None) -> list[dict]:
        """Open episodes, oldest first (all columns of the episode)."""
        where, params = ("AND kind = ? ", [kind]) if kind else ("", [])
        return self._query(
            f"SELECT {_COLUMNS} FROM alerts WHERE resolved_at IS NULL {where}"
            "ORDER BY created_at, id",
            params,
        )

    def recent_alerts(self, since: datetime, limit: int = 20) -> list[dict]:
        """Episodes that ended at or after `since`, the latest end first."""
        return self._query(
            f"SELECT {_COLUMNS} FROM alerts WHERE resolved_at >= ? "
            "ORDER BY resolved_at DESC, id DESC LIMIT ?",
            [since, limit],
        )

    def alerts_to_mail(self, event: str, reminder_before: datetime | None = None) -> list[dict]:
        """Episodes whose `event` mail ("start", "end", "reminder") is due; for reminders,
        those last mailed at or before `reminder_before`."""
        params = [reminder_before] if event == "reminder" else []
        return self._query(
            f"SELECT {_COLUMNS} FROM alerts WHERE {_MAIL_CLAIMS[event]} ORDER BY id", params
        )

    # --- what alerts watch -----------------------------------------------------------
    def oldest_due_at(self, now: datetime) -> datetime | None:
        """When the longest-waiting due delivery became due (pending, next_attempt_at <= now)."""
        row = self._query_one(
            "SELECT MIN(next_attempt_at) AS due_at FROM deliveries "
            "WHERE state = 'pending' AND next_attempt_at <= ?",
            [now],
        )
        return None if row is None else row["due_at"]

    def expired_deliveries(self, since: datetime) -> list[dict]:
        """Per notification (not alert mails themselves): deliveries that expired unsent and
        were last updated at or after `since`, unless an ended episode covered them already:
        [{"notification_id", "kind", "expired"}], by notification id."""
        # SQLite without ANALYZE statistics would walk every failed row (deliveries_claim).
        index = "INDEXED BY deliveries_expired" if self.backend == "sqlite" else ""
        return self._query(
            f"SELECT d.notification_id, n.kind, COUNT(*) AS expired FROM deliveries d {index} "
            "JOIN notifications n ON n.id = d.notification_id "
            "WHERE d.state = 'failed' AND d.reason = 'expired' AND d.updated_at >= ? "
            "AND n.kind <> ? AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.resolved_at IS NOT "
            "NULL AND a.episode_key = 'expired:' || CAST(d.notification_id AS TEXT)) "
            "GROUP BY d.notification_id, n.kind ORDER BY d.notification_id",
            [since, ALERT_KIND],
        )

    # --- alert mails -----------------------------------------------------------------
    def queue_alert_mail(
        self,
        alert_id: int,
        event: str,
        content: dict,
        addresses: Sequence[str],
        language: str,
        now: datetime,
        expires_at: datetime,
        reminder_before: datetime | None = None,
    ) -> int | None:
        """Queue one alert mail (`event`: start, end or reminder) to every ops address: the
        notification id, or None when the episode no longer needs it (another worker queued
        it first, it ended, it was acknowledged).

        The episode is claimed, and the notification and its deliveries created, in one
        exclusive transaction: each mail is queued once, across restarts and workers. Ops
        addresses are not subscribers: their deliveries have no subscriber_id (like test
        sends) and PRIORITY_ALERT; the timezone is UTC.
        """
        # A recovery mail leaves mailed_at alone: it is when ops were last told of the start.
        mailed = "mailed_at" if event == "end" else "?"
        params = [] if event == "end" else [now]
        with self.write():
            claimed = self._execute(
                f"UPDATE alerts SET mailed_at = {mailed} WHERE id = ? AND {_MAIL_CLAIMS[event]}",
                [*params, alert_id, *([reminder_before] if event == "reminder" else [])],
            )
            if not claimed:
                return None
            nid = self.create_notification(
                ALERT_KIND,
                content,
                now,
                expires_at,
                audience={"ops": list(addresses), "languages": [language]},
            )
            self._execute("UPDATE notifications SET fanned_out_at = ? WHERE id = ?", [now, nid])
            self._executemany(
                "INSERT INTO deliveries (notification_id, subscriber_id, email, language, "
                "timezone, state, next_attempt_at, created_at, updated_at, priority) "
                "VALUES (?, NULL, ?, ?, 'UTC', 'pending', ?, ?, ?, ?)",
                [[nid, address, language, now, now, now, PRIORITY_ALERT] for address in addresses],
            )
            column = {"start": "notification_id", "end": "end_notification_id"}.get(event)
            if column:
                self._execute(f"UPDATE alerts SET {column} = ? WHERE id = ?", [nid, alert_id])
        return nid
