"""Small builders for tests: Statuspage-shaped Atom bodies and subscriber rows."""

from __future__ import annotations

import html
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from notifier.store.base import to_db_time


def atom(entries: Iterable[dict], title: str = "Sinch Status - Incident History") -> bytes:
    """A minimal Atom history feed; each entry: key, title, updates [(when, Status, text)]."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<feed xml:lang="en-US" xmlns="http://www.w3.org/2005/Atom">',
        f"<id>tag:status.example.com,2005:/history</id><title>{title}</title>",
    ]
    for e in entries:
        updates: Sequence = e["updates"]
        newest = max(u[0] for u in updates)
        content = "".join(
            f"<p><small>{when:%b} <var data-var='date'>{when.day}</var>, "
            f"<var data-var='time'>{when:%H:%M}</var> UTC</small><br>"
            f"<strong>{status}</strong> - {html.escape(text)}</p>"
            for when, status, text in sorted(updates, key=lambda u: u[0], reverse=True)
        )
        if e.get("window"):
            start, end = e["window"]
            content = (
                f"<p><strong>THIS IS A SCHEDULED EVENT {start:%b} {start.day}, {start:%H:%M} - "
                f"{end:%H:%M} UTC</strong></p>" + content
            )
        stamp = newest.strftime("%Y-%m-%dT%H:%M:%SZ")
        parts.append(
            "<entry>"
            f"<id>tag:status.example.com,2005:Incident/{e['key']}</id>"
            f"<published>{stamp}</published><updated>{stamp}</updated>"
            f'<link rel="alternate" type="text/html" '
            f'href="https://status.example.com/incidents/{e["key"]}"/>'
            f"<title>{html.escape(e['title'])}</title>"
            f'<content type="html">{html.escape(content)}</content>'
            "</entry>"
        )
    parts.append("</feed>")
    return "\n".join(parts).encode()


def add_subscriber(
    store,
    email: str,
    *,
    now: datetime,
    language: str = "en",
    timezone: str | None = None,
    state: str = "confirmed",
    components: Sequence[str] | None = None,
    incidents: bool = True,
    maintenance: bool = True,
) -> int:
    """Insert a subscriber row directly (the subscription flow has its own tests)."""
    zone = timezone or ("Europe/Berlin" if language == "de" else "UTC")
    row = store._query_one(
        "INSERT INTO subscribers (email, language, timezone, all_components, notify_incidents, "
        "notify_maintenance, state, token_nonce, link_nonce, created_at, updated_at, "
        "confirmed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [email, language, zone, components is None, incidents, maintenance, state,
         secrets.token_urlsafe(8) if state == "pending" else None, secrets.token_urlsafe(8),
         now, now, now if state == "confirmed" else None],
    )  # fmt: skip
    for component in components or []:
        store._execute(
            "INSERT INTO subscriber_components (subscriber_id, component_id) VALUES (?, ?)",
            [row["id"], component],
        )
    return row["id"]


def add_component(store, feed_id: int, component_id: str, name: str, now: datetime) -> None:
    store._execute(
        "INSERT INTO components (id, feed_id, name, synced_at) VALUES (?, ?, ?, ?)",
        [component_id, feed_id, name, to_db_time(now)],
    )


def table(store, name: str, order: str = "id") -> list[dict]:
    return store._query(f"SELECT * FROM {name} ORDER BY {order}")


def raw_rows(db, sql: str, *params) -> list[dict]:
    """Rows as SQLite stores them (timestamps as fixed-width UTC text) on either backend."""
    out = []
    for row in db._raw_query(sql, db._params(params)):
        out.append({k: to_db_time(v) if isinstance(v, datetime) else v for k, v in row.items()})
    return out


def poll_and_mail_through_fakes(app, settings, sendgrid, feed_url: str) -> None:
    """Point the app at one local feed and the fake SendGrid (the official library, a local
    server): the whole poll -> notify -> dispatch path runs for real."""
    app.extensions["settings"] = replace(
        settings,
        feed_urls=(feed_url,),
        email_backend="sendgrid",
        sendgrid_api_key=sendgrid.api_key,
        sendgrid_api_host=sendgrid.base_url,
        # A give-up bound, not what these tests are about: CI's test_mail_lead timed out at
        # 2 s (2.11 s, load average 11 on 2 cores) and lost both mails.
        sendgrid_timeout_seconds=10.0,
        mail_from="Sinch Status <status@sinch.example>",
    )


def dispatched_envelope(email, category: str) -> dict:
    """A Mail Send request body as the dispatcher sends it with the test settings
    (tests/conftest.py), all but its personalizations: `email` is the rendered Email (subject,
    text, html), `category` the notification kind (one-click header for every kind that
    dispatch.ONE_CLICK_KINDS names; the three callers send such kinds)."""
    return {
        "from": {"email": "status@sinch.example", "name": "Sinch Status"},
        "subject": email.subject,
        "content": [
            {"type": "text/plain", "value": email.text},
            {"type": "text/html", "value": email.html},
        ],
        "categories": [category],
        "headers": {
            "List-Id": "Sinch status <status.sinch.example>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        "tracking_settings": {
            "click_tracking": {"enable": False, "enable_text": False},
            "open_tracking": {"enable": False},
            "subscription_tracking": {"enable": False},
            "ganalytics": {"enable": False},
        },
    }
