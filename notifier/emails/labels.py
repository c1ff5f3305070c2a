"""The short words of each email language: status and impact labels, headings, link labels.

Whole sentences live in the templates (templates/email/<lang>/); these are the words that code
also needs (subjects are assembled and truncated in Python). Both languages have the same keys.
"""

from __future__ import annotations

LANGUAGES = ("de", "en")

STATUS = {
    "de": {
        "investigating": "Untersuchung läuft",
        "identified": "Ursache gefunden",
        "monitoring": "Wird beobachtet",
        "update": "Aktualisierung",
        "resolved": "Behoben",
        "postmortem": "Nachbetrachtung",
        "scheduled": "Geplant",
        "in_progress": "Wartung läuft",
        "verifying": "Wird überprüft",
        "completed": "Abgeschlossen",
        "cancelled": "Abgesagt",
    },
    "en": {
        "investigating": "Investigating",
        "identified": "Identified",
        "monitoring": "Monitoring",
        "update": "Update",
        "resolved": "Resolved",
        "postmortem": "Postmortem",
        "scheduled": "Scheduled",
        "in_progress": "In progress",
        "verifying": "Verifying",
        "completed": "Completed",
        "cancelled": "Cancelled",
    },
}

IMPACT = {
    "de": {
        "none": "Keine Beeinträchtigung",
        "minor": "Gering",
        "major": "Erheblich",
        "critical": "Kritisch",
        "maintenance": "Wartung",
    },
    "en": {
        "none": "None",
        "minor": "Minor",
        "major": "Major",
        "critical": "Critical",
        "maintenance": "Maintenance",
    },
}

