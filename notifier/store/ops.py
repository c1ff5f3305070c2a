"""Store queries for the ops console: users, audit log, announcements, ledger, resend, dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from .base import dumps, loads
from .deliveries import _marks

AUDIT_PAGE = 100


class OpsQueries:
    # --- ops users -------------------------------------------------------------------
    def add_admin_user(self, username: str, password_hash: str, now: datetime) -> None:
        self._execute(
            "INSERT INTO admin_users (username, password_hash, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash",
            [username, password_hash, now],
        )

    def remove_admin_user(self, username: str) -> int:
        return self._execute("DELETE FROM admin_users WHERE username = ?", [username])

    def get_admin_user(self, username: str) -> dict | None:
        return self._query_one(
            "SELECT id, username, password_hash, created_at, last_login_at FROM admin_users "
            "WHERE username = ?",
            [username],
        )

    def list_admin_users(self) -> list[dict]:
        return self._query(
            "SELECT username, created_at, last_login_at FROM admin_users ORDER BY username"
        )

    def record_admin_login(self, username: str, now: datetime) -> None:
        self._execute(
            "UPDATE admin_users SET last_login_at = ? WHERE username = ?", [now, username]
        )

    # --- audit log -------------------------------------------------------------------
    def audit(
        self, actor: str, action: str, target: str | None, detail: dict | None, now: datetime
    ) -> None:
        self._execute(
            "INSERT INTO audit_log (created_at, actor, action, target, detail) "
            "VALUES (?, ?, ?, ?, ?)",
            [now, actor, action, target, None if detail is None else dumps(detail)],
        )

    def list_audit(self, *, before_id: int | None = None, limit: int = AUDIT_PAGE) -> list[dict]:
        where, params = ("WHERE id < ?", [before_id]) if before_id else ("", [])
        rows = self._query(
            f"SELECT id, created_at, actor, action, target, detail FROM audit_log {where} "
            "ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        for row in rows:
            row["detail"] = loads(row["detail"])
        return rows

    # --- announcements ---------------------------------------------------------------
    def save_announcement(
        self,
        content: dict,
        audience: dict,
        actor: str,
        now: datetime,
        *,
        announcement_id: int | None = None,
        incident_id: int | None = None,
    ) -> int:
        """Create a draft, or update a draft; sent announcements are never changed."""
        if announcement_id is None:
            row = self._query_one(
                "INSERT INTO announcements (state, content, audience, incident_id, created_by, "
                "created_at, updated_at) VALUES ('draft', ?, ?, ?, ?, ?, ?) RETURNING id",
                [dumps(content), dumps(audience), incident_id, actor, now, now],
            )
            return row["id"]
        changed = self._execute(
            "UPDATE announcements SET content = ?, audience = ?, updated_at = ? "
            "WHERE id = ? AND state = 'draft'",
            [dumps(content), dumps(audience), now, announcement_id],
        )
        if not changed:
            raise LookupError(f"announcement {announcement_id} is not an editable draft")
        return announcement_id

    def get_announcement(self, announcement_id: int) -> dict | None:
        row = self._query_one("SELECT * FROM announcements WHERE id = ?", [announcement_id])
        if row is not None:
            row["content"], row["audience"] = loads(row["content"]), loads(row["audience"])
        return row

    def list_announcements(self, limit: int = 50) -> list[dict]:
        rows = self._query(
            "SELECT id, state, content, audience, created_by, created_at, updated_at, sent_at, "
            "notification_id FROM announcements ORDER BY id DESC LIMIT ?",
            [limit],
        )
        for row in rows:
            row["content"], row["audience"] = loads(row["content"]), loads(row["audience"])
        return rows

    def send_announcement(
        self, announcement_id: int, content: dict, audience: dict, now: datetime, expires_at
    ) -> tuple[int, int]:
        """Turn a draft into a notification and its deliveries, once; (notification id, count)."""
        with self.write():
            row = self._query_one(
                "UPDATE announcements SET state = 'sent', sent_at = ?, content = ?, "
                "audience = ?, updated_at = ? WHERE id = ? AND state = 'draft' RETURNING id",
                [now, dumps(content), dumps(audience), now, announcement_id],
            )
            if row is None:
                raise LookupError(f"announcement {announcement_id} was already sent")
            nid = self.create_notification(
                "announcement", content, now, expires_at,
                announcement_id=announcement_id, audience=audience,
            )  # fmt: skip
            count = self.fan_out(nid, now)
            self._execute(
                "UPDATE announcements SET notification_id = ? WHERE id = ?", [nid, announcement_id]
            )
        return nid, count

    def count_audience(self, kind: str, audience: dict) -> int:
        """How many confirmed subscribers a notification of this kind and audience would reach."""
        where, params = self._audience_filter({"kind": kind, "audience": dumps(audience)})
        return self._scalar(
            f"SELECT COUNT(*) AS n FROM subscribers s WHERE s.state = 'confirmed' AND {where}",
            params,
        )

    def create_test_send(
        self,
        kind: str,
        content: dict,
        email: str,
        language: str,
        timezone: str,
        now: datetime,
        expires_at: datetime,
    ) -> int:
        """A one-off notification to any address (not a subscriber); returns the delivery id."""
        with self.write():
            nid = self.create_notification(
                kind, content, now, expires_at, audience={"test_to": email, "languages": [language]}
            )
            self._execute("UPDATE notifications SET fanned_out_at = ? WHERE id = ?", [now, nid])
            row = self._query_one(
                "INSERT INTO deliveries (notification_id, subscriber_id, email, language, "
                "timezone, state, next_attempt_at, created_at, updated_at) "
                "VALUES (?, NULL, ?, ?, ?, 'pending', ?, ?, ?) RETURNING id",
                [nid, email, language, timezone, now, now, now],
            )
        return row["id"]

    # --- review queue ----------------------------------------------------------------
    def review_queue(self) -> list[dict]:
        rows = self._query(
            "SELECT id, kind, content, created_at, review_deadline_at, expires_at "
            "FROM notifications WHERE review_state = 'pending' ORDER BY id"
        )
        for row in rows:
            row["content"] = loads(row["content"])
        return rows

    # --- ledger ----------------------------------------------------------------------
    def recent_notifications(self, limit: int = 20) -> list[dict]:
        rows = self._query(
            "SELECT n.id, n.kind, n.content, n.created_at, n.expires_at, n.review_state, "
            "n.resend_of, "
            "SUM(CASE WHEN d.state = 'sent' THEN 1 ELSE 0 END) AS sent, "
            "SUM(CASE WHEN d.state IN ('pending', 'sending') THEN 1 ELSE 0 END) AS pending, "
            "SUM(CASE WHEN d.state = 'failed' AND d.reason = 'expired' THEN 1 ELSE 0 END) "
            "AS expired, "
            "SUM(CASE WHEN d.state = 'failed' AND (d.reason IS NULL OR d.reason <> 'expired') "
            "THEN 1 ELSE 0 END) AS failed, "
            "SUM(CASE WHEN d.state IN ('cancelled', 'suppressed') THEN 1 ELSE 0 END) "
            "AS cancelled, COUNT(d.id) AS total "
            "FROM notifications n LEFT JOIN deliveries d ON d.notification_id = n.id "
            "WHERE n.kind IN ('incident', 'maintenance', 'announcement') "
            "GROUP BY n.id, n.kind, n.content, n.created_at, n.expires_at, n.review_state, "
            "n.resend_of ORDER BY n.id DESC LIMIT ?",
            [limit],
        )
        for row in rows:
            row["content"] = loads(row["content"])
            for key in ("sent", "pending", "expired", "failed", "cancelled", "total"):
                row[key] = int(row[key] or 0)
        return rows

    def search_deliveries(
        self,
        notification_id: int,
        *,
        email: str = "",
        state: str = "",
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict]:
        clauses, params = ["notification_id = ?"], [notification_id]
        if email:
            clauses.append("email LIKE ?")
            params.append(f"%{email.lower()}%")
        if state == "expired":
            clauses.append("state = 'failed' AND reason = 'expired'")
        elif state:
            clauses.append("state = ?")
            params.append(state)
        return self._query(
            "SELECT id, subscriber_id, email, language, state, reason, attempts, message_id, "
            "possible_duplicate, provider_event, provider_event_at, sent_at, updated_at "
            f"FROM deliveries WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )

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

    def resend(
        self,
        notification_id: int,
        which: str,
        now: datetime,
        expires_at: datetime,
        delivery_id: int | None = None,
    ) -> tuple[int | None, int]:
        """Fresh deliveries (in a new notification) for failed or expired rows; (id, count).

        Only addresses still subscribed get one: a resend never reaches anyone who has
        unsubscribed or whose address bounced since.
        """
        if which == "one":
            selector, params = "d.id = ?", [delivery_id]
        elif which == "expired":
            selector, params = "d.state = 'failed' AND d.reason = 'expired'", []
        elif which == "failed":
            selector, params = "d.state = 'failed' AND d.reason <> 'expired'", []
        else:
            raise ValueError(f"unknown resend selection {which!r}")
        with self.write():
            original = self.get_notification(notification_id)
            if original is None:
                raise LookupError(f"no notification {notification_id}")
            nid = self.create_notification(
                original["kind"], original["content"], now, expires_at,
                feed_id=original["feed_id"], incident_id=original["incident_id"],
                resend_of=notification_id, audience=original["audience"],
            )  # fmt: skip
            count = self._execute(
                "INSERT INTO deliveries (notification_id, subscriber_id, email, language, "
                "timezone, state, next_attempt_at, created_at, updated_at) "
                "SELECT ?, s.id, s.email, s.language, s.timezone, 'pending', ?, ?, ? "
                "FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
                f"WHERE d.notification_id = ? AND d.state = 'failed' AND {selector} "
                "AND s.state = 'confirmed' ON CONFLICT (notification_id, subscriber_id) DO NOTHING",
                [nid, now, now, now, notification_id, *params],
            )
            if not count:
                self._execute("DELETE FROM notifications WHERE id = ?", [nid])
                return None, 0
            self._execute("UPDATE notifications SET fanned_out_at = ? WHERE id = ?", [now, nid])
        return nid, count

    # --- dashboard -------------------------------------------------------------------
    def subscriber_counts(self) -> dict:
        by_state = {
            r["state"]: r["n"]
            for r in self._query("SELECT state, COUNT(*) AS n FROM subscribers GROUP BY state")
        }
        by_language = {
            r["language"]: r["n"]
            for r in self._query(
                "SELECT language, COUNT(*) AS n FROM subscribers WHERE state = 'confirmed' "
                "GROUP BY language"
            )
        }
        by_component = self._query(
            "SELECT c.id, c.name, COUNT(s.id) AS n FROM components c "
            "LEFT JOIN subscriber_components sc ON sc.component_id = c.id "
            "LEFT JOIN subscribers s ON s.id = sc.subscriber_id AND s.state = 'confirmed' "
            "WHERE c.is_group = 0 GROUP BY c.id, c.name, c.position "
            "ORDER BY c.position, c.name"
        )
        all_components = self._scalar(
            "SELECT COUNT(*) AS n FROM subscribers WHERE state = 'confirmed' AND all_components = 1"
        )
        return {
            "by_state": by_state,
            "by_language": by_language,
            "by_component": by_component,
            "all_components": all_components,
        }
