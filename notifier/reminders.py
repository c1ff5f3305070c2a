"""Reminders before a maintenance window opens (issue 11): "starting in 24 hours" mails.

Ops set the offsets (MAINTENANCE_REMINDERS, e.g. 24h,1h; notifier.settings); the worker's
`reminders` job (notifier/jobs.py) runs every minute and queues, per upcoming maintenance, the
reminder whose moment (window start minus offset) has come. Rules:

- One reminder per (maintenance, offset, window start), recorded in the ledger
  (maintenance_reminders) in the same transaction that queues it: never twice, across
  restarts and several workers. A moved window has a new start, so its reminders go by the
  new time, and none goes for the old one.
- A late worker (down while several moments passed) sends only the reminder closest to the
  start; an offset farther out than one already reminded of is skipped.
- None once the window has started, none for a cancelled, started or completed maintenance,
  none for one without a known start.
- None for an offset whose moment had passed when the maintenance was first seen: it was
  announced then, and a reminder right after the announcement says nothing new.
- Only subscribers with maintenance mail and reminders on (preferences) get it
  (store `_audience_filter`, audience "reminders").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from . import notifications
from .settings import Settings

log = logging.getLogger(__name__)

# The change a reminder is about (contract of issue 11): nothing new was posted.
REMINDER_CHANGE = {
    "type": "reminder",
    "status": "scheduled",
    "count": 0,
    "update_id": None,
    "detected_at": None,
}


def reminder_due(
    start: datetime,
    first_seen_at: datetime,
    offsets: Sequence[int],
    reminded: Sequence[int],
    now: datetime,
) -> int | None:
    """The offset (minutes before `start`) to remind of at `now`, or None.

    `offsets` are the configured ones, `reminded` those already recorded for this window
    start. Due are the offsets whose moment (start - offset) has come and came after the
    maintenance was first seen; of these the one closest to the start, unless it or a closer
    one was reminded of already. None once the window has started.
    """
    if start <= now:
        return None
    due = [
        offset for offset in offsets if first_seen_at <= start - timedelta(minutes=offset) <= now
    ]
    if not due:
        return None
    nearest = min(due)
    if any(done <= nearest for done in reminded):
        return None
    return nearest


def queue_reminders(store, settings: Settings, now: datetime, stop=None) -> list[int]:
    """Queue every reminder due at `now` (see the module's rules): the new notification ids.

    Each is a "maintenance" notification with content from notifications.incident_content
    for REMINDER_CHANGE plus content["reminder"] = {"offset_minutes": n}, the maintenance's
    audience plus "reminders": true, expiring when the window opens (a reminder after the
    start would be wrong), fanned out in the transaction that records it in the ledger.
    `stop` (a threading.Event): set, no further maintenance is looked at.
    """
    offsets = settings.maintenance_reminder_minutes
    if not offsets:
        return []
    created = []
    catalogues: dict[int, dict[str, str]] = {}
    horizon = now + timedelta(minutes=max(offsets))
    for row in store.upcoming_maintenance(now, horizon):
        if stop is not None and stop.is_set():
            break
        start = row["scheduled_start_at"]
        reminded = store.reminder_offsets(row["id"], start)
        offset = reminder_due(start, row["first_seen_at"], offsets, reminded, now)
        if offset is None:
            continue
        nid = _queue_one(store, row, offset, now, catalogues)
        if nid is not None:
            created.append(nid)
    return created


def _queue_one(store, row: dict, offset: int, now: datetime, catalogues: dict) -> int | None:
    incident_id, start = row["id"], row["scheduled_start_at"]
    incident = store.get_incident(incident_id)
    feed_id = incident["feed_id"]
    if feed_id not in catalogues:
        catalogues[feed_id] = {c["id"]: c["name"] for c in store.list_components(feed_id)}
    content = notifications.incident_content(
        store, dict(REMINDER_CHANGE), incident, catalogues[feed_id]
    )
    content["reminder"] = {"offset_minutes": offset}
    with store.write():
        # The poller may have moved or cancelled the window since it was read: remind only of
        # the window the content shows; the next run sees the new one.
        if not _unchanged(store.get_incident(incident_id), start) or not _unchanged(
            incident, start
        ):
            return None
        # Fails when another worker recorded this reminder (or a nearer one) first.
        reminder_id = store.record_reminder(incident_id, offset, start, now)
        if reminder_id is None:
            return None
        nid = store.create_notification(
            "maintenance",
            content,
            now,
            start,
            feed_id=feed_id,
            incident_id=incident_id,
            audience={
                "components": incident["components"] or [],
                "feed_id": feed_id,
                "reminders": True,
            },
        )
        store.set_reminder_notification(reminder_id, nid)
        store.fan_out(nid, now)
    log.info(
        "reminder notification %s for %s: window opens %s, %s min ahead",
        nid,
        incident["key"],
        start.isoformat(),
        offset,
    )
    return nid


def _unchanged(incident: dict | None, start: datetime) -> bool:
    return (
        incident is not None
        and incident["scheduled_start_at"] == start
        and incident.get("cancelled_at") is None
    )
