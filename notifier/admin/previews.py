"""Previews: a notification's content rendered exactly as render_email renders it for mail.

The HTML part is served on its own URL and shown in a sandboxed iframe. That response has its
own Content-Security-Policy: `sandbox` (no scripts, a unique origin, no forms, no top-level
navigation), no network access at all, and the inline styles an email needs. The ops page around
it keeps the strict site policy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Response

from .. import context
from ..i18n import DEFAULT_TIMEZONES
from ..render import PLACEHOLDERS, render_email

log = logging.getLogger(__name__)

PREVIEW_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)


@dataclass(frozen=True)
class Preview:
    lang: str
    zone: str
    subject: str
    text: str
    error: str | None = None


def _sample_links(body: str) -> str:
    """Per-recipient links are filled in per mail; the preview shows what they look like."""
    base = context.settings().public_base_url
    samples = {
        "preferences_url": f"{base}/preferences/…",
        "unsubscribe_url": f"{base}/unsubscribe/…",
        "confirm_url": f"{base}/confirm/…",
        "undo_url": f"{base}/unsubscribe/undo/…",
    }
    for name, placeholder in PLACEHOLDERS.items():
        body = body.replace(placeholder, samples[name])
    return body


def render_preview(content: dict, lang: str) -> tuple[Preview, str]:
    """(subject and text part, HTML part) for readers of `lang` in its default zone."""
    zone = DEFAULT_TIMEZONES[lang]
    try:
        email = render_email(content, lang, zone)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.info("preview of a %s mail failed: %s", lang, exc)
        return Preview(lang, zone, "", "", error=str(exc)), ""
    text = _sample_links(email.text)
    return Preview(lang, zone, email.subject, text), _sample_links(email.html)


def rendered_previews(content: dict, languages) -> list[Preview]:
    return [render_preview(content, lang)[0] for lang in languages]


def preview_response(content: dict, lang: str) -> Response:
    preview, html = render_preview(content, lang)
    if preview.error:
        html = "<!doctype html><meta charset=utf-8><p>This email cannot be rendered.</p>"
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response
