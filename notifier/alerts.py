"""Ops alerts (issue 15): episodes opened and ended by rules, mailed to OPS_ALERT_EMAILS.

An alert is an episode: it starts when its condition starts, ends when the condition is gone
(or when ops mark it resolved, for the kinds that describe an event rather than a state), and
is stored with its start, end and acknowledgement (store: notifier/store/alerts.py). Kinds:

- feed_stale (key "feed_stale:<feed id>"): a configured feed failed STALE_AFTER_POLLS polls in
  a row; ends with its next successful poll. Mailed when it starts and when it ends.
- sending_paused: SendGrid refused the API key (401/403, notifier/delivery/dispatch.py); ends
  when ops resume sending. SendGrid will not send the mail about a refused key: it is queued
  like every alert mail, waits with the other deliveries while sending is paused, and goes out
  once ops resume (EMAIL_BACKEND=outbox has no key to refuse). The dashboard shows
  the alert from its first second; that, not the mail, is how ops learn of a refused key.
- message_dropped (hooks.DROP_ALERT) and message_invalid (dispatch.py): SendGrid dropped a
  message for a message-level reason, or a message could not be sent at all. Events, not
  states: open until ops mark them resolved; a later drop while one is open only refreshes it.
- backlog: the oldest due delivery has waited BACKLOG_ALERT_MINUTES or longer; ends when no
  delivery has. Not judged while sending is paused (the pause is the alert then; an open
  backlog episode is left as it is).
- expired (key "expired:<notification id>"): deliveries of a notification expired unsent
  (NOTIFICATION_TTL_HOURS); open until ops mark it resolved, once per notification. Alert
  mails that expire are not alerted about (that would be a loop).

Mails: each episode's start mail once, its recovery mail once (feed_stale only: the issue's
"and again when it recovers"), claimed in the transaction that queues them, so neither
restarts nor several workers running `check_alerts` at once send one twice. Repeats: an open
episode nobody acknowledged gets a reminder mail REMIND_AFTER after ops were last mailed
about it; acknowledging it on the dashboard stops them. Without OPS_ALERT_EMAILS episodes are
still recorded and shown, and nothing is mailed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from .settings import Settings

log = logging.getLogger(__name__)

FEED_STALE = "feed_stale"
SENDING_PAUSED = "sending_paused"
BACKLOG = "backlog"
EXPIRED = "expired"
# Kinds that end by themselves when their condition is gone; the others ops mark resolved
# (the dashboard offers that button for them only). sending_paused ends when ops resume.
SELF_ENDING = frozenset({FEED_STALE, BACKLOG, SENDING_PAUSED})
RECOVERY_MAILED = frozenset({FEED_STALE})
REMIND_AFTER = timedelta(hours=4)
# Expired deliveries are looked for this far back: the job runs every minute, so this only
# covers a worker that was down meanwhile.
EXPIRY_LOOKBACK = timedelta(days=1)
# An alert mail that cannot go within this long (e.g. a paused account) expires: a day-old
# "feed failing" is history, and the dashboard keeps the episode.
ALERT_MAIL_TTL = timedelta(hours=24)


@dataclass
class AlertRun:
    """What one `check_alerts` did: episodes opened and ended (keys), mails queued (ids)."""

    opened: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    mailed: list[int] = field(default_factory=list)


def check_alerts(store, settings: Settings, now: datetime) -> AlertRun:
    """Judge every rule at `now`, then queue the mails due (see the module's rules)."""
    run = AlertRun()
    _feeds(store, settings, now, run)
    _backlog(store, settings, now, run)
    _expired(store, now, run)
    run.mailed = mail_alerts(store, settings, now)
    if run.opened or run.ended or run.mailed:
        log.info("alerts: opened %s, ended %s, mails %s", run.opened, run.ended, run.mailed)
    return run


def _open(store, run: AlertRun, kind: str, message: str, now: datetime, key: str, subject=None):
    if store.raise_alert(kind, message, now, key=key, subject=subject) is not None:
        run.opened.append(key)


def _end(store, run: AlertRun, key: str, now: datetime) -> None:
    if store.end_alert(key, now):
        run.ended.append(key)


def shown_url(url: str) -> str:
    """A feed URL as alerts show it (dashboard, mail through SendGrid): without user info,
    query or fragment, where a private Statuspage page's feed carries its access key."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    host = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _feeds(store, settings: Settings, now: datetime, run: AlertRun) -> None:
    failing = set()
    for feed in store.list_feeds():
        if feed["url"] not in settings.feed_urls:
            continue
        failures = int(feed["consecutive_failures"] or 0)
        if failures >= settings.stale_after_polls:
            key = f"{FEED_STALE}:{feed['id']}"
            failing.add(key)
            shown = shown_url(feed["url"])
            error = (feed["last_error"] or "-").replace(feed["url"], shown)
            message = f"{failures} polls in a row failed; last error: {error}"
            _open(store, run, FEED_STALE, message, now, key, shown)
    # Recovered, or no longer configured: either way nobody waits for this feed any more.
    for alert in store.open_alerts(FEED_STALE):
        if alert["episode_key"] not in failing:
            _end(store, run, alert["episode_key"], now)


def _backlog(store, settings: Settings, now: datetime, run: AlertRun) -> None:
    if store.sending_paused():
        return
    due_at = store.oldest_due_at(now)
    limit = timedelta(minutes=settings.backlog_alert_minutes)
    if due_at is not None and now - due_at >= limit:
        minutes = int((now - due_at).total_seconds() // 60)
        message = f"the oldest due delivery has waited {minutes} min (due since {due_at:%H:%M} UTC)"
        _open(store, run, BACKLOG, message, now, BACKLOG)
    else:
        _end(store, run, BACKLOG, now)


def _expired(store, now: datetime, run: AlertRun) -> None:
    for row in store.expired_deliveries(now - EXPIRY_LOOKBACK):
        nid = row["notification_id"]
        message = f"{row['expired']} deliveries of notification #{nid} ({row['kind']}) expired"
        _open(store, run, EXPIRED, message, now, f"{EXPIRED}:{nid}", f"notification:{nid}")


def mail_alerts(store, settings: Settings, now: datetime) -> list[int]:
    """Queue every alert mail due at `now` to OPS_ALERT_EMAILS: start mails of open episodes
    never mailed, recovery mails, reminders. The new notification ids ([] without addresses)."""
    if not settings.ops_alert_emails:
        return []
    queued = []
    due = [("start", a) for a in store.alerts_to_mail("start")]
    due += [("end", a) for a in store.alerts_to_mail("end") if a["kind"] in RECOVERY_MAILED]
    due += [("reminder", a) for a in store.alerts_to_mail("reminder", now - REMIND_AFTER)]
    for event, alert in due:
        nid = store.queue_alert_mail(
            alert["id"],
            event,
            alert_content(alert, event, settings),
            settings.ops_alert_emails,
            settings.ops_language,
            now,
            now + ALERT_MAIL_TTL,
            reminder_before=now - REMIND_AFTER,
        )
        if nid is not None:
            queued.append(nid)
    return queued


def alert_content(alert: dict, event: str, settings: Settings) -> dict:
    """The content snapshot of an alert mail (kind "ops_alert", notifier/emails/alerts.py):
    {"kind", "event": start | end | reminder, "alert": {"id", "kind", "subject", "message",
    "started_at", "ended_at" (ISO 8601 UTC or None)}, "dashboard_url"}."""
    ended = alert.get("resolved_at")
    return {
        "kind": "ops_alert",
        "event": event,
        "alert": {
            "id": alert["id"],
            "kind": alert["kind"],
            "subject": alert.get("subject"),
            "message": alert["message"],
            "started_at": alert["created_at"].isoformat(),
            "ended_at": None if ended is None else ended.isoformat(),
        },
        "dashboard_url": f"{settings.public_base_url}/admin/",
    }
