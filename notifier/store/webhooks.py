"""Store queries for SendGrid Event Webhook events: deduplication, suppression, provider events."""

from __future__ import annotations

from datetime import datetime

from .deliveries import _marks


class WebhookQueries:
    def record_webhook_event(
        self, sg_event_id: str, event: str, delivery_id: int | None, now: datetime
    ) -> bool:
        """Remember an event id; False when it was seen before (SendGrid delivers at least once)."""
        inserted = self._execute(
            "INSERT INTO webhook_events (sg_event_id, event, delivery_id, received_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (sg_event_id) DO NOTHING",
            [sg_event_id, event, delivery_id, now],
        )
        return inserted == 1

    def purge_webhook_events(self, before: datetime) -> int:
        """Forget dedup ids older than SendGrid's retry window."""
        return self._execute("DELETE FROM webhook_events WHERE received_at < ?", [before])

    def subscriber_for_event(self, delivery_id: int | None, email: str | None) -> int | None:
        """The subscriber an event is about: by its delivery, else by address.

        The delivery only counts when it went to the event's address: an id from another
        database (a restored backup, a second environment on the same SendGrid account) must
        not suppress a stranger.
        """
        address = (email or "").strip().lower()
        if delivery_id is not None:
            row = self._query_one(
                "SELECT subscriber_id, email FROM deliveries WHERE id = ?", [delivery_id]
            )
            if row and (not address or row["email"].strip().lower() == address):
                return row["subscriber_id"]
        if not address:
            return None
        # By address: the email subscription only. The same address owns any Slack, Teams or
        # webhook subscriptions (issue 12); its bounce says nothing about those targets.
        found = self._scalar(
            "SELECT id FROM subscribers WHERE email = ? AND channel = 'email'", [address]
        )
        if found is None:  # stored with capitals by an older version or by hand
            found = self._scalar(
                "SELECT id FROM subscribers WHERE lower(email) = ? AND channel = 'email'",
                [address],
            )
        return found

    def suppress_subscriber(self, subscriber_id: int, reason: str, now: datetime) -> int:
        """Stop all mail to a subscriber; returns how many pending deliveries were cancelled.

        A Slack, Teams or webhook subscriber (issue 12) is named when a mail to its owner
        bounced (confirmation, receipt, notice): the address is bad, the target is not. Its
        queued owner mails stop, and so does the owner's email subscription if there is one;
        the channel stays confirmed and its messages still go.
        """
        with self.write():
            row = self._query_one(
                "SELECT channel, email FROM subscribers WHERE id = ?", [subscriber_id]
            )
            if row is not None and row["channel"] != "email":
                cancelled = self._execute(
                    "UPDATE deliveries SET state = 'suppressed', reason = ?, updated_at = ? "
                    "WHERE subscriber_id = ? AND state = 'pending' AND channel = 'email'",
                    [reason, now, subscriber_id],
                )
                mail_sub = self._scalar(
                    "SELECT id FROM subscribers WHERE lower(email) = lower(?) "
                    "AND channel = 'email'",
                    [row["email"]],
                )
                if mail_sub is not None:
                    cancelled += self.suppress_subscriber(mail_sub, reason, now)
                return cancelled
            # The first reason is kept: it says why the address went bad.
            self._execute(
                "UPDATE subscribers SET state = 'suppressed', suppressed_at = ?, "
                "suppressed_reason = ?, updated_at = ? WHERE id = ? AND state <> 'suppressed'",
                [now, reason, now, subscriber_id],
            )
            # Only unclaimed rows: a row in 'sending' belongs to a dispatcher holding its lease.
            return self._execute(
                "UPDATE deliveries SET state = 'suppressed', reason = ?, updated_at = ? "
                "WHERE subscriber_id = ? AND state = 'pending'",
                [reason, now, subscriber_id],
            )

    def record_provider_event(
        self, delivery_id: int, event: str, at: datetime, reason: str | None = None
    ) -> bool:
        """Note SendGrid's latest word on a delivery, with its reason (its state stays as it is).

        Events arrive out of order; an older event never overwrites a newer one. The reason
        (SendGrid's `reason` or `response` text, or None) always goes with its event.
        """
        changed = self._execute(
            "UPDATE deliveries SET provider_event = ?, provider_event_at = ?, provider_reason = ? "
            "WHERE id = ? AND (provider_event_at IS NULL OR provider_event_at <= ?)",
            [event, at, reason, delivery_id, at],
        )
        return changed == 1

    def notifications_of_deliveries(self, delivery_ids: list[int]) -> list[int]:
        """The distinct notification ids of these deliveries, ascending (unknown ids left out)."""
        if not delivery_ids:
            return []
        rows = self._query(
            f"SELECT DISTINCT notification_id FROM deliveries WHERE id IN ({_marks(delivery_ids)}) "
            "ORDER BY notification_id",
            list(delivery_ids),
        )
        return [r["notification_id"] for r in rows]
