"""Store queries for the delivery ledger: progress per notification, per-recipient rows with
their attempts, resend of failed or expired rows, and the review queue."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from .base import dumps, loads
from .deliveries import CHANNEL_READY, _marks, priority_of

# Per-state sums shared by the dashboard, the ledger list and the live progress endpoint.
# "expired" is a failed row whose notification went stale before it could be sent.
_PROGRESS = (
    "SUM(CASE WHEN d.state = 'sent' THEN 1 ELSE 0 END) AS sent, "
    "SUM(CASE WHEN d.state IN ('pending', 'sending') THEN 1 ELSE 0 END) AS pending, "
    "SUM(CASE WHEN d.state = 'failed' AND d.reason = 'expired' THEN 1 ELSE 0 END) AS expired, "
    "SUM(CASE WHEN d.state = 'failed' AND (d.reason IS NULL OR d.reason <> 'expired') "
    "THEN 1 ELSE 0 END) AS failed, "
    "SUM(CASE WHEN d.state IN ('cancelled', 'suppressed') THEN 1 ELSE 0 END) AS cancelled, "
    "SUM(CASE WHEN d.possible_duplicate = 1 THEN 1 ELSE 0 END) AS duplicates, "
    "COUNT(d.id) AS total"
)
PROGRESS_KEYS = ("sent", "pending", "expired", "failed", "cancelled", "duplicates", "total")
BROADCAST = "('incident', 'maintenance', 'announcement')"
# A resend respects what the subscriber wants today, not what they wanted then.
_WANTS = {
    "incident": "AND s.notify_incidents = 1 ",
    "maintenance": "AND s.notify_maintenance = 1 ",
}
_RESEND_SELECTORS = {
    "one": "d.id = ?",
    "failed": "(d.reason IS NULL OR d.reason <> 'expired')",
    "expired": "d.reason = 'expired'",
}


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with % and _ taken literally (ESCAPE '\\')."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _counts(row: dict) -> dict:
    for key in PROGRESS_KEYS:
        row[key] = int(row[key] or 0)
    return row


class LedgerQueries:
    # --- progress --------------------------------------------------------------------
    def recent_notifications(self, limit: int = 20, before_id: int | None = None) -> list[dict]:
        """Broadcast notifications (test sends included), newest first, with per-state counts."""
        where, params = (f"n.kind IN {BROADCAST}", [])
        if before_id:
            where, params = where + " AND n.id < ?", [before_id]
        rows = self._query(
            "SELECT n.id, n.kind, n.content, n.audience, n.created_at, n.expires_at, "
            f"n.review_state, n.review_deadline_at, n.resend_of, n.announcement_id, {_PROGRESS} "
            f"FROM notifications n LEFT JOIN deliveries d ON d.notification_id = n.id "
            f"WHERE {where} GROUP BY n.id, n.kind, n.content, n.audience, n.created_at, "
            "n.expires_at, n.review_state, n.review_deadline_at, n.resend_of, n.announcement_id "
            "ORDER BY n.id DESC LIMIT ?",
            [*params, limit],
        )
        for row in rows:
            row["content"], row["audience"] = loads(row["content"]), loads(row["audience"])
            _counts(row)
        return rows

    def notification_progress(self, notification_ids: Sequence[int]) -> dict[int, dict]:
        """Per-state counts for these notifications (the live progress bars)."""
        ids = [int(i) for i in notification_ids][:100]
        if not ids:
            return {}
        rows = self._query(
            f"SELECT n.id, {_PROGRESS} FROM notifications n "
            "LEFT JOIN deliveries d ON d.notification_id = n.id "
            f"WHERE n.id IN ({_marks(ids)}) GROUP BY n.id",
            ids,
        )
        return {r["id"]: _counts(r) for r in rows}

    def resends_of(self, notification_id: int) -> list[dict]:
        return self._query(
            "SELECT id, created_at FROM notifications WHERE resend_of = ? ORDER BY id",
            [notification_id],
        )

    # --- per-recipient rows ----------------------------------------------------------
    @staticmethod
    def _delivery_filter(
        notification_id: int,
        email: str,
        state: str,
        subscriber_id: int | None = None,
        channel: str = "",
    ) -> tuple[str, list]:
        clauses, params = ["notification_id = ?"], [notification_id]
        if channel:
            clauses.append("channel = ?")
            params.append(channel)
        if subscriber_id is not None:
            clauses.append("subscriber_id = ?")
            params.append(subscriber_id)
        if email:
            clauses.append("lower(email) LIKE ? ESCAPE '\\'")
            params.append(like_pattern(email))
        if state == "expired":
            clauses.append("state = 'failed' AND reason = 'expired'")
        elif state == "failed":
            clauses.append("state = 'failed' AND (reason IS NULL OR reason <> 'expired')")
        elif state == "pending":
            clauses.append("state IN ('pending', 'sending')")
        elif state:
            clauses.append("state = ?")
            params.append(state)
        return " AND ".join(clauses), params

    def search_deliveries(
        self,
        notification_id: int,
        *,
        email: str = "",
        state: str = "",
        subscriber_id: int | None = None,
        channel: str = "",
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict]:
        """One page of a notification's delivery rows, by id; `channel` ('email', 'slack',
        'teams', 'webhook') keeps the rows of one channel. `email` is the row's address (a
        channel row's: its owner's)."""
        where, params = self._delivery_filter(notification_id, email, state, subscriber_id, channel)
        return self._query(
            "SELECT id, subscriber_id, email, language, timezone, state, reason, attempts, "
            "message_id, possible_duplicate, provider_event, provider_event_at, provider_reason, "
            "sent_at, updated_at, channel "
            f"FROM deliveries WHERE {where} ORDER BY id LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )

    def count_deliveries(
        self,
        notification_id: int,
        *,
        email: str = "",
        state: str = "",
        subscriber_id: int | None = None,
        channel: str = "",
    ) -> int:
        where, params = self._delivery_filter(notification_id, email, state, subscriber_id, channel)
        return self._scalar(f"SELECT COUNT(*) AS n FROM deliveries WHERE {where}", params)

    def delivery_attempts(self, delivery_ids: Sequence[int]) -> dict[int, list[dict]]:
        if not delivery_ids:
            return {}
        rows = self._query(
            "SELECT delivery_id, attempted_at, outcome, status_code, error, message_id "
            f"FROM delivery_attempts WHERE delivery_id IN ({_marks(delivery_ids)}) "
            "ORDER BY id",
            list(delivery_ids),
        )
        grouped: dict[int, list[dict]] = {i: [] for i in delivery_ids}
        for r in rows:
            grouped[r["delivery_id"]].append(r)
        return grouped

    # --- resend ----------------------------------------------------------------------
    def resend(
        self,
        notification_id: int,
        which: str,
        now: datetime,
        expires_at: datetime,
        delivery_id: int | None = None,
    ) -> tuple[int | None, int]:
        """Fresh deliveries (in a new notification) for failed or expired rows; (id, count).

        Only subscribers who still want this mail get one: a resend never reaches anyone who
        unsubscribed, bounced or complained since, or turned this kind of mail off. A row
        already resent (and not failed again) is skipped, so a double click sends nothing twice.
        A resent row inherits `possible_duplicate` from the row it copies, and its kind's
        claim priority (deliveries.priority_of): a resent incident goes before confirmations.
        A resent row keeps its channel (a Slack row is resent to Slack, issue 12), and a channel
        subscription gets one only while fan-out would include it (verified, not paused).
        """
        if which not in _RESEND_SELECTORS:
            raise ValueError(f"unknown resend selection {which!r}")
        params = [delivery_id] if which == "one" else []
        with self.write():
            original = self.get_notification(notification_id)
            if original is None:
                raise LookupError(f"no notification {notification_id}")
            nid = self.create_notification(
                original["kind"], original["content"], now, expires_at,
                feed_id=original["feed_id"], incident_id=original["incident_id"],
                announcement_id=original["announcement_id"], resend_of=notification_id,
                audience=original["audience"],
            )  # fmt: skip
            # A copy of a row that may have reached its reader already (a lost 202, a crash)
            # is flagged as well: it may be the second copy in that mailbox.
            count = self._execute(
                "INSERT INTO deliveries (notification_id, subscriber_id, email, language, "
                "timezone, state, next_attempt_at, created_at, updated_at, possible_duplicate, "
                "priority, channel) SELECT ?, s.id, s.email, s.language, s.timezone, 'pending', "
                "?, ?, ?, d.possible_duplicate, ?, d.channel "
                "FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
                "WHERE d.notification_id = ? AND d.state = 'failed' "
                f"AND {_RESEND_SELECTORS[which]} AND s.state = 'confirmed' AND {CHANNEL_READY} "
                f"{_WANTS.get(original['kind'], '')}"
                "AND NOT EXISTS (SELECT 1 FROM deliveries r JOIN notifications rn "
                "ON rn.id = r.notification_id WHERE rn.resend_of = ? AND "
                "r.subscriber_id = d.subscriber_id AND r.state IN ('pending', 'sending', 'sent')) "
                "ON CONFLICT (notification_id, subscriber_id) DO NOTHING",
                [
                    nid,
                    now,
                    now,
                    now,
                    priority_of(original["kind"]),
                    notification_id,
                    *params,
                    notification_id,
                ],
            )
            if not count:
                self._execute("DELETE FROM notifications WHERE id = ?", [nid])
                return None, 0
            self._execute("UPDATE notifications SET fanned_out_at = ? WHERE id = ?", [now, nid])
        return nid, count

    # --- review queue ----------------------------------------------------------------
    def review_queue_count(self) -> int:
        return self._scalar(
            "SELECT COUNT(*) AS n FROM notifications WHERE review_state = 'pending'"
        )

    def review_queue(self) -> list[dict]:
        rows = self._query(
            "SELECT id, kind, content, created_at, review_deadline_at, expires_at "
            "FROM notifications WHERE review_state = 'pending' ORDER BY review_deadline_at, id"
        )
        for row in rows:
            row["content"] = loads(row["content"])
        return rows

    def update_review_content(self, notification_id: int, content: dict) -> bool:
        """Change a notification's texts while it waits for review (never once it went out)."""
        changed = self._execute(
            "UPDATE notifications SET content = ? WHERE id = ? AND review_state = 'pending'",
            [dumps(content), notification_id],
        )
        return changed == 1

    def approve_review(
        self, notification_id: int, content: dict, reviewer: str, now: datetime
    ) -> int | None:
        """Store the reviewed texts, approve and fan out in one go; the delivery count, or None
        when the notification no longer waits for review (approved, discarded or timed out)."""
        with self.write():
            if not self.update_review_content(notification_id, content):
                return None
            self.set_review_state(notification_id, "approved", now, reviewed_by=reviewer)
            return self.fan_out(notification_id, now)
