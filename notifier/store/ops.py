"""Store queries for the ops console: users, sessions, audit log, announcements, subscribers,
dashboard. The delivery ledger, resend and review queries are in ledger.py (same mixin)."""

from __future__ import annotations

from datetime import datetime

from ..privacy import mask_addresses, mask_values
from .base import dumps, from_db_time, loads, to_db_time
from .deliveries import CHANNEL_READY
from .ledger import LedgerQueries, like_pattern

# The kinds of subscription (migration 0019_channels), in the order the console shows them.
CHANNELS = ("email", "slack", "teams", "webhook")

AUDIT_PAGE = 50
_LOGOUT_KEY = "admin_logout_before:"


class OpsQueries(LedgerQueries):
    # --- ops users -------------------------------------------------------------------
    def add_admin_user(self, username: str, password_hash: str, now: datetime) -> bool:
        """Create an ops user or set a new password; True when the user is new."""
        with self.write():
            exists = self.get_admin_user(username) is not None
            self._execute(
                "INSERT INTO admin_users (username, password_hash, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash",
                [username, password_hash, now],
            )
        return not exists

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

    # --- sessions: a logout ends every session of that user that started before it ----
    def end_admin_sessions(self, username: str, now: datetime) -> None:
        self.set_meta(_LOGOUT_KEY + username, to_db_time(now), now)

    def admin_sessions_ended_at(self, username: str) -> datetime | None:
        value = self.get_meta(_LOGOUT_KEY + username)
        return None if value is None else from_db_time(value)

    # --- audit log -------------------------------------------------------------------
    def audit(
        self, actor: str, action: str, target: str | None, detail: dict | None, now: datetime
    ) -> None:
        """One audit entry; every address in `target` and in the strings of `detail` (an ops
        user's free text) is stored masked (notifier/privacy.py, GDPR art. 5(1)(c))."""
        target = None if target is None else mask_addresses(target)
        detail = None if detail is None else dumps(mask_values(detail))
        self._execute(
            "INSERT INTO audit_log (created_at, actor, action, target, detail) "
            "VALUES (?, ?, ?, ?, ?)",
            [now, actor, action, target, detail],
        )

    def list_audit(self, *, before_id: int | None = None, limit: int = AUDIT_PAGE) -> list[dict]:
        """Newest first; pass the last id shown as `before_id` for the next page."""
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
            "SELECT id, state, content, audience, incident_id, created_by, created_at, "
            "updated_at, sent_at, notification_id FROM announcements "
            "WHERE state <> 'discarded' ORDER BY id DESC LIMIT ?",
            [limit],
        )
        for row in rows:
            row["content"], row["audience"] = loads(row["content"]), loads(row["audience"])
        return rows

    def discard_announcement(self, announcement_id: int, now: datetime) -> int:
        return self._execute(
            "UPDATE announcements SET state = 'discarded', updated_at = ? "
            "WHERE id = ? AND state = 'draft'",
            [now, announcement_id],
        )

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
        """How many confirmed subscribers a notification of this kind and audience would reach:
        email subscribers and channel subscriptions fan-out would include (store/deliveries.py
        CHANNEL_READY: verified and not paused)."""
        return sum(self.count_audience_by_channel(kind, audience).values())

    def count_audience_by_channel(self, kind: str, audience: dict) -> dict[str, int]:
        """{channel: count} for every channel in CHANNELS (0 when none): the recipients a
        notification of this kind and audience would reach, as fan-out picks them."""
        where, params = self._audience_filter({"kind": kind, "audience": dumps(audience)})
        rows = self._query(
            "SELECT s.channel, COUNT(*) AS n FROM subscribers s WHERE s.state = 'confirmed' "
            f"AND {CHANNEL_READY} AND {where} GROUP BY s.channel",
            params,
        )
        counts = dict.fromkeys(CHANNELS, 0)
        counts.update({r["channel"]: int(r["n"]) for r in rows})
        return counts

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

    def recent_incidents(self, limit: int = 30) -> list[dict]:
        """Incidents and maintenances, most recently changed first (for the post-incident form)."""
        return self._query(
            "SELECT id, feed_id, key, kind, title, first_seen_at, last_changed_at "
            "FROM incidents ORDER BY last_changed_at DESC, id DESC LIMIT ?",
            [limit],
        )

    # --- subscribers -----------------------------------------------------------------
    def search_subscribers(
        self,
        query: str = "",
        state: str = "",
        *,
        channel: str = "",
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict]:
        """Subscribers whose (owner) address contains `query` (case-insensitive), newest first;
        `channel` ('email', 'slack', 'teams', 'webhook') keeps one kind of subscription. Rows
        carry the channel columns (target_url, verified_at, paused_at, paused_reason)."""
        clauses, params = [], []
        if query:
            clauses.append("lower(email) LIKE ? ESCAPE '\\'")
            params.append(like_pattern(query))
        if state:
            clauses.append("state = ?")
            params.append(state)
        if channel:
            clauses.append("channel = ?")
            params.append(channel)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._query(
            "SELECT id, email, language, state, created_at, confirmed_at, suppressed_reason, "
            "channel, target_url, verified_at, paused_at, paused_reason "
            f"FROM subscribers {where} ORDER BY id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )

    def unsuppress_subscriber(self, subscriber_id: int, now: datetime) -> str | None:
        """Lift a suppression; the new state (see notifier/admin/subscribers.py), or None.

        Back to 'confirmed' when the address had opted in and not unsubscribed since, to
        'unsubscribed' when it had, else to 'pending' with a fresh confirmation nonce (no mail
        is sent; signing up again sends one, and the purge removes it otherwise).
        """
        from ..tokens import new_nonce

        with self.write():
            row = self.get_subscriber(subscriber_id)
            if row is None or row["state"] != "suppressed":
                return None
            confirmed, left = row["confirmed_at"], row["unsubscribed_at"]
            if confirmed is not None and (left is None or left < confirmed):
                state, nonce = "confirmed", None
            elif confirmed is not None:
                state, nonce = "unsubscribed", None
            else:
                state, nonce = "pending", new_nonce()
            self._execute(
                "UPDATE subscribers SET state = ?, token_nonce = ?, suppressed_reason = NULL, "
                "suppressed_at = NULL, updated_at = ? WHERE id = ? AND state = 'suppressed'",
                [state, nonce, now, subscriber_id],
            )
        return state

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
        # A group choice counts for every member it covers (see DeliveryQueries.fan_out).
        by_component = self._query(
            "SELECT c.id, c.name, COUNT(DISTINCT s.id) AS n FROM components c "
            "LEFT JOIN subscriber_components sc ON sc.component_id = c.id OR sc.component_id "
            "IN (SELECT gm.group_id FROM group_memberships gm WHERE gm.component_id = c.id) "
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
            "by_channel": self.channel_counts(),
        }

    def channel_counts(self) -> dict[str, dict[str, int]]:
        """Confirmed subscriptions per channel (CHANNELS order): {"active": reached by fan-out
        (email: every confirmed one; a channel: verified and not paused), "awaiting": confirmed
        but the target has not accepted the test message yet, "paused": paused after failed
        deliveries (notifier/store/channels.py)}."""
        rows = self._query(
            "SELECT channel, "
            f"SUM(CASE WHEN {CHANNEL_READY.replace('s.', '')} THEN 1 ELSE 0 END) AS active, "
            "SUM(CASE WHEN channel <> 'email' AND verified_at IS NULL AND paused_at IS NULL "
            "THEN 1 ELSE 0 END) AS awaiting, "
            "SUM(CASE WHEN channel <> 'email' AND paused_at IS NOT NULL THEN 1 ELSE 0 END) "
            "AS paused FROM subscribers WHERE state = 'confirmed' GROUP BY channel"
        )
        counts = {c: {"active": 0, "awaiting": 0, "paused": 0} for c in CHANNELS}
        for r in rows:
            counts[r["channel"]] = {k: int(r[k] or 0) for k in ("active", "awaiting", "paused")}
        return counts
