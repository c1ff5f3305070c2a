"""Store queries for subscriber import and export (notifier/importer.py, issue 15).

Set-based where the import is big: the existing rows for a file's addresses come in chunks of
CHUNK, new rows, their choices and consent records go in with one executemany each, so 10,000
rows cost a few dozen statements, not tens of thousands of round trips.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

CHUNK = 500  # placeholders per IN (...): far below SQLite's and PostgreSQL's limits


def _marks(values: Sequence) -> str:
    return ", ".join("?" * len(values))


def _chunks(values: Sequence, size: int = CHUNK):
    for start in range(0, len(values), size):
        yield values[start : start + size]


class ImportQueries:
    # --- import ----------------------------------------------------------------------
    def subscribers_by_email(self, emails: Iterable[str]) -> dict[str, dict]:
        """The stored rows for these (normalized) addresses: email -> {id, email, state,
        language, timezone, all_components, components}; `components` the stored choices,
        sorted. Addresses not stored are absent."""
        found: dict[str, dict] = {}
        for chunk in _chunks(sorted(set(emails))):
            for row in self._query(
                "SELECT id, email, state, language, timezone, all_components FROM subscribers "
                f"WHERE email IN ({_marks(chunk)}) AND channel = 'email'",
                chunk,
            ):
                row["components"] = []
                found[row["email"]] = row
        by_id = {row["id"]: row for row in found.values()}
        for chunk in _chunks(sorted(by_id)):
            for row in self._query(
                "SELECT subscriber_id, component_id FROM subscriber_components "
                f"WHERE subscriber_id IN ({_marks(chunk)}) ORDER BY component_id",
                chunk,
            ):
                by_id[row["subscriber_id"]]["components"].append(row["component_id"])
        return found

    def insert_imported_subscribers(self, rows: list[dict], now: datetime) -> dict[str, int]:
        """Insert new subscribers (each a dict of every column but the timestamps created_at
        and updated_at, which are `now`); email -> new id. Call inside store.write()."""
        if not rows:
            return {}
        columns = [*rows[0], "created_at", "updated_at"]
        self._executemany(
            f"INSERT INTO subscribers ({', '.join(columns)}) VALUES ({_marks(columns)})",
            ([*(r[c] for c in rows[0]), now, now] for r in rows),
        )
        ids: dict[str, int] = {}
        emails = [r["email"] for r in rows]
        for chunk in _chunks(emails):
            for row in self._query(
                f"SELECT id, email FROM subscribers WHERE email IN ({_marks(chunk)}) "
                "AND channel = 'email'",
                chunk,
            ):
                ids[row["email"]] = row["id"]
        return ids

    def add_components_many(self, pairs: Iterable[tuple[int, str]]) -> None:
        """(subscriber id, component or group id) choices for subscribers that have none."""
        rows = [list(p) for p in pairs]
        if rows:
            self._executemany(
                "INSERT INTO subscriber_components (subscriber_id, component_id) VALUES (?, ?)",
                rows,
            )

    def insert_imported_consents(self, rows: list[dict]) -> None:
        """Consent records of imported subscribers: dicts with subscriber_id, consent_version,
        language, signup_at, confirmed_at (None: waiting for the confirmation mail), source,
        imported_at."""
        if not rows:
            return
        columns = [
            "subscriber_id",
            "consent_version",
            "language",
            "signup_at",
            "confirmed_at",
            "source",
            "imported_at",
        ]
        self._executemany(
            f"INSERT INTO consents ({', '.join(columns)}) VALUES ({_marks(columns)})",
            ([r[c] for c in columns] for r in rows),
        )

    # --- export ----------------------------------------------------------------------
    def export_subscribers(
        self, *, state: str = "", language: str = "", choices: Sequence[str] = ()
    ) -> list[dict]:
        """Subscribers for the CSV export, oldest first: id, email, state, language, timezone,
        all_components, created_at, confirmed_at, components (sorted choice ids), and from
        the newest confirmed consent record consent_source and consented_at (None when there
        is none). Filters: state, language, and `choices` (the choice ids covering a
        component, store.choices_covering): only subscribers with all components or one of
        them. Empty filters match every email subscription: Slack, Teams and webhook
        subscriptions (issue 12) are not exported, since the file imports back as email
        subscriptions of their owners."""
        where, params = ["s.channel = 'email'"], []
        if state:
            where.append("s.state = ?")
            params.append(state)
        if language:
            where.append("s.language = ?")
            params.append(language)
        if choices:
            where.append(
                "(s.all_components = 1 OR EXISTS (SELECT 1 FROM subscriber_components f "
                f"WHERE f.subscriber_id = s.id AND f.component_id IN ({_marks(choices)})))"
            )
            params.extend(choices)
        condition = " AND ".join(where)
        rows = self._query(
            "SELECT s.id, s.email, s.state, s.language, s.timezone, s.all_components, "
            "s.created_at, s.confirmed_at, c.source AS consent_source, "
            "c.confirmed_at AS consented_at FROM subscribers s LEFT JOIN consents c ON c.id = "
            "(SELECT MAX(id) FROM consents WHERE subscriber_id = s.id "
            f"AND confirmed_at IS NOT NULL) WHERE {condition} ORDER BY s.id",
            params,
        )
        by_id = {row["id"]: row for row in rows}
        for row in rows:
            row["components"] = []
        for pair in self._query(
            "SELECT sc.subscriber_id, sc.component_id FROM subscriber_components sc "
            f"JOIN subscribers s ON s.id = sc.subscriber_id WHERE {condition} "
            "ORDER BY sc.subscriber_id, sc.component_id",
            params,
        ):
            by_id[pair["subscriber_id"]]["components"].append(pair["component_id"])
        return rows
