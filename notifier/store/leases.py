"""Store queries for named leases (one poller among several worker dynos)."""

from __future__ import annotations

from datetime import datetime, timedelta


class LeaseQueries:
    def acquire_lease(self, name: str, owner: str, now: datetime, ttl: timedelta) -> dict | None:
        """Take or renew the lease; None while another owner holds an unexpired one.

        One statement, so two workers asking at the same moment cannot both get it.
        """
        return self._query_one(
            "INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
            "expires_at = excluded.expires_at, last_run_at = CASE WHEN leases.owner = "
            "excluded.owner THEN leases.last_run_at ELSE NULL END "
            "WHERE leases.owner = excluded.owner OR leases.expires_at <= ? "
            "RETURNING name, owner, expires_at, last_run_at",
            [name, owner, now + ttl, now],
        )

    def mark_lease_run(self, name: str, owner: str, now: datetime) -> int:
        return self._execute(
            "UPDATE leases SET last_run_at = ? WHERE name = ? AND owner = ?", [now, name, owner]
        )

    def release_lease(self, name: str, owner: str) -> int:
        return self._execute("DELETE FROM leases WHERE name = ? AND owner = ?", [name, owner])
