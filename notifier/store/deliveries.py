"""Store queries for notifications and their deliveries (the outbox the worker sends from)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from .base import dumps, loads

# Claim order (issue 14): broadcast mail (incident, maintenance, announcement and ops test
# sends) before personal mail (confirmation, receipt), so a flood of sign-ups can delay
# confirmations but never incident mail. Stored per delivery at insert (column default:
# broadcast), so the claim walks one partial index (deliveries_pending) in order.
PRIORITY_BROADCAST = 0
PRIORITY_PERSONAL = 1
# Personal kinds go by mail to the subscriber's address (for a Slack, Teams or webhook
# subscription: its owner), except the channel verification, the test message that goes to the
# channel's target before it is used (issue 12).
PERSONAL_KINDS = frozenset({"confirmation", "receipt", "channel_verification", "channel_notice"})
# A channel subscription is in the audience once its target accepted the test message and
# while it is not paused; an email subscription always (issue 12, migration 0019).
CHANNEL_READY = "(s.channel = 'email' OR (s.verified_at IS NOT NULL AND s.paused_at IS NULL))"
# Personal rows queued within one window share a notification (create_personal_notification).
# A minute keeps the notifications few (at most 1440 a day per kind) and bounds how long a
# newer row of one language/zone group can be claimed before an older one of another group
# of the same notification: claims are ordered by notification first.
PERSONAL_BATCH_WINDOW = timedelta(minutes=1)
_MAX_SLOTS = 1000


def priority_of(kind: str) -> int:
    """The claim priority of a notification kind: 0 broadcast (first), 1 personal."""
    return PRIORITY_PERSONAL if kind in PERSONAL_KINDS else PRIORITY_BROADCAST


def _window_start(now: datetime) -> datetime:
    """The start of the PERSONAL_BATCH_WINDOW holding `now` (windows count from the epoch)."""
    now = now.astimezone(UTC)
    return now - (now - datetime(1970, 1, 1, tzinfo=UTC)) % PERSONAL_BATCH_WINDOW


def _marks(values: Sequence) -> str:
    return ",".join("?" * len(values))


class DeliveryQueries:
    # --- notifications ---------------------------------------------------------------
    def create_notification(
        self,
        kind: str,
        content: dict,
        now: datetime,
        expires_at: datetime,
        *,
        feed_id: int | None = None,
        incident_id: int | None = None,
        change_id: int | None = None,
        announcement_id: int | None = None,
        resend_of: int | None = None,
        audience: dict | None = None,
        review_state: str = "none",
        review_deadline_at: datetime | None = None,
    ) -> int | None:
        """Insert a notification; None when one already exists for that change."""
        row = self._query_one(
            "INSERT INTO notifications (kind, feed_id, incident_id, change_id, announcement_id, "
            "resend_of, content, audience, review_state, review_deadline_at, created_at, "
            "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (change_id) DO NOTHING RETURNING id",
            [kind, feed_id, incident_id, change_id, announcement_id, resend_of, dumps(content),
             None if audience is None else dumps(audience), review_state, review_deadline_at,
             now, expires_at],
        )  # fmt: skip
        return None if row is None else row["id"]

    def get_notification(self, notification_id: int) -> dict | None:
        row = self._query_one("SELECT * FROM notifications WHERE id = ?", [notification_id])
        if row is not None:
            row["content"] = loads(row["content"])
            row["audience"] = loads(row["audience"])
        return row

    def set_review_state(
        self, notification_id: int, state: str, now: datetime, reviewed_by: str | None = None
    ) -> int:
        return self._execute(
            "UPDATE notifications SET review_state = ?, reviewed_by = COALESCE(?, reviewed_by) "
            "WHERE id = ? AND review_state = 'pending'",
            [state, reviewed_by, notification_id],
        )

    def notifications_past_review(self, now: datetime) -> list[int]:
        rows = self._query(
            "SELECT id FROM notifications WHERE review_state = 'pending' "
            "AND review_deadline_at <= ? ORDER BY id",
            [now],
        )
        return [r["id"] for r in rows]

    def unfanned_notifications(self) -> list[int]:
        """Approved or unreviewed-by-design notifications whose deliveries are not created yet."""
        rows = self._query(
            "SELECT id FROM notifications WHERE fanned_out_at IS NULL "
            "AND review_state IN ('none', 'approved', 'timed_out') "
            "AND kind IN ('incident', 'maintenance', 'announcement') ORDER BY id"
        )
        return [r["id"] for r in rows]

    # --- fan-out ---------------------------------------------------------------------
    def fan_out(self, notification_id: int, now: datetime) -> int:
        """Create one pending delivery per matching confirmed subscriber; idempotent.

        Also supersedes: a subscriber's still-pending delivery of an older notification about
        the same incident is cancelled, so an incident moving fast does not become a burst.
        """
        with self.write():
            n = self._query_one(
                "SELECT id, kind, feed_id, incident_id, audience, fanned_out_at "
                "FROM notifications WHERE id = ?",
                [notification_id],
            )
            if n is None:
                return 0
            if n["incident_id"] is not None and self._scalar(
                "SELECT COUNT(*) AS n FROM notifications WHERE incident_id = ? AND id > ? "
                "AND fanned_out_at IS NOT NULL AND resend_of IS NULL",
                [n["incident_id"], notification_id],
            ):
                # A newer state of this incident already went out (e.g. approved first in
                # review): this older one would only arrive after it, stale.
                self._execute(
                    "UPDATE notifications SET fanned_out_at = ? WHERE id = ?",
                    [now, notification_id],
                )
                return 0
            where, params = self._audience_filter(n)
            created = self._execute(
                "INSERT INTO deliveries (notification_id, subscriber_id, email, language, "
                "timezone, state, next_attempt_at, created_at, updated_at, channel) "
                "SELECT ?, s.id, s.email, s.language, s.timezone, 'pending', ?, ?, ?, s.channel "
                f"FROM subscribers s WHERE s.state = 'confirmed' AND {CHANNEL_READY} AND {where} "
                "ON CONFLICT (notification_id, subscriber_id) DO NOTHING",
                [notification_id, now, now, now, *params],
            )
            if n["incident_id"] is not None:
                self._execute(
                    "UPDATE deliveries SET state = 'cancelled', reason = ?, updated_at = ? "
                    "WHERE state = 'pending' AND notification_id IN (SELECT id FROM "
                    "notifications WHERE incident_id = ? AND id < ?) AND subscriber_id IN "
                    "(SELECT subscriber_id FROM deliveries WHERE notification_id = ?)",
                    [f"superseded by notification {notification_id}", now, n["incident_id"],
                     notification_id, notification_id],
                )  # fmt: skip
            self._execute(
                "UPDATE notifications SET fanned_out_at = COALESCE(fanned_out_at, ?) WHERE id = ?",
                [now, notification_id],
            )
        return created

    def _audience_filter(self, n: dict) -> tuple[str, list]:
        audience = loads(n["audience"]) or {}
        clauses, params = [], []
        if n["kind"] == "incident":
            clauses.append("s.notify_incidents = 1")
        elif n["kind"] == "maintenance":
            clauses.append("s.notify_maintenance = 1")
            if audience.get("reminders"):
                # A reminder before the window opens (notifier/reminders.py): only for those
                # who kept reminders on in their preferences.
                clauses.append("s.maintenance_reminders = 1")
        languages = audience.get("languages")
        if languages:
            clauses.append(f"s.language IN ({_marks(languages)})")
            params += list(languages)
        components = audience.get("components")
        if components:
            # A subscriber's choice is a component or a group; groups resolve to their members
            # here, at fan-out, so a member added after sign-up is covered.
            chosen = self.choices_covering(components)
            clauses.append(
                "(s.all_components = 1 OR EXISTS (SELECT 1 FROM subscriber_components sc "
                f"WHERE sc.subscriber_id = s.id AND sc.component_id IN ({_marks(chosen)})))"
            )
            params += chosen
        elif audience.get("feed_id") is not None:
            # Affected components unknown: everyone who chose any component or group of that
            # page gets it; missing a customer is worse than one extra mail.
            clauses.append(
                "(s.all_components = 1 OR EXISTS (SELECT 1 FROM subscriber_components sc "
                "WHERE sc.subscriber_id = s.id AND (sc.component_id IN "
                "(SELECT id FROM components WHERE feed_id = ?) OR sc.component_id IN "
                "(SELECT group_id FROM group_memberships WHERE feed_id = ?))))"
            )
            params += [audience["feed_id"], audience["feed_id"]]
        return (" AND ".join(clauses) or "1 = 1"), params

    def choices_covering(self, component_ids: Sequence[str]) -> list[str]:
        """The subscription choices (ids) that cover any of these components: the components
        themselves and every group that has ever contained one of them, by the memberships the
        catalogue syncs recorded (group_memberships). Sorted, one query whatever the size."""
        ids = sorted({str(c) for c in component_ids})
        rows = self._query(
            "SELECT DISTINCT group_id FROM group_memberships "
            f"WHERE component_id IN ({_marks(ids)})",
            ids,
        )
        return sorted({*ids, *(r["group_id"] for r in rows)})

    def create_personal_notification(
        self, kind: str, subscriber_id: int, content: dict, now: datetime, expires_at: datetime
    ) -> tuple[int, int]:
        """Queue one personal mail (confirmation, receipt): (notification id, delivery id).

        Personal mail is batched like any other mail (issue 14): every row of a kind queued in
        the same PERSONAL_BATCH_WINDOW (UTC minute) joins one shared notification, found by its
        `batch_key` ("confirmation:2026-11-30T23:45Z"). Dispatch groups claimed rows by
        notification and sends up to SEND_BATCH_SIZE recipients per request, each with their
        own links (notifier/delivery/dispatch.py `_recipient`), so a flood of sign-ups costs
        requests in the tens, not one per sign-up. `content` must be the same for every row of
        a kind (today {"kind": kind}): the first row of a window stores it.

        Each row keeps its own lifetime: the delivery's `expires_at` is this call's
        `expires_at` (expire_due reads it first); the shared notification expires when its
        last possible row does (window end + the same TTL). A second row for the same
        subscriber in one window (UNIQUE (notification_id, subscriber_id)), e.g. a receipt
        after unsubscribe, undo and unsubscribe within a minute, goes to the window's next
        slot ("…Z/1"). The rows get PRIORITY_PERSONAL: claimed after broadcast mail.

        Raises LookupError when there is no such subscriber.
        """
        ttl = expires_at - now
        start = _window_start(now)
        with self.write():
            for slot in range(_MAX_SLOTS):
                key = f"{kind}:{start:%Y-%m-%dT%H:%M}Z" + (f"/{slot}" if slot else "")
                # One round trip while the window's notification exists (every sign-up but
                # the first of a minute); otherwise create it and try again.
                row = self._join_batch(key, subscriber_id, now, expires_at)
                if row is None:
                    self._ensure_batch(kind, key, content, now, start + PERSONAL_BATCH_WINDOW + ttl)
                    row = self._join_batch(key, subscriber_id, now, expires_at)
                if row is not None:
                    return row["notification_id"], row["id"]
                if self.get_subscriber(subscriber_id) is None:
                    break
            # Inside the transaction: a notification created for nobody is rolled back.
            raise LookupError(f"no subscriber {subscriber_id}")

    def _join_batch(
        self, key: str, subscriber_id: int, now: datetime, expires_at: datetime
    ) -> dict | None:
        """The subscriber's pending row in the notification with this batch key; None when
        there is no such notification or subscriber, or the subscriber has a row in it."""
        return self._query_one(
            "INSERT INTO deliveries (notification_id, subscriber_id, email, language, timezone, "
            "state, next_attempt_at, created_at, updated_at, priority, expires_at, channel) "
            "SELECT n.id, s.id, s.email, s.language, s.timezone, 'pending', ?, ?, ?, ?, ?, "
            "CASE WHEN n.kind = 'channel_verification' THEN s.channel ELSE 'email' END "
            "FROM notifications n JOIN subscribers s ON s.id = ? WHERE n.batch_key = ? "
            "ON CONFLICT (notification_id, subscriber_id) DO NOTHING "
            "RETURNING id, notification_id",
            [now, now, now, PRIORITY_PERSONAL, expires_at, subscriber_id, key],
        )

    def _ensure_batch(
        self, kind: str, key: str, content: dict, now: datetime, expires_at: datetime
    ) -> None:
        """Create the shared notification with this batch key unless it exists (ON CONFLICT:
        also when a writer without the exclusive write lock created it meanwhile)."""
        self._execute(
            "INSERT INTO notifications (kind, content, batch_key, created_at, expires_at, "
            "fanned_out_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (batch_key) DO NOTHING",
            [kind, dumps(content), key, now, expires_at, now],
        )

    # --- ledger ----------------------------------------------------------------------
    def cancel_pending_for_subscriber(
        self,
        subscriber_id: int,
        reason: str,
        now: datetime,
        kinds: tuple[str, ...] = ("incident", "maintenance", "announcement", "confirmation"),
    ) -> int:
        """Unsubscribe or erase: nothing queued for this subscriber goes out any more.

        Rows a dispatcher has claimed ('sending') are cancelled too; it re-checks right before
        each request, so only a request already on the wire can still reach the address.
        """
        return self._execute(
            "UPDATE deliveries SET state = 'cancelled', reason = ?, updated_at = ? "
            "WHERE subscriber_id = ? AND state IN ('pending', 'sending') AND notification_id IN "
            f"(SELECT id FROM notifications WHERE kind IN ({_marks(kinds)}))",
            [reason, now, subscriber_id, *kinds],
        )
