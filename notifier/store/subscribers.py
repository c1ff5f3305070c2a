"""Store queries for the public sign-up: subscribers, their components, consents, confirmation
mail caps, and the per-IP rate-limit counters every web worker shares."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from ..privacy import erase_address
from .ledger import like_pattern

# Columns a caller may change through update_subscriber (never id, email or created_at).
_MUTABLE = frozenset(
    {
        "language",
        "timezone",
        "all_components",
        "notify_incidents",
        "notify_maintenance",
        "maintenance_reminders",
        "state",
        "token_nonce",
        "link_nonce",
        "updated_at",
        "confirmed_at",
        "unsubscribed_at",
        # channel subscriptions (issue 12): the signing secret, the verification (cleared when
        # confirmed again), and a pause the owner clears
        "webhook_secret",
        "verified_at",
        "paused_at",
        "paused_reason",
        "failure_count",
        "failing_since",
    }
)

# Text columns erasure does not mask: other subscribers' own addresses (see _erase_address),
# rate-limit keys (deleted instead), and ops accounts with the actor of their audit entries:
# an operator's console login is their work identity, not the subscription being erased
# (masking it would lock them out, and a second such erasure would break UNIQUE(username)).
_NOT_SCRUBBED = frozenset(
    {
        ("subscribers", "email"),
        # another channel's subscription may post to the same URL (unique per channel only)
        ("subscribers", "target_url"),
        ("deliveries", "email"),
        ("rate_limits", "key"),
        ("admin_users", "username"),
        ("audit_log", "actor"),
    }
)


class SubscriberQueries:
    # --- subscribers -----------------------------------------------------------------
    def get_subscriber(self, subscriber_id: int) -> dict | None:
        return self._query_one("SELECT * FROM subscribers WHERE id = ?", [subscriber_id])

    def get_subscriber_by_email(self, email: str) -> dict | None:
        """The EMAIL subscription of this address (channel 'email'); an owner's Slack, Teams
        or webhook subscriptions carry the same address and are not it (issue 12)."""
        return self._query_one(
            "SELECT * FROM subscribers WHERE email = ? AND channel = 'email'", [email]
        )

    def get_channel_subscription(self, channel: str, target_url: str) -> dict | None:
        """The subscription of this channel ('slack', 'teams', 'webhook') and normalized
        target URL (unique among channel rows, migration 0019), or None."""
        return self._query_one(
            "SELECT * FROM subscribers WHERE channel = ? AND target_url = ?",
            [channel, target_url],
        )

    def insert_subscriber(self, email: str, fields: dict, now: datetime) -> int:
        """A new subscriber row; `fields` holds every column but email and the timestamps."""
        columns = ["email", *fields, "created_at", "updated_at"]
        row = self._query_one(
            f"INSERT INTO subscribers ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))}) RETURNING id",
            [email, *fields.values(), now, now],
        )
        return row["id"]

    def update_subscriber(self, subscriber_id: int, **fields) -> int:
        unknown = set(fields) - _MUTABLE
        if unknown:
            raise ValueError(f"not updatable: {', '.join(sorted(unknown))}")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        return self._execute(
            f"UPDATE subscribers SET {assignments} WHERE id = ?",
            [*fields.values(), subscriber_id],
        )

    def subscriber_component_ids(self, subscriber_id: int) -> list[str]:
        rows = self._query(
            "SELECT component_id FROM subscriber_components WHERE subscriber_id = ? "
            "ORDER BY component_id",
            [subscriber_id],
        )
        return [r["component_id"] for r in rows]

    def set_subscriber_components(self, subscriber_id: int, component_ids: Iterable[str]) -> None:
        with self.write():
            self._execute(
                "DELETE FROM subscriber_components WHERE subscriber_id = ?", [subscriber_id]
            )
            self.add_subscriber_components(subscriber_id, component_ids)

    def add_subscriber_components(self, subscriber_id: int, component_ids: Iterable[str]) -> None:
        """Store these choices beside the ones the subscriber has (none, for a new row);
        no statement at all when there are none."""
        rows = [[subscriber_id, cid] for cid in sorted(set(component_ids))]
        if rows:
            self._executemany(
                "INSERT INTO subscriber_components (subscriber_id, component_id) VALUES (?, ?)",
                rows,
            )

    def remembered_group_members(self, group_ids: Iterable[str]) -> list[dict]:
        """Every member the catalogue syncs ever recorded for these groups, with the group's
        newest name: [{group_id, group_name, component_id, component_name}], in group and
        member name order. Groups that were never seen give no rows."""
        ids = sorted(set(group_ids))
        if not ids:
            return []
        return self._query(
            "SELECT gm.group_id, (SELECT newest.group_name FROM group_memberships newest "
            "WHERE newest.group_id = gm.group_id ORDER BY newest.last_seen_at DESC LIMIT 1) "
            "AS group_name, gm.component_id, gm.component_name FROM group_memberships gm "
            f"WHERE gm.group_id IN ({', '.join('?' * len(ids))}) "
            "ORDER BY gm.group_id, gm.component_name, gm.component_id",
            ids,
        )

    def delete_subscriber(self, subscriber_id: int) -> int:
        """Erase (GDPR art. 17): consents, components, confirmation sends and deliveries go
        with it (cascade), and every personal notification (confirmation, receipt) left without
        deliveries. A shared one (a minute's confirmations, see create_personal_notification)
        keeps the other subscribers' rows. Then every copy of the address left anywhere is
        removed or masked (_erase_address), in the same transaction. A channel subscription's
        target URL and signing secret go with its row, and every copy of the target left in
        free text (an audit detail, an alert) is masked like an address."""
        with self.write():
            row = self.get_subscriber(subscriber_id)
            deleted = self._delete_subscribers("s.id = ?", [subscriber_id])
            # The address stays where another subscription of it (the owner's email one, or
            # another channel) still holds it: erasing one subscription is not erasing them all.
            if row is not None and not self._scalar(
                "SELECT COUNT(*) AS n FROM subscribers WHERE lower(email) = lower(?)",
                [row["email"]],
            ):
                self._erase_address(row["email"])
            if row is not None and row["target_url"]:
                self._erase_address(row["target_url"])
            return deleted

    def _erase_address(self, address: str) -> None:
        """Remove or mask every copy of `address` (any letter case) outside its subscriber row.

        Deleted: deliveries to it that belong to no subscriber (ops test sends; their attempts
        cascade) and rate-limit windows keyed by it (a failed ops login typed with it as the
        name). Masked (notifier/privacy.py MASK) everywhere else: every text column of every
        table, read from the schema itself, so a table added later is covered without a
        change here (audit details, alert messages, the pause reason in meta, notification
        content and audience, announcements, SendGrid's SMTP replies on other rows, …).
        Left alone: subscribers.email and deliveries.email of other rows, which can only
        differ in letter case and belong to that other subscriber, and times (`*_at`).
        Erasure is rare and by hand: one scan per table (with a second pass over the columns
        that hold the address) is affordable.
        """
        pattern = like_pattern(address)
        self._execute(
            "DELETE FROM deliveries WHERE subscriber_id IS NULL AND lower(email) = ?",
            [address.lower()],
        )
        self._execute("DELETE FROM rate_limits WHERE lower(key) LIKE ? ESCAPE '\\'", [pattern])
        columns: dict[str, list[str]] = {}
        for table, column in self._text_columns():
            if (table, column) not in _NOT_SCRUBBED:
                columns.setdefault(table, []).append(column)
        for table, names in columns.items():
            # One scan per table says which of its columns hold the address (usually none).
            checks = ", ".join(
                f"MAX(CASE WHEN lower(\"{c}\") LIKE ? ESCAPE '\\' THEN 1 ELSE 0 END) AS c{i}"
                for i, c in enumerate(names)
            )
            [found] = self._raw_query(f'SELECT {checks} FROM "{table}"', [pattern] * len(names))
            for i, column in enumerate(names):
                if found[f"c{i}"]:  # NULL for an empty table
                    self._mask_column(table, column, address, pattern)

    def _mask_column(self, table: str, column: str, address: str, pattern: str) -> None:
        values = self._raw_query(
            f'SELECT DISTINCT "{column}" AS v FROM "{table}" '
            f"WHERE lower(\"{column}\") LIKE ? ESCAPE '\\'",
            [pattern],
        )
        for value in (r["v"] for r in values):
            self._raw_execute(
                f'UPDATE "{table}" SET "{column}" = ? WHERE "{column}" = ?',
                [erase_address(value, address), value],
            )

    def _text_columns(self) -> list[tuple[str, str]]:
        """(table, column) of every text column of the schema, but times."""
        if self.backend == "sqlite":
            tables = self._raw_query(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name",
                [],
            )
            found = [
                (t["name"], c["name"])
                for t in tables
                for c in self._raw_query(f'PRAGMA table_info("{t["name"]}")', [])
                if c["type"].upper() == "TEXT"
            ]
        else:
            rows = self._raw_query(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() "
                "AND data_type IN ('text', 'character varying') "
                "ORDER BY table_name, ordinal_position",
                [],
            )
            found = [(r["table_name"], r["column_name"]) for r in rows]
        return [(t, c) for t, c in found if not c.endswith("_at")]

    def delete_pending_subscribers(self, updated_before: datetime) -> int:
        """Sign-ups nobody confirmed: gone, with everything that hangs off them.

        That includes sign-ups called off before confirming (the confirmation mail's one-click
        unsubscribe): unsubscribed without ever having opted in.
        """
        return self._delete_subscribers(
            "(s.state = 'pending' OR (s.state = 'unsubscribed' AND s.confirmed_at IS NULL)) "
            "AND s.updated_at < ?",
            [updated_before],
        )

    def _delete_subscribers(self, where: str, params: list) -> int:
        # Set-based statements, however many rows: the hourly purge must not hold the write
        # lock for long after a burst of junk sign-ups. Personal notifications are shared
        # (issue 14): the subscribers' deliveries go with them (cascade), and only the personal
        # notifications they leave empty are deleted. The exclusive write lock keeps a sign-up
        # from joining a notification between the check and the delete.
        with self.write():
            touched = [
                r["notification_id"]
                for r in self._query(
                    "SELECT DISTINCT d.notification_id FROM deliveries d JOIN subscribers s "
                    "ON s.id = d.subscriber_id JOIN notifications n ON n.id = d.notification_id "
                    f"WHERE n.kind IN ('confirmation', 'receipt') AND {where}",
                    params,
                )
            ]
            deleted = self._execute(
                "DELETE FROM subscribers WHERE id IN "
                f"(SELECT s.id FROM subscribers s WHERE {where})",
                params,
            )
            for start in range(0, len(touched), 500):
                chunk = touched[start : start + 500]
                self._execute(
                    f"DELETE FROM notifications WHERE id IN ({','.join('?' * len(chunk))}) "
                    "AND NOT EXISTS (SELECT 1 FROM deliveries d "
                    "WHERE d.notification_id = notifications.id)",
                    chunk,
                )
            return deleted

    # --- consent records -------------------------------------------------------------
    def open_consent(self, subscriber_id: int) -> dict | None:
        """The newest consent row still waiting for its confirmation."""
        return self._query_one(
            "SELECT * FROM consents WHERE subscriber_id = ? AND confirmed_at IS NULL "
            "ORDER BY id DESC LIMIT 1",
            [subscriber_id],
        )

    def record_signup_consent(
        self,
        subscriber_id: int,
        *,
        version: str,
        language: str,
        ip: str | None,
        user_agent: str | None,
        now: datetime,
    ) -> int:
        """Open a consent row, or refresh the open one - the newest request gets confirmed."""
        with self.write():
            open_row = self.open_consent(subscriber_id)
            if open_row is not None:
                self._execute(
                    "UPDATE consents SET consent_version = ?, language = ?, signup_at = ?, "
                    "signup_ip = ?, signup_user_agent = ? WHERE id = ?",
                    [version, language, now, ip, user_agent, open_row["id"]],
                )
                return open_row["id"]
            return self.open_signup_consent(
                subscriber_id,
                version=version,
                language=language,
                ip=ip,
                user_agent=user_agent,
                now=now,
            )

    def open_signup_consent(
        self,
        subscriber_id: int,
        *,
        version: str,
        language: str,
        ip: str | None,
        user_agent: str | None,
        now: datetime,
    ) -> int:
        """A new consent row waiting for its confirmation (a new subscriber has no open one
        to refresh); its id."""
        row = self._query_one(
            "INSERT INTO consents (subscriber_id, consent_version, language, signup_at, "
            "signup_ip, signup_user_agent) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            [subscriber_id, version, language, now, ip, user_agent],
        )
        return row["id"]

    def record_consent_confirmation(
        self, subscriber_id: int, *, ip: str | None, user_agent: str | None, now: datetime
    ) -> int:
        return self._execute(
            "UPDATE consents SET confirmed_at = ?, confirm_ip = ?, confirm_user_agent = ? "
            "WHERE id = (SELECT MAX(id) FROM consents WHERE subscriber_id = ? "
            "AND confirmed_at IS NULL)",
            [now, ip, user_agent, subscriber_id],
        )

    def set_consent_withdrawn(self, subscriber_id: int, withdrawn_at: datetime | None) -> int:
        """Withdraw (unsubscribe) or restore (undo) the newest confirmed consent."""
        return self._execute(
            "UPDATE consents SET withdrawn_at = ? WHERE id = (SELECT MAX(id) FROM consents "
            "WHERE subscriber_id = ? AND confirmed_at IS NOT NULL)",
            [withdrawn_at, subscriber_id],
        )

    def list_consents(self, subscriber_id: int) -> list[dict]:
        return self._query(
            "SELECT * FROM consents WHERE subscriber_id = ? ORDER BY id", [subscriber_id]
        )

    # --- confirmation mail caps ------------------------------------------------------
    def confirmation_send_times(
        self, subscriber_id: int, since: datetime | None = None
    ) -> list[datetime]:
        """When confirmations went to this subscriber's address (oldest first), over every
        subscription of that address: a Slack, Teams or webhook subscription is a row of its
        own per target, so a cap per row would let a stranger flood one inbox by signing it
        up for target after target (issue 12)."""
        where, params = ("AND cs.sent_at >= ?", [since]) if since is not None else ("", [])
        rows = self._query(
            "SELECT cs.sent_at FROM confirmation_sends cs JOIN subscribers s "
            "ON s.id = cs.subscriber_id WHERE s.email = "
            f"(SELECT email FROM subscribers WHERE id = ?) {where} ORDER BY cs.sent_at",
            [subscriber_id, *params],
        )
        return [r["sent_at"] for r in rows]

    def record_confirmation_send(self, subscriber_id: int, now: datetime) -> None:
        self._execute(
            "INSERT INTO confirmation_sends (subscriber_id, sent_at) VALUES (?, ?)",
            [subscriber_id, now],
        )

    def catalogue_stamp(self):
        """A value that changes whenever the component catalogue may have (it only changes
        through a sync): the newest sync time as the database holds it (text on SQLite, a
        datetime on PostgreSQL), None before the first sync. Compare it, do not parse it: the
        sign-up page asks on every request."""
        return self._scalar("SELECT MAX(components_synced_at) FROM feeds")

    # --- export ----------------------------------------------------------------------
    def subscriber_deliveries(self, subscriber_id: int) -> list[dict]:
        return self._query(
            "SELECT d.id, d.notification_id, n.kind, d.channel, d.email, d.language, "
            "d.timezone, d.state, "
            "d.reason, d.attempts, d.created_at, d.updated_at, d.sent_at FROM deliveries d "
            "JOIN notifications n ON n.id = d.notification_id WHERE d.subscriber_id = ? "
            "ORDER BY d.id",
            [subscriber_id],
        )

    # --- rate limits (limits storage, see notifier/ratelimit.py) ---------------------
    def hit_rate_limit(self, key: str, amount: int, expires_at: datetime, now: datetime) -> int:
        """Add `amount` to a fixed-window counter in one atomic statement; the new count.

        An expired window restarts at `amount` with the new expiry, so no worker ever has to
        read, decide and write back (two gunicorn workers would race on that).
        """
        row = self._query_one(
            "INSERT INTO rate_limits (key, count, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET "
            "count = CASE WHEN rate_limits.expires_at <= ? THEN excluded.count "
            "ELSE rate_limits.count + excluded.count END, "
            "expires_at = CASE WHEN rate_limits.expires_at <= ? THEN excluded.expires_at "
            "ELSE rate_limits.expires_at END "
            "RETURNING count",
            [key, amount, expires_at, now, now],
        )
        return row["count"]

    def rate_limit_window(self, key: str, now: datetime) -> dict | None:
        """The live window for `key` ({count, expires_at}), None when there is none."""
        return self._query_one(
            "SELECT count, expires_at FROM rate_limits WHERE key = ? AND expires_at > ?",
            [key, now],
        )

    def clear_rate_limit(self, key: str) -> None:
        self._execute("DELETE FROM rate_limits WHERE key = ?", [key])

    def clear_rate_limits(self) -> int:
        return self._execute("DELETE FROM rate_limits")

    def purge_expired_rate_limits(self, now: datetime) -> int:
        return self._execute("DELETE FROM rate_limits WHERE expires_at <= ?", [now])
