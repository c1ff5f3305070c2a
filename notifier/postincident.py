"""The post-incident notice template: a composer pre-filled from a detected incident.

Shaped like Sinch's own notice after the June 2023 outage: what happened and what did not
work, how to recognise affected messages and what you can do, billing and prevention, where to
stay informed and whether you need to act, whether it is fully fixed and where to get help.
Ops edit every answer before sending; the texts here are only a careful starting point.
"""

from __future__ import annotations

from .render import iso_utc


def _qa(pairs: list[tuple[str, str]]) -> list[dict]:
    return [{"q": q, "a": a} for q, a in pairs]


def _german(product: str, page_url: str) -> dict:
    return {
        "title": f"Informationen zur Störung von {product}",
        "intro": (
            f"im unten genannten Zeitraum war {product} nur eingeschränkt nutzbar. Die Störung "
            "ist behoben und alles läuft wieder wie gewohnt. Es tut uns leid, dass dich das in "
            "deiner Arbeit aufgehalten hat. Hier erfährst du, was passiert ist, was das für dich "
            "bedeutet und was wir daraus lernen."
        ),
        "bullets": [
            f"Die Störung ist behoben, {product} läuft wieder normal.",
            "Nachrichten, die in dieser Zeit nicht zugestellt wurden, stellen wir dir nicht in "
            "Rechnung.",
            "Nicht zugestellte Nachrichten tragen den Status „fehlgeschlagen“. Du kannst sie bei "
            "Bedarf selbst erneut senden – wir senden sie nicht automatisch nach.",
        ],
        "qa": _qa(
            [
                (
                    "Was ist passiert?",
                    f"Ein technischer Fehler hat {product} im genannten Zeitraum beeinträchtigt. "
                    "Unser Team hat die Ursache gefunden und behoben. [Bitte Ursache in einem "
                    "Satz ergänzen.]",
                ),
                (
                    "Was hat nicht funktioniert?",
                    "[Bitte beschreiben, welche Funktionen betroffen waren, z. B. welche "
                    "Nachrichten ihre Empfänger:innen nicht erreicht haben.]",
                ),
                (
                    "Woran erkenne ich betroffene Nachrichten?",
                    "Betroffene Nachrichten sind mit dem Status „fehlgeschlagen“ markiert.",
                ),
                (
                    "Was kann ich tun, damit meine Nachrichten doch noch ankommen?",
                    "Wir senden nichts automatisch nach, weil manche Nachricht inzwischen "
                    "überholt sein kann oder du deine Kund:innen schon anders erreicht hast. "
                    "Prüfe den Status deiner Nachrichten und sende die wichtigen erneut. Sollen "
                    "wir das für dich übernehmen, melde dich beim Support.",
                ),
                (
                    "Muss ich für nicht gesendete Nachrichten bezahlen?",
                    "Nein. Was in dieser Zeit nicht zugestellt wurde, berechnen wir dir nicht.",
                ),
                (
                    "Was tut ihr, damit das nicht wieder passiert?",
                    "Wir werten den Vorfall gründlich aus und verbessern Überwachung und "
                    "Infrastruktur, damit wir solche Fehler früher bemerken und abfangen.",
                ),
                (
                    "Wo erfahre ich von künftigen Störungen?",
                    f"Alle Meldungen erscheinen auf {page_url}. In deinen Einstellungen legst du "
                    "fest, zu welchen Produkten du E-Mails bekommst.",
                ),
                (
                    "Muss ich jetzt etwas tun?",
                    "Außer dem erneuten Senden wichtiger Nachrichten ist nichts zu tun. "
                    f"{product} funktioniert wieder normal.",
                ),
                (
                    "Ist das Problem vollständig behoben?",
                    "Ja. Die Ursache ist beseitigt, und wir beobachten das System weiter genau.",
                ),
                (
                    "Wo bekomme ich Hilfe?",
                    "Bei Fragen erreichst du unseren Support oder deine:n Customer Success "
                    "Manager:in.",
                ),
            ]
        ),
    }


def _english(product: str, page_url: str) -> dict:
    return {
        "title": f"About the disruption of {product}",
        "intro": (
            f"during the time shown below, {product} only worked in part. The disruption is "
            "fixed and everything runs as usual again. We are sorry it got in the way of your "
            "work. Here is what happened, what it means for you, and what we are doing about it."
        ),
        "bullets": [
            f"The disruption is fixed; {product} works normally again.",
            "Messages that were not delivered during this time will not be billed.",
            "Undelivered messages show the status “failed”. You can resend them yourself if "
            "needed – we do not resend them automatically.",
        ],
        "qa": _qa(
            [
                (
                    "What happened?",
                    f"A technical fault affected {product} during this time. Our team found "
                    "and removed the cause. [Please add the cause in one sentence.]",
                ),
                (
                    "What did not work?",
                    "[Please describe which functions were affected, for example which messages "
                    "did not reach their recipients.]",
                ),
                (
                    "How do I recognise affected messages?",
                    "Affected messages are marked with the status “failed”.",
                ),
                (
                    "What can I do so my messages still arrive?",
                    "We do not resend anything automatically: some messages may be out of date "
                    "by now, or you may have reached your customers another way. Check the "
                    "status of your messages and resend the ones that still matter. If you "
                    "would like us to do it for you, contact support.",
                ),
                (
                    "Will I be billed for messages that were not sent?",
                    "No. Nothing that was not delivered during this time will be billed.",
                ),
                (
                    "What are you doing to prevent this from happening again?",
                    "We are analysing the incident thoroughly and improving our monitoring and "
                    "infrastructure so that we notice and contain such faults sooner.",
                ),
                (
                    "Where do I hear about future incidents?",
                    f"Every notice is posted on {page_url}. In your preferences you choose the "
                    "products you get emails about.",
                ),
                (
                    "Do I need to do anything now?",
                    "Apart from resending important messages, no. "
                    f"{product} is working normally again.",
                ),
                (
                    "Is the problem fully fixed?",
                    "Yes. The cause has been removed, and we keep a close eye on the system.",
                ),
                (
                    "Where can I get help?",
                    "If you have questions, contact our support team or your Customer Success "
                    "Manager.",
                ),
            ]
        ),
    }


def prefill_from_incident(store, incident_id: int) -> dict:
    """Raw composer data (see announcements.normalize) for a notice about this incident."""
    incident = store.get_incident(incident_id)
    if incident is None:
        raise LookupError(f"no incident {incident_id}")
    feed = store.feed_by_id(incident["feed_id"]) or {}
    updates = store.incident_updates(incident_id)  # newest first
    names = {c["id"]: c["name"] for c in store.list_components(incident["feed_id"])}
    products = [names[c] for c in incident["components"] or [] if c in names]
    product = ", ".join(products) if products else incident["title"]
    ended = next(
        (u["posted_at"] for u in updates if u["status"] in ("resolved", "completed")), None
    )
    page_url = feed.get("page_url") or "https://status.sinch.com"
    return {
        "products": products,
        "window": {
            "start": iso_utc(updates[-1]["posted_at"] if updates else None),
            "end": iso_utc(ended),
            # The composer shows the times in this zone; ops at Sinch think in Berlin time.
            "zone": "Europe/Berlin",
        },
        "de": _german(product, page_url),
        "en": _english(product, page_url),
        "audience": {"components": incident["components"] or None, "languages": ["de", "en"]},
    }