WORDS = {
    "de": {
        "kicker": "Statusmeldung",
        "and": "und",
        "greeting": "Hallo liebe/r Kund:in,",
        "signoff": "Viele Grüße\nDein Sinch-Team",
        "summary": "Zusammengefasst",
        "more": "Mehr Informationen",
        "q": "F:",
        "latest": "Aktueller Stand",
        "translation": "Übersetzung",
        "original": "Originaltext der Statusseite (Englisch)",
        "timeline": "Bisheriger Verlauf",
        "timeline_note": "Frühere Meldungen, im englischen Original der Statusseite.",
        "new": "neu",
        "status": "Status",
        "start": "Beginn",
        "end": "Ende",
        "end_open": "noch offen",
        "expected_end": "Geplantes Ende",
        "planned_start": "Geplanter Beginn",
        "posted": "gemeldet am {time}",
        "window": "Zeitraum",
        "planned_window": "Geplanter Zeitraum",
        "completed_at": "Abgeschlossen",
        "affected": "Betroffen",
        "not_named": "{page} (keine einzelnen Komponenten genannt)",
        "impact": "Auswirkung",
        "products": "Produkte",
        "more_count": "+{n} weitere",
        "since": "seit {time}",
        "from": "ab {time}",
        "notice": "Hinweis",
        "times_in": "Alle Zeiten in {zone}.",
        "link_incident": "Zum Vorfall auf der Statusseite",
        "link_maintenance": "Zur Wartung auf der Statusseite",
        "link_page": "Statusseite",
        "button_fallback": "Falls der Button nicht funktioniert, öffne diesen Link:",
        "preferences": "Einstellungen ändern",
        "unsubscribe": "Abmelden",
        "confirm": "Anmeldung bestätigen",
        "undo": "Abmeldung rückgängig machen",
        "subject_confirmation": "Bitte bestätige deine Anmeldung für die Sinch-Statusmeldungen",
        "subject_receipt": "Du bist von den Sinch-Statusmeldungen abgemeldet",
        "read_more": "Ganze Meldung auf der Statusseite lesen",
        "post_more": "ganze Meldung",
        "omitted_one": "1 frühere Meldung auf der Statusseite",
        "omitted": "{n} frühere Meldungen auf der Statusseite",
        "manage": "Deine Statusmeldungen:",
        # Maintenance window changes (issue 11): subject prefix and headline of each mail.
        "change_rescheduled": "Wartung verschoben",
        "change_cancelled": "Wartung abgesagt",
        "change_reminder": "Erinnerung",
        "reminder_in": "Erinnerung: Wartung beginnt in {offset}",
        "reminder_soon": "Erinnerung: Wartung beginnt bald",
        "previously": "Bisher geplant",
        "now": "Neu",
        "cancelled_window": "Abgesagter Zeitraum",
        "until": "bis {time}",
    },
    "en": {
        "kicker": "Status notice",
        "and": "and",
        "greeting": "Hello,",
        "signoff": "Kind regards,\nThe Sinch team",
        "summary": "In short",
        "more": "More information",
        "q": "Q:",
        "latest": "Latest update",
        "translation": "Translation",
        "original": "Text from the status page",
        "timeline": "Earlier updates",
        "timeline_note": "Previous posts, as written on the status page.",
        "new": "new",
        "status": "Status",
        "start": "Start",
        "end": "End",
        "end_open": "not yet resolved",
        "expected_end": "Planned end",
        "planned_start": "Planned start",
        "posted": "posted {time}",
        "window": "Window",
        "planned_window": "Planned window",
        "completed_at": "Completed",
        "affected": "Affected",
        "not_named": "{page} (no individual components named)",
        "impact": "Impact",
        "products": "Products",
        "more_count": "+{n} more",
        "since": "since {time}",
        "from": "from {time}",
        "notice": "Notice",
        "times_in": "All times in {zone}.",
        "link_incident": "This incident on the status page",
        "link_maintenance": "This maintenance on the status page",
        "link_page": "Status page",
        "button_fallback": "If the button does not work, open this link:",
        "preferences": "Change preferences",
        "unsubscribe": "Unsubscribe",
        "confirm": "Confirm subscription",
        "undo": "Undo unsubscribe",
        "subject_confirmation": "Please confirm your subscription to Sinch status notifications",
        "subject_receipt": "You have been unsubscribed from Sinch status notifications",
        "read_more": "Read the whole post on the status page",
        "post_more": "whole post",
        "omitted_one": "1 earlier update on the status page",
        "omitted": "{n} earlier updates on the status page",
        "manage": "Your status emails:",
        "change_rescheduled": "Maintenance rescheduled",
        "change_cancelled": "Maintenance cancelled",
        "change_reminder": "Reminder",
        "reminder_in": "Reminder: maintenance starts in {offset}",
        "reminder_soon": "Reminder: maintenance starts soon",
        "previously": "Previously",
        "now": "Now",
        "cancelled_window": "Cancelled window",
        "until": "until {time}",
    },
}

# A reminder's offset after "in": singular and plural (German: dative, "in 2 Tagen").
UNITS = {
    "de": {"day": ("Tag", "Tagen"), "hour": ("Stunde", "Stunden"), "minute": ("Minute", "Minuten")},
    "en": {"day": ("day", "days"), "hour": ("hour", "hours"), "minute": ("minute", "minutes")},
}


def status_label(lang: str, status: str) -> str:
    """The reader's word for a status; unknown statuses are shown tidied, not hidden."""
    return STATUS[lang].get(status, status.replace("_", " ").capitalize())


def impact_label(lang: str, impact: str | None) -> str | None:
    return IMPACT[lang].get(impact) if impact else None


def join_names(lang: str, names: list[str]) -> str:
    """Names for a sentence: `A`, `A und B`, `A, B und C` (lists and subjects use ", ")."""
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} {WORDS[lang]['and']} {names[-1]}"


