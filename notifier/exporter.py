"""Subscriber export as CSV (issue 15, part 5), in the import's own columns (importer.COLUMNS),
so a file exported here imports back with every row unchanged.

Columns: email, state, language, timezone, components (choice ids, `;`-separated; empty: all
components), consent_source and consented_at (the newest confirmed consent record: where and
when the person agreed; "signup form" for our own form), created_at, confirmed_at. Times are
ISO 8601 UTC. RFC 4180 quoting, CRLF line ends. Email subscriptions only: a Slack, Teams or
webhook subscription (issue 12) would import back as an email subscription of its owner.

Formula guard (OWASP "CSV Injection"): a cell that starts with = + - @ tab or CR is written
with a leading `'`, so a spreadsheet shows it as text instead of running it; an address may
legitimately start with "-" or "=", and the import strips the guard again
(importer.unescape_cell).

Addresses appear in the file only: the audit entry ("subscribers.export") and the app log
carry the filters and the row count.
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import datetime

from .importer import FORMULA_PREFIXES

log = logging.getLogger(__name__)

HEADER = (
    "email",
    "state",
    "language",
    "timezone",
    "components",
    "consent_source",
    "consented_at",
    "created_at",
    "confirmed_at",
)
SIGNUP_FORM = "signup form"


def escape_cell(value) -> str:
    """One cell as text, with the formula guard (see the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _record(row: dict) -> list[str]:
    consented = row["consented_at"]
    source = row["consent_source"] or (SIGNUP_FORM if consented else None)
    components = "" if row["all_components"] else ";".join(row["components"])
    values = (
        row["email"],
        row["state"],
        row["language"],
        row["timezone"],
        components,
        source,
        consented,
        row["created_at"],
        row["confirmed_at"],
    )
    return [escape_cell(v) for v in values]


def component_choices(store, component_id: str) -> list[str]:
    """The choice ids whose subscribers hear about this component (or group): it, its
    members, and every group that ever contained one of them."""
    members = [c["id"] for c in store.list_components() if c["group_id"] == component_id]
    return store.choices_covering([component_id, *members])


def export_csv(
    store, *, state: str = "", language: str = "", component: str = ""
) -> tuple[str, int]:
    """(CSV text, number of subscribers) for these filters; empty filters match everyone."""
    choices = component_choices(store, component) if component else ()
    rows = store.export_subscribers(state=state, language=language, choices=choices)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(_record(row) for row in rows)
    return out.getvalue(), len(rows)


def audit_detail(state: str, language: str, component: str, count: int) -> dict:
    """What the audit log keeps of an export: filters and count, no address."""
    return {"state": state or "all", "language": language or "all",
            "component": component or "all", "rows": count}  # fmt: skip
