"""`flask --app app preview`: render an email the way subscribers would get it, without sending.

From a feed file (`--feed FILE --key KEY`: the incident as a new update) or from a stored
notification (`--notification ID`). Text goes to stdout; `--html OUT` writes the HTML part.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import click
from flask import Flask
from flask.cli import with_appcontext

from . import context
from .emails.labels import LANGUAGES
from .emails.times import zone
from .feed import FeedError, ParsedFeed, parse_feed
from .i18n import DEFAULT_TIMEZONES
from .notifications import page_name
from .render import Email, content_from_entry, render_email


class PreviewError(click.ClickException):
    """One clear line on stderr and exit status 2 (bad input), never a traceback."""

    exit_code = 2


@click.command("preview")
@click.option("--feed", "feed_path", metavar="FILE", help="An Atom or RSS feed file.")
@click.option("--key", help="The incident code (/incidents/<key>) in the feed.")
@click.option("--notification", "notification_id", type=int, metavar="ID", help="A stored one.")
@click.option("--lang", default="de", show_default=True, metavar="de|en")
@click.option("--tz", "tz", metavar="ZONE", help="IANA zone [Europe/Berlin for de, UTC for en]")
@click.option("--html", "html_out", metavar="OUT.html", help="Write the HTML part to this file.")
@with_appcontext
def preview(feed_path, key, notification_id, lang, tz, html_out):
    """Render an email for one incident or notification, without sending anything."""
    if lang not in LANGUAGES:
        raise PreviewError(f"unknown language {lang!r}; use one of: {', '.join(LANGUAGES)}")
    tz = tz or DEFAULT_TIMEZONES[lang]
    try:
        zone(tz)
    except ValueError as exc:
        raise PreviewError(f"{exc} (use an IANA name such as Europe/Berlin)") from None
    if (feed_path is None) == (notification_id is None):
        raise PreviewError("give either --feed FILE --key KEY or --notification ID")
    if feed_path is not None:
        content = _content_from_feed(feed_path, key)
    else:
        content = _content_from_notification(notification_id)
    try:
        email = render_email(content, lang, tz)
    except (ValueError, KeyError, TypeError) as exc:
        raise click.ClickException(f"cannot render: {exc}") from None
    _show(email, html_out)


def _content_from_feed(path: str, key: str | None) -> dict:
    if not key:
        raise PreviewError("--feed needs --key KEY (the code in /incidents/<key>)")
    file = Path(path)
    if not file.is_file():
        raise click.ClickException(f"no such file: {path}")
    try:
        parsed = parse_feed(file.read_bytes())
    except FeedError as exc:
        raise click.ClickException(f"{path}: {exc}") from None
    entry = next((e for e in parsed.entries if e.key == key), None)
    if entry is None:
        keys = ", ".join(e.key for e in parsed.entries[:10]) or "none"
        keys += ", …" if len(parsed.entries) > 10 else ""
        raise click.ClickException(f"no incident {key!r} in {path} (keys: {keys})")
    page_name, page_url = page_of(parsed, entry.link)
    return content_from_entry(entry, page_name, page_url, change="new_update", new_updates=1)


def page_of(parsed: ParsedFeed, link: str) -> tuple[str, str]:
    """(page name, page URL) of a Statuspage feed: "Sinch Status - Incident History" -> "Sinch"."""
    name = page_name({"title": parsed.title})
    url = parsed.link
    if not url and link:
        parts = urlsplit(link)
        url = f"{parts.scheme}://{parts.netloc}"
    return name, url


def _content_from_notification(notification_id: int) -> dict:
    row = context.store().get_notification(notification_id)
    if row is None:
        raise click.ClickException(f"no notification {notification_id}")
    content = row.get("content")
    if isinstance(content, str):
        content = json.loads(content)
    if not isinstance(content, dict):
        raise click.ClickException(f"notification {notification_id} has no content")
    return content


def _show(email: Email, html_out: str | None) -> None:
    if html_out:
        try:
            Path(html_out).write_text(email.html, encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write {html_out}: {exc.strerror}") from None
        click.echo(f"Subject: {email.subject}\nwrote {html_out}")
        return
    click.echo(f"Subject: {email.subject}\n")
    click.echo(email.text, nl=False)


def register(app: Flask) -> None:
    app.cli.add_command(preview)