def offset_label(lang: str, minutes: int) -> str:
    """A reminder offset for "starts in …": `1 Stunde`/`1 hour`, `24 Stunden`/`24 hours`,
    `90 Minuten`/`90 minutes`, `2 Tagen`/`2 days`. Whole days from two days on (one day reads
    as "24 hours", as ops write MAINTENANCE_REMINDERS=24h), whole hours, else minutes."""
    if minutes >= 2 * 1440 and minutes % 1440 == 0:
        count, unit = minutes // 1440, "day"
    elif minutes >= 60 and minutes % 60 == 0:
        count, unit = minutes // 60, "hour"
    else:
        count, unit = minutes, "minute"
    one, many = UNITS[lang][unit]
    return f"{count} {one if count == 1 else many}"


# Ops alert mails (issue 15, notifier/emails/alerts.py): subject tags per event, the name of
# each alert kind, and the facts' labels. Both languages have the same keys.
ALERT = {
    "de": {
        "kicker": "Ops-Alarm",
        "start": "Alarm",
        "reminder": "Erinnerung",
        "end": "Erledigt",
        "feed_stale": "Feed nicht abrufbar",
        "sending_paused": "Versand angehalten",
        "message_dropped": "Nachricht von SendGrid verworfen",
        "message_invalid": "Nachricht nicht versendbar",
        "backlog": "Versand im Rückstand",
        "expired": "Zustellungen abgelaufen",
        "other": "Alarm",
        "about": "Betrifft",
        "started": "Seit",
        "ended": "Erledigt um",
        "detail": "Details",
        "dashboard": "Dashboard öffnen",
        "greeting": "Hallo,",
        "signoff": "Der Status-Notifier",
        "notification": "Benachrichtigung #{id}",
    },
    "en": {
        "kicker": "Ops alert",
        "start": "Alert",
        "reminder": "Reminder",
        "end": "Recovered",
        "feed_stale": "Feed failing",
        "sending_paused": "Sending paused",
        "message_dropped": "Message dropped by SendGrid",
        "message_invalid": "Message cannot be sent",
        "backlog": "Sending backlog",
        "expired": "Deliveries expired",
        "other": "Alert",
        "about": "About",
        "started": "Since",
        "ended": "Recovered at",
        "detail": "Details",
        "dashboard": "Open the dashboard",
        "greeting": "Hello,",
        "signoff": "The status notifier",
        "notification": "Notification #{id}",
    },
}


# The mail to a channel subscription's owner when the channel was paused or could not be
# verified (issue 12, notifier/emails/notices.py `build_channel_notice`). Channel names as the
# products call themselves; both languages have the same keys.
CHANNEL = {
    "de": {
        "slack": "Slack",
        "teams": "Microsoft Teams",
        "webhook": "Webhook",
        # In sentences, after "an"/"für" or as an object: the accusative.
        "your_slack": "deinen Slack-Kanal",
        "your_teams": "deinen Microsoft-Teams-Kanal",
        "your_webhook": "deinen Webhook",
        "subject_paused": "[Pausiert] Sinch-Statusmeldungen an {channel} sind pausiert",
        "subject_verification_failed": (
            "[Nicht bestätigt] Sinch-Statusmeldungen an {channel} können noch nicht starten"
        ),
        "facts": "Was wir wissen",
        "channel": "Kanal",
        "target": "Ziel",
        "reason": "Grund",
        "paused_at": "Pausiert seit",
        "button": "Einstellungen öffnen",
    },
    "en": {
        "slack": "Slack",
        "teams": "Microsoft Teams",
        "webhook": "Webhook",
        "your_slack": "your Slack channel",
        "your_teams": "your Microsoft Teams channel",
        "your_webhook": "your webhook",
        "subject_paused": "[Paused] Sinch status notifications to {channel} are paused",
        "subject_verification_failed": (
            "[Not verified] Sinch status notifications to {channel} cannot start yet"
        ),
        "facts": "What we know",
        "channel": "Channel",
        "target": "Target",
        "reason": "Reason",
        "paused_at": "Paused since",
        "button": "Open your preferences",
    },
}
