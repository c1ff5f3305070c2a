"""iCalendar (RFC 5545) for maintenance windows: the mail attachment and the private feed.

Every maintenance mail whose content has a window (content["incident"]["scheduled_start"] and
["scheduled_end"]) carries `maintenance.ics` (`attachment`), and each subscriber's calendar
feed (notifier/calendar_feed.py) lists the same events (`feed_calendar`). Both are built here
with the `icalendar` library, which does the RFC 5545 line folding and text escaping.

One event per maintenance, the same in the mail and in the feed:

- UID `maintenance-<incident key>@<page host>`: the Statuspage incident key is unique per
  page, the host of the status page (content["page_url"], else the incident link) tells pages
  apart. It never changes while the maintenance is rescheduled or cancelled, so a calendar app
  updates or removes the entry it has instead of adding a second one (RFC 5545 3.8.4.7).
- SEQUENCE = content["incident"]["window_sequence"] (absent: 0), the count of reschedules and
  cancellations: a client keeps the copy with the highest SEQUENCE (RFC 5546 2.1.4).
- STATUS:CANCELLED when content["change"] == "cancelled" (or `cancelled=True` in the feed),
  else STATUS:CONFIRMED (RFC 5545 3.8.1.11).
- DTSTART/DTEND: the window, in UTC (a "Z" time, RFC 5545 3.3.5 form #2), so the attachment
  does not depend on the reader's zone and one rendering per (notification, language) serves
  every zone (issue 14). DTEND is left out when the feed gave an end not after the start
  (RFC 5545 3.8.2.2 requires DTEND later than DTSTART).
- DTSTAMP and LAST-MODIFIED: the newest update time in the content (the latest post on the
  status page), else the window start. They are taken from the content, not the clock, so the
  same content always gives the same bytes: the shared rendering stays one per language, the
  feed's ETag stays stable between polls, and tests compare whole files. A reschedule or
  cancellation without a new post keeps the DTSTAMP; SEQUENCE, compared first, decides.
- SUMMARY and DESCRIPTION in the mail's language (WORDS below; like the mail's own short words
  in notifier/emails/labels.py, they are rendered in the worker, outside any request), URL the
  incident link.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from icalendar import Calendar, Event, vDuration

from .emails import text
from .emails.zoned import Attachment

PRODID = "-//Sinch//status-notifier//EN"
FILENAME = "maintenance.ics"
MIME_TYPE = "text/calendar; method=PUBLISH; charset=UTF-8"
# How often a calendar app should fetch the private feed again (RFC 7986 REFRESH-INTERVAL and
# Outlook's X-PUBLISHED-TTL, which Google Calendar ignores: it polls on its own schedule).
REFRESH_INTERVAL = timedelta(hours=1)
LANGUAGES = ("de", "en")

WORDS = {
    "de": {
        "maintenance": "Wartung",
        "cancelled": "Wartung abgesagt",
        "intro": "Geplante Wartung auf der Statusseite von {page}.",
        "intro_cancelled": "Diese Wartung auf der Statusseite von {page} wurde abgesagt.",
        "affected": "Betroffen: {names}",
        "details": "Details und aktueller Stand: {link}",
        "calname": "{page}-Wartungen",
        "caldesc": "Geplante Wartungen der Statusseite von {page} für dein Abonnement.",
    },
    "en": {
        "maintenance": "Maintenance",
        "cancelled": "Maintenance cancelled",
        "intro": "Scheduled maintenance on the {page} status page.",
        "intro_cancelled": "This maintenance on the {page} status page was cancelled.",
        "affected": "Affected: {names}",
        "details": "Details and current status: {link}",
        "calname": "{page} maintenance",
        "caldesc": "Scheduled maintenance on the {page} status page for your subscription.",
    },
}


def has_window(content: Mapping) -> bool:
    """True for maintenance content with both window times (the attachment rule)."""
    incident = content.get("incident") if isinstance(content, Mapping) else None
    return (
        content.get("kind") == "maintenance"
        and isinstance(incident, Mapping)
        and bool(incident.get("scheduled_start"))
        and bool(incident.get("scheduled_end"))
    )


def uid(content: Mapping) -> str:
    """`maintenance-<key>@<host>`: stable per maintenance (see the module docstring)."""
    incident = content["incident"]
    host = (
        urlsplit(content.get("page_url") or "").hostname
        or urlsplit(incident.get("link") or "").hostname
        or "status-notifier.invalid"
    )
    return f"maintenance-{incident['key']}@{host}"


def _utc(value: str) -> datetime:
    """A content time ("2023-06-27T16:30:00Z", render.iso_utc) as an aware UTC datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _stamp(content: Mapping, start: datetime) -> datetime:
    times = [_utc(u["at"]) for u in content.get("updates") or () if u.get("at")]
    return max(times) if times else start


