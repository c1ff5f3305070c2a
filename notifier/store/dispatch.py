"""Store queries the dispatcher uses: leases, outcomes, attempts and the pause switch.

Alerts (episodes, their mails, acknowledgement) live in notifier/store/alerts.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from .base import from_db_time, to_db_time
from .deliveries import _marks

PAUSE_KEY = "sending_paused"
RATE_LIMIT_KEY = "rate_limited_until"
PERSONAL_BURST_KEY = "personal_burst_at"
# At most one burst of personal mail per interval (claim_due): the dispatch tick's length, so
# a confirmation waits at most about one tick longer in a flood, and not at all otherwise.
PERSONAL_BURST_INTERVAL = timedelta(seconds=5)


# What claim_due returns of each row it leases.
CLAIMED = (
    "id", "notification_id", "subscriber_id", "email", "language", "timezone", "attempts",
    "possible_duplicate", "priority",
)  # fmt: skip


# SQLite's claim, after its pick (DispatchQueries._claim); parameters: owner, lease_until,
# now, the picked ids as a JSON array. Each id is looked up by rowid (tests/test_priority.py).
CLAIM_BY_IDS = (
    "UPDATE deliveries SET state = 'sending', lease_owner = ?, lease_expires_at = ?, "
    "updated_at = ? WHERE id IN (SELECT value FROM json_each(?))"
)


def _claim_order(row: dict) -> tuple:
    return (row["priority"], row["notification_id"], row["language"], row["timezone"], row["id"])


class DispatchQueries:
    # PostgreSQL adds FOR UPDATE SKIP LOCKED: concurrent workers take disjoint batches instead
    # of queueing behind each other's row locks. SQLite has one writer at a time anyway.
    _claim_lock = ""
    # SQLite: name the partial index. Without ANALYZE statistics (production never runs it)
    # SQLite's planner picks deliveries_due and sorts every pending row for each claim: ~100 ms
    # per claim at 100,000 pending, most of a fan-out's database time (issue 14).
    _claim_index = "INDEXED BY deliveries_pending"
    # SQLite: statements that pick deliveries by a list of ids look each up by rowid. Without
    # ANALYZE statistics (production never runs it) SQLite's planner prefers an index on
    # `state` instead (deliveries_due), walking every row in that state: every 'sending' row
    # of the worker's requests in flight for each still-sending check and "sent" UPDATE, and
    # every 'sent' row ever for count_sent_with. NOT INDEXED still allows the rowid lookup
    # (sqlite.org/lang_indexedby.html); tests/test_query_plans.py checks every such statement.
    _by_id = "NOT INDEXED"

    # --- before claiming -------------------------------------------------------------
    def expire_due(self, now: datetime) -> int:
        """Due rows of expired notifications fail as 'expired'; never sent automatically.

        A row with its own `expires_at` (personal mail sharing a notification, see
        create_personal_notification) expires by it: 72 h after that sign-up, not the window's.

        A row still 'sending' under a dead worker's lease keeps `possible_duplicate`: its
        request may have reached SendGrid (the lost 202), so a resend may be a second copy.
        """
        return self._execute(
            "UPDATE deliveries SET possible_duplicate = CASE WHEN state = 'sending' THEN 1 "
            "ELSE possible_duplicate END, state = 'failed', reason = 'expired', updated_at = ?, "
            "lease_owner = NULL, lease_expires_at = NULL WHERE (state = 'pending' OR "
            "(state = 'sending' AND lease_expires_at <= ?)) AND (expires_at <= ? OR "
            "notification_id IN (SELECT id FROM notifications WHERE expires_at <= ?))",
            [now, now, now, now],
        )

    def reclaim_expired_leases(self, now: datetime) -> int:
        """Rows a dead worker had claimed go back to pending, flagged: it may have sent them."""
        return self._execute(
            "UPDATE deliveries SET state = 'pending', possible_duplicate = 1, lease_owner = NULL, "
            "lease_expires_at = NULL, updated_at = ? WHERE state = 'sending' "
            "AND lease_expires_at <= ?",
            [now, now],
        )

    def claim_due(self, owner: str, now: datetime, lease_until: datetime, limit: int) -> list[dict]:
        """Lease up to `limit` due deliveries: broadcast mail first, then personal mail.

        Order (issue 14): `priority` (-1 ops alert mails, issue 15; 0 incident, maintenance,
        announcement and ops test sends; 1 confirmations and receipts; set at insert), then the
        oldest notification first, its rows in group order (language, zone, id). A flood of older
        confirmations therefore never holds back a newer incident. The subquery walks the partial
        index deliveries_pending (migration 0011: pending rows only, in this order) and stops after
        `limit` due rows, so its cost does not grow with the number of pending rows (EXPLAIN on both
        backends: tests/test_priority.py). Rows come back sorted by (priority, notification,
        language, zone, id): groups stay together, broadcast groups first.

        Personal mail goes out in bursts, at most one per PERSONAL_BURST_INTERVAL (meta
        PERSONAL_BURST_KEY holds when the last one began): a burst takes every personal row
        queued up to its start, in full requests, and rows queued after it wait for the next
        one. Without this, a dispatcher looping through a sign-up flood would send whatever
        trickled in since its last request, a handful of recipients per request; with it a
        flood costs about (languages x zones) requests per interval plus one per
        SEND_BATCH_SIZE confirmations. A lone sign-up after a quiet spell goes at once.
        """
        with self.write(exclusive=False):
            last = self.get_meta(PERSONAL_BURST_KEY)
            last = None if last is None else from_db_time(last)
            burst = last is None or now - last >= PERSONAL_BURST_INTERVAL
            newest = now if burst else last
            rows = self._claim(owner, now, lease_until, newest, limit)
            if burst and any(r["priority"] > 0 for r in rows):
                self.set_meta(PERSONAL_BURST_KEY, to_db_time(now), now)
        # Neither RETURNING (PostgreSQL) nor json_group_array (SQLite) promises an order; the
        # grouping needs the rows sorted.
        rows.sort(key=_claim_order)
        return rows

    def _claim(
        self, owner: str, now: datetime, lease_until: datetime, newest: datetime, limit: int
    ) -> list[dict]:
        """Lease up to `limit` due email rows (claim_due's transaction): their CLAIMED columns.

        PostgreSQL: one UPDATE … RETURNING (claim_statement). SQLite: the rows read as one
        packed row (pick_statement, `_query_long`), then their ids updated by primary key in
        the same BEGIN IMMEDIATE transaction, so no other writer comes between. RETURNING
        would hand the 1000 rows over one by one, each a GIL hand-over that can wait out a
        switch interval while the senders encode request bodies (SQLiteStore._raw_query_long).
        """
        if self._claim_lock:  # PostgreSQL (FOR UPDATE SKIP LOCKED): one statement
            params = [owner, lease_until, now, now, newest, limit]
            return self._query(self.claim_statement(), params)
        rows = self._query_long(
            self.pick_statement(", ".join(CLAIMED)), [now, newest, limit], CLAIMED
        )
        if rows:
            ids = json.dumps([r["id"] for r in rows])
            self._execute(CLAIM_BY_IDS, [owner, lease_until, now, ids])
        return rows

    def pick_statement(self, columns: str = "id") -> str:
        """The SELECT of the rows a claim takes; parameters: now, the newest personal
        `created_at` this claim may take, limit. It walks deliveries_pending in claim order
        and stops after `limit` due rows (PostgreSQL: locking them, skipping locked ones)."""
        return (
            f"SELECT {columns} FROM deliveries {self._claim_index} WHERE state = 'pending' "
            "AND channel = 'email' AND next_attempt_at <= ? "
            "AND (priority <= 0 OR created_at <= ?) ORDER BY priority, notification_id, "
            f"language, timezone, id LIMIT ? {self._claim_lock}"
        )

    def claim_statement(self) -> str:
        """The UPDATE … RETURNING of PostgreSQL's claim; parameters: owner, lease_until, now,
        then pick_statement's.

        PostgreSQL gets the picked ids as an array (`id = ANY(ARRAY(...))`): with `id IN
        (...)` it hash-joins them against a sequential scan of all deliveries, ~180 ms at
        100,000 rows instead of ~7 ms by primary key (EXPLAIN ANALYZE).
        """
        return (
            "UPDATE deliveries SET state = 'sending', lease_owner = ?, lease_expires_at = ?, "
            f"updated_at = ? WHERE id = ANY(ARRAY({self.pick_statement()})) "
            f"RETURNING {', '.join(CLAIMED)}"
        )

    def mailed_before(self, notification_id: int, subscriber_ids: Iterable[int | None]) -> set[int]:
        """Which of these subscribers were already sent an email about the same incident: a
        'sent' delivery of another notification with this one's incident_id (issue 13: only
        they may read "since our last email"). Empty for mails that belong to no incident."""
        ids = sorted({i for i in subscriber_ids if i is not None})
        found: set[int] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            # Driven by UNIQUE (notification_id, subscriber_id): a few earlier notifications
            # times the chunk. The state is checked here, not in SQL: `state = 'sent'` there
            # makes SQLite walk every sent row of the incident (deliveries_claim) instead,
            # ~190 ms instead of ~22 ms per 1000 recipients of 100,000 (issue 13).
            rows = self._query_long(
                "SELECT d.subscriber_id, d.state FROM deliveries d WHERE d.notification_id IN "
                "(SELECT n.id FROM notifications n JOIN notifications this "
                "ON n.incident_id = this.incident_id AND n.id <> this.id WHERE this.id = ?) "
                f"AND d.subscriber_id IN ({_marks(chunk)})",
                [notification_id, *chunk],
                ("subscriber_id", "state"),
            )
            found.update(r["subscriber_id"] for r in rows if r["state"] == "sent")
        return found

    def still_sending(self, delivery_ids: Sequence[int], owner: str, kind: str) -> set[int]:
        """Which rows are still ours to send and still wanted by their subscriber.

        Checked right before each request: an unsubscribe, bounce or complaint that arrived
        after the rows were claimed still stops them.
        """
        return set(self.still_sending_subscribers(delivery_ids, owner, kind))

    def still_sending_subscribers(
        self, delivery_ids: Sequence[int], owner: str, kind: str
    ) -> dict[int, dict]:
        """`still_sending`, with what the links of each row are signed from: {delivery id:
        {subscriber_id, link_nonce, token_nonce, unsubscribed_at}} (all None for an ops test
        send to an address that is no subscriber). One query per request instead of two.
        """
        if not delivery_ids:
            return {}
        wanted = {
            "confirmation": "s.state = 'pending'",
            "receipt": "s.state <> 'suppressed'",
            # Issue 12: the test message goes to the target of a confirmed subscription; the
            # notice that a channel was paused goes to its owner while the subscription lasts.
            "channel_verification": "s.state = 'confirmed' AND s.paused_at IS NULL",
            "channel_notice": "s.state = 'confirmed'",
        }
        # Broadcast: a channel paused since its rows were queued gets nothing more.
        condition = wanted.get(
            kind, "s.state = 'confirmed' AND (d.channel = 'email' OR s.paused_at IS NULL)"
        )
        rows = self._query_long(
            "SELECT d.id, d.subscriber_id, s.link_nonce, s.token_nonce, s.unsubscribed_at "
            f"FROM deliveries d {self._by_id} LEFT JOIN subscribers s ON s.id = d.subscriber_id "
            f"WHERE d.id IN ({_marks(delivery_ids)}) AND d.state = 'sending' "
            f"AND d.lease_owner = ? AND (d.subscriber_id IS NULL OR ({condition}))",
            [*delivery_ids, owner],
            ("id", "subscriber_id", "link_nonce", "token_nonce", "unsubscribed_at"),
        )
        return {r.pop("id"): r for r in rows}

    # --- outcomes --------------------------------------------------------------------
    # Every outcome update names the lease owner: a worker that outlived its lease must not
    # overwrite rows another worker has claimed since.
    def mark_sent(
        self, delivery_ids: Sequence[int], now: datetime, message_id: str | None, owner: str
    ) -> int:
        """Sent, also for rows cancelled while their request was on the wire: it did go out."""
        return self._execute(
            f"UPDATE deliveries {self._by_id} SET state = 'sent', sent_at = ?, message_id = ?, "
            "attempts = attempts + 1, reason = NULL, lease_owner = NULL, lease_expires_at = NULL, "
            f"updated_at = ? WHERE id IN ({_marks(delivery_ids)}) AND lease_owner = ? "
            "AND state IN ('sending', 'cancelled')",
            [now, message_id, now, *delivery_ids, owner],
        )

    def mark_retry(
        self,
        delivery_ids: Sequence[int],
        now: datetime,
        next_attempt_at: datetime,
        reason: str,
        owner: str,
        *,
        attempted: bool = True,
        possible_duplicate: bool = False,
    ) -> int:
        """Back to pending for a later attempt; `attempted=False` when no request was made."""
        if not delivery_ids:
            return 0
        return self._execute(
            f"UPDATE deliveries {self._by_id} SET state = 'pending', next_attempt_at = ?, "
            "reason = ?, attempts = attempts + ?, possible_duplicate = CASE WHEN ? = 1 THEN 1 "
            "ELSE possible_duplicate END, lease_owner = NULL, lease_expires_at = NULL, "
            f"updated_at = ? WHERE id IN ({_marks(delivery_ids)}) AND state = 'sending' "
            "AND lease_owner = ?",
            [next_attempt_at, reason, int(attempted), int(possible_duplicate), now,
             *delivery_ids, owner],
        )  # fmt: skip

    def mark_failed(
        self, delivery_ids: Sequence[int], now: datetime, reason: str, owner: str
    ) -> int:
        return self._execute(
            f"UPDATE deliveries {self._by_id} SET state = 'failed', reason = ?, "
            "attempts = attempts + 1, lease_owner = NULL, lease_expires_at = NULL, updated_at = ? "
            f"WHERE id IN ({_marks(delivery_ids)}) AND state = 'sending' AND lease_owner = ?",
            [reason[:500], now, *delivery_ids, owner],
        )

    def mark_cancelled(
        self, delivery_ids: Sequence[int], now: datetime, reason: str, owner: str
    ) -> int:
        """Cancel claimed rows this worker still holds (never another worker's lease)."""
        return self._execute(
            f"UPDATE deliveries {self._by_id} SET state = 'cancelled', reason = ?, "
            "lease_owner = NULL, lease_expires_at = NULL, updated_at = ? "
            f"WHERE id IN ({_marks(delivery_ids)}) "
            "AND state = 'sending' AND lease_owner = ?",
            [reason[:500], now, *delivery_ids, owner],
        )

    def record_request_attempt(
        self,
        delivery_ids: Sequence[int],
        attempted_at: datetime,
        outcome: str,
        status_code: int | None,
        error: str | None,
        message_id: str | None,
        *,
        once: bool = False,
    ) -> None:
        """One attempt row per delivery of one request, which all share its answer: a single
        INSERT ... SELECT, so recording 1000 recipients costs no Python per row (issue 14).
        The rows are those `record_attempts` would write for the same values, in id order.

        once=True skips deliveries that already have an attempt with this `message_id`
        (SendGrid's X-Message-Id, one per request): for recording a 202 again after an
        error that left unknown whether the first recording committed (a connection lost
        during COMMIT), so the ledger shows the request once. Without a message id (SendGrid
        sends one with every 202) there is nothing to match, and the rows are written again."""
        if not delivery_ids:
            return
        guard, extra = "", []
        if once and message_id is not None:
            guard = (
                " AND NOT EXISTS (SELECT 1 FROM delivery_attempts a "
                "WHERE a.delivery_id = deliveries.id AND a.message_id = ?)"
            )
            extra = [message_id]
        self._execute(
            "INSERT INTO delivery_attempts (delivery_id, attempted_at, outcome, status_code, "
            "error, message_id) SELECT id, ?, ?, ?, ?, ? FROM deliveries "
            f"WHERE id IN ({_marks(delivery_ids)}){guard} ORDER BY id",
            [attempted_at, outcome, status_code, error, message_id, *delivery_ids, *extra],
        )

    def count_sent_with(self, delivery_ids: Sequence[int], message_id: str) -> int:
        """How many of these deliveries are 'sent' by the request with this X-Message-Id."""
        if not delivery_ids:
            return 0
        return self._scalar(
            f"SELECT COUNT(*) AS n FROM deliveries {self._by_id} "
            f"WHERE id IN ({_marks(delivery_ids)}) "
            "AND state = 'sent' AND message_id = ?",
            [*delivery_ids, message_id],
        )

    def record_attempts(self, rows: Iterable[Sequence]) -> None:
        """(delivery_id, attempted_at, outcome, status_code, error, message_id) per row."""
        self._executemany(
            "INSERT INTO delivery_attempts (delivery_id, attempted_at, outcome, status_code, "
            "error, message_id) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )

    # --- pause switch -----------------------------------------------------------------
    def sending_paused(self) -> str | None:
        """The reason sending is paused, or None."""
        return self.get_meta(PAUSE_KEY)

    def pause_sending(self, reason: str, now: datetime) -> None:
        self.set_meta(PAUSE_KEY, reason, now)

    def resume_sending(self, now: datetime) -> None:
        self.set_meta(PAUSE_KEY, None, now)

    def rate_limited_until(self) -> datetime | None:
        value = self.get_meta(RATE_LIMIT_KEY)
        return None if value is None else from_db_time(value)

    def set_rate_limited_until(self, until: datetime, now: datetime) -> None:
        self.set_meta(RATE_LIMIT_KEY, to_db_time(until), now)
