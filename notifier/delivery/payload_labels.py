"""The words of Slack, Teams and webhook messages that the mails do not have (issue 12).

Status names, fact labels, headlines, link labels and times come from the mail's own tables
(notifier/emails/labels.py) and builders, so a chat message and a mail about the same change
say the same thing; this table only holds what a message to a channel says differently: it
talks to a team in a channel, not to one reader, and it has a test message of its own. German
addresses the reader with "du", as the mails do. Both languages have the same keys.
"""

from __future__ import annotations

WORDS = {
    "de": {
        # channel_verification: the test message sent to a new Slack/Teams target.
        "verification_title": "Sinch-Statusmeldungen: Testnachricht",
        "verification_intro": "Die Sinch-Statusmeldungen sind für diesen Kanal eingerichtet.",
        "verification_body": (
            "Ab jetzt erscheint hier eine Nachricht, sobald eine Störung oder eine Wartung die "
            "Produkte betrifft, die du ausgewählt hast. Du musst dafür nichts weiter tun."
        ),
        "verification_manage": (
            "Produkte, Sprache und Zeitzone ändern oder abmelden: über die Links in den E-Mails "
            "an die Person, die diesen Kanal angemeldet hat."
        ),
        # The footer line of every message: where a team changes what it gets. A channel is
        # read by many; the management links carry its owner's token and go to the owner by
        # mail only, never into the channel.
        "manage": (
            "Verwaltet über die Links in den E-Mails an die Person, die diesen Kanal "
            "angemeldet hat."
        ),
    },
    "en": {
        "verification_title": "Sinch status notifications: test message",
        "verification_intro": "Sinch status notifications are set up for this channel.",
        "verification_body": (
            "From now on, a message appears here as soon as an incident or a maintenance "
            "affects the products you chose. There is nothing else you need to do."
        ),
        "verification_manage": (
            "To change products, language or time zone, or to unsubscribe: use the links in the "
            "emails to the person who set up this channel."
        ),
        "manage": "Managed with the links in the emails to the person who set up this channel.",
    },
}
