"""From recorded changes (and personal events) to notifications with their deliveries."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from . import render
from .settings import Settings

log = logging.getLogger(__name__)

# Confirmation and receipt mails are only useful while the link in them still works.
PERSONAL_TTL = {"confirmation": timedelta(hours=72), "receipt": timedelta(days=7)}
_PAGE_SUFFIX = re.compile(r"\s*[-–—]\s*(Incident History|Status)\s*\Z", re.I)


def queue_personal(store, kind: str, subscriber_id: int, now: datetime) -> tuple[int, int]:
    """Queue a confirmation or unsubscribe receipt for one subscriber; the worker sends it.

    Returns (notification id, delivery id). The row joins the notification shared by every
    mail of this kind queued in the same minute (store.create_personal_notification), so
    dispatch batches it with the others, each recipient with their own links; it expires
    PERSONAL_TTL[kind] after `now` whatever the others do. Raises ValueError for another
    kind, LookupError for an unknown subscriber.
    """
    if kind not in PERSONAL_TTL:
        raise ValueError(f"not a personal mail kind: {kind}")
    return store.create_personal_notification(
        kind, subscriber_id, {"kind": kind}, now, now + PERSONAL_TTL[kind]
    )


def page_name(feed: dict) -> str:
    """'Sinch Status - Incident History' -> 'Sinch'."""
    title = _PAGE_SUFFIX.sub("", (feed.get("title") or "").strip())
    title = re.sub(r"\s+Status\Z", "", title)
    return title or "Sinch"


# Changes about the window, not about a post: nothing in the timeline is new (contract of
# issue 11); "reminder" is R's synthetic change.
WINDOW_CHANGES = frozenset({"rescheduled", "cancelled", "reminder"})


def incident_content(store, change: dict, incident: dict, names: dict[str, str]) -> dict:
    """The JSON snapshot a notification carries: incident, components, the whole timeline, and
    which updates triggered it (`"new": true` on each; see new_update_ids).

    `change` is a change row (store.list_changes) or a synthetic dict with at least "type",
    "status" and "count". For the window changes (WINDOW_CHANGES) no update is new and
    new_updates is 0; the window shown is the change's own: for `rescheduled` the window it
    moved to (and "previous_window" the one before), for `cancelled` the window cancelled.
    Without those columns (a reminder) it is the incident's current window.
    `incident.window_sequence` comes from the incident row (absent when 0).
    """
    feed = store.feed_by_id(incident["feed_id"])
    rows = store.incident_updates(incident["id"])
    about_window = change["type"] in WINDOW_CHANGES
    new_ids = set() if about_window else new_update_ids(change, rows)
    start, end, previous = _change_window(change, incident)
    return render.incident_content(
        kind=incident["kind"],
        page_name=page_name(feed),
        page_url=feed.get("page_url") or "",
        key=incident["key"],
        title=incident["title"],
        link=incident["link"],
        impact=incident["impact"],
        components=[
            {"id": cid, "name": names[cid]} for cid in incident["components"] or [] if cid in names
        ],
        scheduled_start=start,
        scheduled_end=end,
        status=change["status"],
        change=change["type"],
        new_updates=0 if about_window else change["count"],
        updates=((u["status"], u["posted_at"], u["text"], u["id"] in new_ids) for u in rows),
        time_doubt=incident.get("time_doubt") or (),
        window_sequence=_window_sequence(change, incident),
        previous_window=previous,
    )


def _change_window(change: dict, incident: dict) -> tuple:
    """(start, end, previous window or None) a notification about `change` shows."""
    current = (incident["scheduled_start_at"], incident["scheduled_end_at"])
    previous = (change.get("previous_start_at"), change.get("previous_end_at"))
    if change["type"] == "rescheduled" and change.get("window_sequence") is not None:
        return change["window_start_at"], change["window_end_at"], previous
    if change["type"] == "cancelled" and change.get("window_sequence") is not None:
        return (*previous, None)
    return (*current, None)


def _window_sequence(change: dict, incident: dict) -> int:
    """The SEQUENCE the content carries: the change's own for a window change (a later move
    must not show in this one's calendar entry), else the incident's."""
    if change.get("window_sequence") is not None:
        return change["window_sequence"]
    return incident.get("window_sequence") or 0


def new_update_ids(change: dict, updates: list[dict]) -> set[int]:
    """The ids of the stored updates a change row reports: those first seen by the same poll
    (`first_seen_at` equals the change's `detected_at`; store.save_detection writes both from one
    clock reading), and always the row the change points at. Display times do not decide:
    Statuspage lets a post be shown earlier than it was made (issue 16), and such a post is
    still what the mail is about."""
    new = {u["id"] for u in updates if u.get("first_seen_at") == change.get("detected_at")}
    if change.get("update_id") is not None:
        new.add(change["update_id"])
    return new


def notify_changes(store, settings: Settings, now: datetime) -> list[int]:
    """Turn every unprocessed change into a notification (and deliveries unless under review).

    Each change is handled in one transaction with its UNIQUE(change_id) notification, so a
    crash or a second worker never produces a second notification for the same change.
    """
    created = []
    catalogues: dict[int, dict[str, str]] = {}
    for change in store.list_changes(unprocessed_only=True):
        incident = store.get_incident(change["incident_id"])
        feed_id = incident["feed_id"]
        if feed_id not in catalogues:  # one catalogue read per feed, not per change
            catalogues[feed_id] = {c["id"]: c["name"] for c in store.list_components(feed_id)}
        content = incident_content(store, change, incident, catalogues[feed_id])
        expires_at = _expiry(change, settings, now)
        if change["type"] == "rescheduled" and expires_at <= now:
            # A move to a window that has already ended tells no one anything any more.
            log.info("change %s (%s %s) is stale; no notification", change["id"],
                     change["key"], change["type"])  # fmt: skip
            with store.write():
                store.mark_change_processed(change["id"], now)
            continue
        review = settings.review_mode
        with store.write():
            nid = store.create_notification(
                content["kind"],
                content,
                now,
                expires_at,
                feed_id=change["feed_id"],
                incident_id=change["incident_id"],
                change_id=change["id"],
                audience={"components": incident["components"] or [], "feed_id": change["feed_id"]},
                review_state="pending" if review else "none",
                review_deadline_at=(
                    now + timedelta(minutes=settings.review_timeout_minutes) if review else None
                ),
            )
            if nid is not None and not review:
                store.fan_out(nid, now)
            store.mark_change_processed(change["id"], now)
        if nid is not None:
            created.append(nid)
            log.info(
                "notification %s for %s %s (%s)",
                nid,
                change["key"],
                change["status"],
                change["type"],
            )
    return created


def _expiry(change: dict, settings: Settings, now: datetime) -> datetime:
    """When the notification about `change` goes stale.

    Stale news is never sent automatically: the clock starts at the update's own time (for a
    window change: its detection, posted_at). A rescheduled notice is also stale once the new
    window has ended."""
    expires_at = min(change["posted_at"], now) + timedelta(hours=settings.notification_ttl_hours)
    end = change.get("window_end_at")
    if change["type"] == "rescheduled" and end is not None:
        expires_at = min(expires_at, end)
    return expires_at


def release_reviews(store, now: datetime) -> list[int]:
    """Unreviewed notifications go out unchanged once their review deadline passed."""
    released = []
    for nid in store.notifications_past_review(now):
        with store.write():
            if store.set_review_state(nid, "timed_out", now, reviewed_by="timeout"):
                store.fan_out(nid, now)
                released.append(nid)
    for nid in store.unfanned_notifications():
        store.fan_out(nid, now)
    return released
