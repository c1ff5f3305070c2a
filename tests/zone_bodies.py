"""Request bodies as a reader's zone makes them (issue 14).

Dispatch sends one rendering to readers of every zone, their times as per-recipient
substitutions (notifier.render.SharedEmail). Tests that read a mail's words per recipient use
`zone_filled`: the body with that recipient's zone substitutions applied to subject and
content, as SendGrid applies them; the link placeholders stay, as in render_email's output.
"""

from __future__ import annotations

from notifier.delivery.mailer import apply_substitutions
from notifier.emails.message import ZONE_KEY


def zone_filled(sendgrid) -> dict[str, dict]:
    """Accepted request bodies by recipient address, each with only that recipient's
    personalization and its zone substitutions applied."""
    bodies = {}
    for request in sendgrid.requests:
        if request.status != 202:
            continue
        for personalization in request.body["personalizations"]:
            subs = {
                k: v
                for k, v in (personalization.get("substitutions") or {}).items()
                if ZONE_KEY.fullmatch(k)
            }
            bodies[personalization["to"][0]["email"]] = {
                **request.body,
                "personalizations": [personalization],
                "subject": apply_substitutions(request.body["subject"], subs),
                "content": [
                    {**part, "value": apply_substitutions(part["value"], subs)}
                    for part in request.body["content"]
                ],
            }
    return bodies