def vevent(content: Mapping, language: str, *, cancelled: bool | None = None) -> Event:
    """The VEVENT of one maintenance (module docstring for each property).

    `content` is a maintenance content dict (docs/ARCHITECTURE.md, "Email content"); `cancelled`
    (default: content["change"] == "cancelled") sets STATUS:CANCELLED. ValueError for an
    unknown language or content without a window (see has_window).
    """
    if language not in WORDS:
        raise ValueError(f"unsupported language {language!r} (use one of: de, en)")
    if not has_window(content):
        raise ValueError("maintenance content without a window has no calendar event")
    words, incident = WORDS[language], content["incident"]
    if cancelled is None:
        cancelled = content.get("change") == "cancelled"
    start, end = _utc(incident["scheduled_start"]), _utc(incident["scheduled_end"])
    stamp = _stamp(content, start)
    # Title, products and link as the mail shows them (notifier/emails/incident.py): a title
    # ops edited in review for this language, else the feed's, as one line of plain text.
    names = [text.single_line(c.get("name")) for c in incident.get("components") or ()]
    names = [name for name in names if name]
    override = (content.get("overrides") or {}).get(language) or {}
    plain = content.get("text_format") == "plain"
    page = text.single_line(content.get("page_name")) or "Sinch"
    title = (
        text.single_line(override.get("title"))
        or (text.tidy_line if plain else text.single_line)(incident.get("title"))
        or page
    )
    link = str(incident.get("link") or "").strip()
    link = link if link.lower().startswith(("https://", "http://")) else ""
    lead = words["cancelled" if cancelled else "maintenance"]
    summary = f"{lead}: {', '.join(names)} – {title}" if names else f"{lead}: {title}"
    lines = [words["intro_cancelled" if cancelled else "intro"].format(page=page)]
    if names:
        lines.append(words["affected"].format(names=", ".join(names)))
    if link:
        lines.append(words["details"].format(link=link))

    event = Event()
    event.add("uid", uid(content))
    event.add("dtstamp", stamp)
    event.add("last-modified", stamp)
    event.add("sequence", int(incident.get("window_sequence") or 0))
    event.add("dtstart", start)
    if end > start:
        event.add("dtend", end)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("summary", summary)
    event.add("description", "\n".join(lines))
    if link:
        event.add("url", link)
    event.add("transp", "OPAQUE")
    return event


def _calendar() -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    return calendar


def maintenance_event(content: Mapping, language: str) -> bytes:
    """The `maintenance.ics` bytes (UTF-8, CRLF lines): a VCALENDAR with METHOD:PUBLISH and
    this maintenance's one VEVENT. ValueError as `vevent`."""
    calendar = _calendar()
    calendar.add_component(vevent(content, language))
    return calendar.to_ical()


def attachment(content: Mapping, language: str) -> Attachment | None:
    """The `maintenance.ics` attachment a mail with this content carries; None when it carries
    none (not maintenance, or no window)."""
    if not has_window(content):
        return None
    return Attachment(FILENAME, MIME_TYPE, maintenance_event(content, language))


def feed_calendar(
    events: Iterable[tuple[Mapping, bool]], language: str, page_name: str = "Sinch"
) -> bytes:
    """A subscriber's feed: VCALENDAR (METHOD:PUBLISH, calendar name and description in
    `language`, refresh hints) with one VEVENT per (content, cancelled) in `events`."""
    words = WORDS[language]
    calendar = _calendar()
    calendar.add("x-wr-calname", words["calname"].format(page=page_name))
    calendar.add("name", words["calname"].format(page=page_name))
    calendar.add("x-wr-caldesc", words["caldesc"].format(page=page_name))
    calendar.add("refresh-interval", vDuration(REFRESH_INTERVAL), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(REFRESH_INTERVAL))
    for content, cancelled in events:
        calendar.add_component(vevent(content, language, cancelled=cancelled))
    return calendar.to_ical()
