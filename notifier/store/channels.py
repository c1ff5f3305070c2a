"""Store queries of the channel dispatcher (issue 12): claiming Slack, Teams and webhook rows,
and the verification, failure streak and pause of a channel subscription.

A channel delivery is a `deliveries` row like a mail (migration 0019: `channel` <> 'email'), so
expiry, lease reclaim, attempts, the ledger and resend are the mail path's (store/dispatch.py).
What differs is the subscription's health: a target that keeps failing is paused and its
owner told once by mail (`channel_notice`), the way Atlassian Statuspage disables a webhook
subscription whose endpoint keeps failing and emails its owner.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from .base import dumps, from_db_time, to_db_time
from .deliveries import PRIORITY_PERSONAL, _marks

# The owner's notice and a re-queued verification stay due this long (a confirmation's
# lifetime, notifications.PERSONAL_TTL): an owner mail days late is still worth sending.
CHANNEL_NOTICE_TTL = timedelta(hours=72)
# A test message not accepted within a day is stale: the owner sends it again from the
# preferences page.
VERIFICATION_TTL = timedelta(hours=24)


def _channel_claim_order(row: dict) -> tuple:
    return (row["priority"], row["next_attempt_at"], row["id"])


class ChannelQueries:
    def claim_channel_due(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[dict]:
        """Lease up to `limit` due Slack, Teams and webhook rows.

        Order: `priority` (broadcast before the verification test messages), then the longest
        due first (`next_attempt_at`), then id; the subquery walks the partial index
        deliveries_channel_pending (migration 0019: pending channel rows in this order) and
        stops after `limit` rows. PostgreSQL skips rows another worker is claiming (FOR UPDATE
        SKIP LOCKED, as claim_due). Rows come back in that order, each with id,
        notification_id, subscriber_id, email (the owner), channel, language, timezone,
        attempts, possible_duplicate, priority and next_attempt_at.
        """
        index = "INDEXED BY deliveries_channel_pending" if self._claim_index else ""
        pick = (
            f"SELECT id FROM deliveries {index} WHERE state = 'pending' AND channel <> 'email' "
            f"AND next_attempt_at <= ? ORDER BY priority, next_attempt_at, id LIMIT ? "
            f"{self._claim_lock}"
        )
        ids = f"id = ANY(ARRAY({pick}))" if self._claim_lock else f"id IN ({pick})"
        with self.write(exclusive=False):
            rows = self._query(
                "UPDATE deliveries SET state = 'sending', lease_owner = ?, lease_expires_at = ?, "
                f"updated_at = ? WHERE {ids} RETURNING id, notification_id, subscriber_id, "
                "email, channel, language, timezone, attempts, possible_duplicate, priority, "
                "next_attempt_at",
                [owner, lease_until, now, now, limit],
            )
        for row in rows:
            row["next_attempt_at"] = from_db_time(row["next_attempt_at"])
        rows.sort(key=_channel_claim_order)  # RETURNING order is unspecified
        return rows

    def channel_subscribers(self, subscriber_ids: Iterable[int]) -> dict[int, dict]:
        """{id: subscribers row} for these ids (target, secret, link nonce, pause state)."""
        ids = sorted(set(subscriber_ids))
        found: dict[int, dict] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for row in self._query(
                f"SELECT * FROM subscribers WHERE id IN ({_marks(chunk)})", chunk
            ):
                found[row["id"]] = row
        return found

    def mark_channel_verified(self, subscriber_id: int, now: datetime) -> int:
        """The target accepted the test message: the subscription joins fan-out from now on
        (deliveries.CHANNEL_READY). Keeps the first `verified_at`; clears the failure streak."""
        return self._execute(
            "UPDATE subscribers SET verified_at = COALESCE(verified_at, ?), failure_count = 0, "
            "failing_since = NULL, updated_at = ? WHERE id = ? AND channel <> 'email'",
            [now, now, subscriber_id],
        )

    def record_channel_outcome(
        self,
        subscriber_id: int,
        ok: bool,
        reason: str | None,
        now: datetime,
        permanent: bool,
        *,
        pause_after_failures: int = 5,
        pause_after_hours: int = 24,
    ) -> bool:
        """Count one answer of a channel's target; True when this failure paused it.

        A success ends the streak (`failure_count` 0, `failing_since` NULL). A failure starts
        it (`failing_since`), and a permanent one (404/410, another 4xx, an unsafe target)
        adds one to `failure_count`. The subscription is paused (pause_channel) after
        CHANNEL_PAUSE_AFTER_FAILURES permanent failures without a success in between, or when
        failures of any kind (5xx, timeouts, retries exhausted) have lasted
        CHANNEL_PAUSE_AFTER_HOURS: a target down for a day is not coming back by itself
        (`pause_after_failures` and `pause_after_hours` carry those settings; the store has
        none of its own).
        """
        with self.write():
            if ok:
                self._execute(
                    "UPDATE subscribers SET failure_count = 0, failing_since = NULL "
                    "WHERE id = ? AND (failure_count <> 0 OR failing_since IS NOT NULL)",
                    [subscriber_id],
                )
                return False
            row = self._query_one(
                "UPDATE subscribers SET failure_count = failure_count + ?, "
                "failing_since = COALESCE(failing_since, ?), updated_at = ? "
                "WHERE id = ? AND paused_at IS NULL RETURNING failure_count, failing_since",
                [int(permanent), now, now, subscriber_id],
            )
            if row is None:  # already paused (or gone): nothing more to count
                return False
            since = from_db_time(row["failing_since"])
            if permanent and row["failure_count"] >= pause_after_failures:
                why = f"{row['failure_count']} permanent failures in a row: {reason}"
            elif now - since >= timedelta(hours=pause_after_hours):
                why = f"failing for {pause_after_hours} hours: {reason}"
            else:
                return False
            return self.pause_channel(subscriber_id, why, now)

    def pause_channel(
        self, subscriber_id: int, reason: str, now: datetime, *, event: str = "paused"
    ) -> bool:
        """Pause a channel subscription; True when this call paused it (False: already paused).

        Cancels its pending and claimed channel rows (a request already on the wire is still
        recorded as sent, store.mark_sent) and queues ONE `channel_notice` mail to the owner:
        content {"kind", "channel", "target" (masked), "reason", "event" ("paused" or
        "verification_failed"), "paused_at"} in a notification of its own with batch_key
        "channel_notice:<id>:<paused_at>". Two workers pausing at once: only the one whose
        UPDATE finds `paused_at` NULL queues the notice (and the UNIQUE batch_key backs that).
        """
        from ..delivery.senders import mask_target

        with self.write():
            sub = self._query_one(
                "UPDATE subscribers SET paused_at = ?, paused_reason = ?, updated_at = ? "
                "WHERE id = ? AND channel <> 'email' AND paused_at IS NULL "
                "RETURNING id, channel, email, target_url, language, timezone",
                [now, reason[:500], now, subscriber_id],
            )
            if sub is None:
                return False
            self._execute(
                "UPDATE deliveries SET state = 'cancelled', reason = ?, updated_at = ? "
                "WHERE subscriber_id = ? AND channel <> 'email' "
                "AND state IN ('pending', 'sending')",
                ["channel paused", now, subscriber_id],
            )
            stamp = to_db_time(now)
            content = {
                "kind": "channel_notice",
                "channel": sub["channel"],
                "target": mask_target(sub["target_url"]),
                "reason": reason,
                "event": event,
                "paused_at": stamp,
            }
            expires_at = now + CHANNEL_NOTICE_TTL
            notice = self._query_one(
                "INSERT INTO notifications (kind, content, batch_key, created_at, expires_at, "
                "fanned_out_at) VALUES ('channel_notice', ?, ?, ?, ?, ?) "
                "ON CONFLICT (batch_key) DO NOTHING RETURNING id",
                [dumps(content), f"channel_notice:{subscriber_id}:{stamp}", now, expires_at,
                 now],
            )  # fmt: skip
            if notice is not None:
                self._execute(
                    "INSERT INTO deliveries (notification_id, subscriber_id, email, language, "
                    "timezone, state, next_attempt_at, created_at, updated_at, priority, "
                    "expires_at, channel) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, "
                    "'email')",
                    [notice["id"], subscriber_id, sub["email"], sub["language"],
                     sub["timezone"], now, now, now, PRIORITY_PERSONAL, expires_at],
                )  # fmt: skip
        return True

    def resume_channel(self, subscriber_id: int, now: datetime) -> int | None:
        """Lift a pause: clear it and the failure streak, and queue the verification test
        message again (the target must accept it before broadcasts go there: `verified_at`
        is cleared). The delivery id of the test message; None when nothing was paused."""
        with self.write():
            resumed = self._execute(
                "UPDATE subscribers SET paused_at = NULL, paused_reason = NULL, "
                "failure_count = 0, failing_since = NULL, verified_at = NULL, updated_at = ? "
                "WHERE id = ? AND channel <> 'email' AND paused_at IS NOT NULL",
                [now, subscriber_id],
            )
            if not resumed:
                return None
            return self.queue_verification(subscriber_id, now)

    def queue_verification(self, subscriber_id: int, now: datetime) -> int:
        """Queue the test message to a channel's target (confirm, "send test message again",
        resume), replacing one still queued or claimed, so the target gets one; due for
        VERIFICATION_TTL. The delivery id."""
        with self.write():
            self.cancel_pending_for_subscriber(
                subscriber_id, "verification queued again", now, ("channel_verification",)
            )
            _, delivery_id = self.create_personal_notification(
                "channel_verification",
                subscriber_id,
                {"kind": "channel_verification"},
                now,
                now + VERIFICATION_TTL,
            )
        return delivery_id
