"""Store queries for the dashboard charts (notifier/admin/charts.py): counts per UTC hour or day.

Each query reads one bounded time range through an index (deliveries_outcome_time,
poll_log_time; migration 0018) and groups in SQL, so a dashboard render costs the rows of that
range, not the whole ledger. Buckets are UTC: the first 13 characters ("2026-11-26T12") or 10
("2026-11-26") of the stored time, which is fixed-width UTC text on SQLite (base.TS_FORMAT) and
the same text from to_char on PostgreSQL. Sparse results: a bucket without rows is absent, the
caller fills in zeros.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

# The outcomes a delivery ends in, as the ledger says them ("expired": a failed row whose
# notification went stale before it could be sent, see store/ledger.py).
DELIVERY_OUTCOMES = ("sent", "failed", "expired", "suppressed", "cancelled")
# A poll's outcome in poll_log: a usable answer, a usable answer with damaged entries or unknown
# words (feed warning), or a failure (fetch error, refused body; STALE_AFTER_POLLS counts these).
POLL_OUTCOMES = ("ok", "warning", "error")
# How long poll_log keeps a row: the chart shows 24 hours; a day more for a late look.
POLL_LOG_KEEP = timedelta(hours=48)

_HOUR, _DAY = 13, 10
# When the subscriber left: its unsubscribe or suppression, whichever its state says.
_LEFT_AT = (
    "CASE WHEN state = 'suppressed' THEN COALESCE(suppressed_at, updated_at) "
    "WHEN state = 'unsubscribed' THEN COALESCE(unsubscribed_at, updated_at) "
    "ELSE COALESCE(unsubscribed_at, suppressed_at, updated_at) END"
)


class ChartQueries:
    # SQLite: the hourly outcome counts walk deliveries_outcome_time over the time range.
    # Without ANALYZE statistics SQLite's planner takes an index on `state` instead and reads
    # every sent, failed, suppressed and cancelled row there has ever been, each time the
    # admin dashboard draws its chart (tests/test_query_plans.py). PostgreSQL plans with its
    # own statistics.
    _outcome_index = "INDEXED BY deliveries_outcome_time"

    # --- poll log (written with the feed's state, notifier/store/feeds.py) -----------
    def log_poll(self, feed_id: int, now: datetime, outcome: str) -> None:
        """Record one poll's outcome ("ok" | "error"), or turn this poll's "ok" into "warning".

        A warning is recorded after the poll's success in the same feed lock (poller.ingest), so
        it marks that row rather than counting a second poll. Rows older than POLL_LOG_KEEP go.
        """
        if outcome == "warning":
            self._execute(
                "UPDATE poll_log SET outcome = 'warning' "
                "WHERE feed_id = ? AND polled_at = ? AND outcome = 'ok'",
                [feed_id, now],
            )
            return
        self._execute(
            "INSERT INTO poll_log (feed_id, polled_at, outcome) VALUES (?, ?, ?)",
            [feed_id, now, outcome],
        )
        self._execute(
            "DELETE FROM poll_log WHERE feed_id = ? AND polled_at < ?",
            [feed_id, now - POLL_LOG_KEEP],
        )

    # --- chart counts --------------------------------------------------------------
    def deliveries_by_hour(self, start: datetime, end: datetime) -> dict[tuple[datetime, str], int]:
        """{(UTC hour, outcome): deliveries} that reached an outcome in [start, end).

        Outcomes are DELIVERY_OUTCOMES; the time is the row's last state change (updated_at:
        webhook events after sending do not move it). Waiting or sending rows are not counted.
        """
        bucket = self._bucket("updated_at", _HOUR)
        rows = self._query(
            f"SELECT {bucket} AS bucket, CASE WHEN state = 'failed' AND reason = 'expired' "
            "THEN 'expired' ELSE state END AS outcome, COUNT(*) AS n FROM deliveries "
            f"{self._outcome_index} WHERE updated_at >= ? AND updated_at < ? "
            "AND state IN ('sent', 'failed', 'suppressed', 'cancelled') "
            "GROUP BY bucket, outcome",
            [start, end],
        )
        return {(_hour(r["bucket"]), r["outcome"]): int(r["n"]) for r in rows}

    def polls_by_hour(self, start: datetime, end: datetime) -> dict[tuple[int, datetime, str], int]:
        """{(feed id, UTC hour, outcome): polls} from poll_log in [start, end)."""
        bucket = self._bucket("polled_at", _HOUR)
        rows = self._query(
            f"SELECT feed_id, {bucket} AS bucket, outcome, COUNT(*) AS n FROM poll_log "
            "WHERE polled_at >= ? AND polled_at < ? GROUP BY feed_id, bucket, outcome",
            [start, end],
        )
        return {(r["feed_id"], _hour(r["bucket"]), r["outcome"]): int(r["n"]) for r in rows}

    def subscribers_by_day(self, start: datetime, end: datetime) -> dict:
        """Subscriber movements per UTC day in [start, end) and the confirmed count at start.

        {"confirmed_at_start": int, "confirmed": {date: n}, "left": {date: n},
        "signups": {date: n}, "unsubscribes": {date: n}}. A subscriber counts as confirmed from
        its confirmed_at until it left (unsubscribed or suppressed, by its state); the store keeps
        only the latest of each time, so an earlier confirm-leave-return is seen as its last
        episode. The subscribers table is small next to the ledger: these read it whole.
        """
        left = f"{_LEFT_AT} < ?"
        confirmed_at_start = self._scalar(
            "SELECT COUNT(*) AS n FROM subscribers WHERE confirmed_at < ? "
            f"AND NOT (state <> 'confirmed' AND {left})",
            [start, start],
        )
        return {
            "confirmed_at_start": int(confirmed_at_start or 0),
            "confirmed": self._per_day("confirmed_at", "confirmed_at IS NOT NULL", start, end),
            "left": self._per_day(
                _LEFT_AT, "confirmed_at IS NOT NULL AND state <> 'confirmed'", start, end
            ),
            "signups": self._per_day("created_at", "1 = 1", start, end),
            "unsubscribes": self._per_day("unsubscribed_at", "1 = 1", start, end),
        }

    def _per_day(self, column: str, where: str, start: datetime, end: datetime) -> dict:
        bucket = self._bucket(f"({column})", _DAY)
        rows = self._query(
            f"SELECT {bucket} AS bucket, COUNT(*) AS n FROM subscribers WHERE {where} "
            f"AND ({column}) >= ? AND ({column}) < ? GROUP BY bucket",
            [start, end],
        )
        return {date.fromisoformat(r["bucket"]): int(r["n"]) for r in rows}

    def _bucket(self, column: str, length: int) -> str:
        """SQL for the UTC hour (13) or day (10) of a time column, as ISO text."""
        if self.backend == "postgres":
            pattern = 'YYYY-MM-DD"T"HH24' if length == _HOUR else "YYYY-MM-DD"
            return f"to_char({column} AT TIME ZONE 'UTC', '{pattern}')"
        return f"substr({column}, 1, {length})"


def _hour(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H").replace(tzinfo=UTC)
