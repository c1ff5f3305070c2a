"""Store queries for named leases (one poller among several worker dynos).

A lease is a row, not session state (no advisory lock): it holds behind a transaction pooler
such as PgBouncer, and across reconnects.
"""

from __future__ import annotations

from datetime import datetime, timedelta


class LeaseQueries:
    def acquire_lease(self, name: str, owner: str, now: datetime, ttl: timedelta) -> dict | None:
        """Take or renew the lease until now + ttl; None while another owner holds an unexpired
        one. Returns the row: name, owner, expires_at, last_run_at.

        One statement, so two workers asking at the same moment cannot both get it. last_run_at
        is the lease's, not the owner's: a new holder sees when anyone last ran.
        """
        return self._query_one(
            "INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
            "expires_at = excluded.expires_at "
            "WHERE leases.owner = excluded.owner OR leases.expires_at <= ? "
            "RETURNING name, owner, expires_at, last_run_at",
            [name, owner, now + ttl, now],
        )

    def mark_lease_run(self, name: str, owner: str, now: datetime) -> int:
        return self._execute(
            "UPDATE leases SET last_run_at = ? WHERE name = ? AND owner = ?", [now, name, owner]
        )

    def release_lease(self, name: str, owner: str, now: datetime) -> int:
        """Let the lease expire now (only the owner can); the row and last_run_at stay."""
        return self._execute(
            "UPDATE leases SET expires_at = ? WHERE name = ? AND owner = ? AND expires_at > ?",
            [now, name, owner, now],
        )
