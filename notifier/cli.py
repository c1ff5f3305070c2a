"""CLI commands: `flask --app app db upgrade | poll-once | worker | feed inspect | feed replay`."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from . import context, jobs
from .feed import FeedError, ParsedFeed, parse_feed
from .fetch import FetchError, fetch, make_client
from .poller import replay

db_cli = AppGroup("db", help="Database schema.")
feed_cli = AppGroup("feed", help="Inspect feeds and replay snapshots (no database needed).")


def iso_minute(value: datetime) -> str:
    """The contract's time format: YYYY-MM-DDTHH:MM:00Z in UTC."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:00Z")


@db_cli.command("upgrade")
@with_appcontext
def db_upgrade():
    """Apply pending migrations."""
    applied = context.store().upgrade()
    click.echo(f"applied: {', '.join(applied)}" if applied else "database is up to date")


@click.command("poll-once")
@with_appcontext
def poll_once():
    """Poll every configured feed once; one summary line per feed."""
    from flask import current_app

    from .logs import told_on_stdout

    # Each feed's outcome, an error included, is this command's own output line; its log line
    # would say the same again where stdout and stderr share a terminal.
    with told_on_stdout("notifier.poller"):
        results = jobs.poll(current_app._get_current_object())
    for result in results or []:
        click.echo(result.summary())
    if not results or any(r.outcome == "error" for r in results):
        raise SystemExit(1)


@click.command("dispatch-once")
@with_appcontext
def dispatch_once():
    """Send every due delivery once; prints a summary line."""
    from flask import current_app

    from .logs import told_on_stdout

    app = current_app._get_current_object()
    # The job's INFO summary is this command's output line; its errors still show.
    with told_on_stdout("notifier.jobs", below=logging.WARNING):
        stats = jobs.dispatch(app)
    if stats is None:
        raise SystemExit(1)
    click.echo(stats.summary(app.extensions["settings"].notification_ttl_hours))
    channels = app.extensions.get("channel_dispatch_stats")
    if channels is not None and (channels.requests or channels.failed or channels.reclaimed):
        click.echo(f"channels: {channels.summary()}")


@click.command("worker")
@with_appcontext
def worker():
    """Run the scheduler (polling and sending) until SIGTERM."""
    from flask import current_app

    from .logs import configure_logging
    from .scheduler import run_worker

    app = current_app._get_current_object()
    # A long-running process: log to stdout, where Heroku's log drains read it.
    configure_logging(app.extensions["settings"].log_level, sys.stdout)
    # Open the database now (see app.DeferredStore): a refusal must stop the process at start,
    # not a scheduler thread later.
    getattr(app.extensions["store"], "open_now", lambda: None)()
    run_worker(app)


def _read_source(source: str) -> bytes:
    if source.startswith(("http://", "https://")):
        with make_client(10.0) as client:
            try:
                return fetch(client, source).body
            except FetchError as exc:
                raise click.ClickException(str(exc)) from None
    path = Path(source)
    if path.is_dir():
        raise click.ClickException(
            f"{source} is a directory, not a feed: give one Atom or RSS file (or a URL)"
        )
    if not path.is_file():
        raise click.ClickException(f"no such file: {source}")
    return path.read_bytes()


def _parse(source: str) -> ParsedFeed:
    body = _read_source(source)
    try:
        return parse_feed(body)
    except FeedError as exc:
        raise click.ClickException(f"{source}: {_not_a_feed(body) or exc}") from None


def _not_a_feed(body: bytes) -> str | None:
    """What the bytes are when they parse as JSON (a Statuspage API answer or a saved
    `feed inspect --json`, say) rather than a feed; None otherwise."""
    try:
        json.loads(body)
    except ValueError:
        return None
    return (
        "this is JSON, not an Atom or RSS feed (the feed is the page's history.atom or history.rss)"
    )


def inspect_payload(parsed: ParsedFeed) -> dict:
    """The contract's JSON (DESIGN.md). An entry whose times were read with doubt also has
    "time_doubt": a list of lines, one per unsure stamp; the key is absent otherwise."""
    return {"format": parsed.format, "entries": [_entry_payload(e) for e in parsed.entries]}


def _entry_payload(e) -> dict:
    payload = {
        "key": e.key,
        "kind": e.kind,
        "title": e.title,
        "link": e.link,
        "updates": [
            {"status": u.status, "at": iso_minute(u.at), "text": u.text} for u in e.updates
        ],
    }
    if e.time_doubts:
        payload["time_doubt"] = list(e.time_doubts)
    return payload


@feed_cli.command("inspect")
@click.argument("source")
@click.option("--json", "as_json", is_flag=True, help="Print the contract's JSON.")
def feed_inspect(source: str, as_json: bool):
    """Parse SOURCE (a file or URL) and show its entries and updates.

    Every problem gets one "warning: …" line on stderr; an entry skipped for bytes that are not
    UTF-8 reads "warning: entry CODE 'TITLE': bytes that are not UTF-8 in its FIELDS; skipped".
    """
    parsed = _parse(source)
    payload = inspect_payload(parsed)
    if as_json:
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        for problem in parsed.problems:  # stdout stays pure JSON
            click.echo(f"warning: {problem}", err=True)
        return
    click.echo(f"{parsed.format} feed, {len(parsed.entries)} entries")
    for entry in payload["entries"]:
        click.echo(f"\n{entry['key']}  {entry['kind']:<11}  {entry['title']}")
        for u in entry["updates"]:
            text = u["text"] if len(u["text"]) <= 70 else u["text"][:69] + "…"
            click.echo(f"  {u['at']}  {u['status']:<13}  {text}")
        for doubt in entry.get("time_doubt", ()):
            click.echo(f"  time doubt: {doubt}")
    for problem in parsed.problems:
        click.echo(f"warning: {problem}", err=True)


@feed_cli.command("replay")
@click.argument("snapshots", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the contract's JSON.")
def feed_replay(snapshots: tuple[str, ...], as_json: bool):
    """Treat SNAPSHOTS as successive polls; snapshot 0 is the silent baseline.

    A snapshot may also be a saved Statuspage JSON API answer (scheduled-maintenances.json
    or incidents.json): it is applied as the worker's enrichment applies it at that point,
    and reports the maintenance windows it moved ("rescheduled") or called off ("cancelled":
    reported so, or no longer listed by a whole scheduled-maintenances.json while upcoming).

    An entry skipped for bytes that are not UTF-8 gets one line on stderr,
    "warning: snapshot N: entry CODE 'TITLE': bytes that are not UTF-8 in its FIELDS; skipped".
    """
    bodies = [_read_source(s) for s in snapshots]
    damaged: list[str] = []
    try:
        changes = replay(bodies, warnings=damaged)
    except FeedError as exc:
        raise click.ClickException(str(exc)) from None
    for line in damaged:  # stdout stays pure JSON
        click.echo(f"warning: {line}", err=True)
    events = [replay_event(c) for c in changes]
    if as_json:
        click.echo(json.dumps({"events": events}, ensure_ascii=False, indent=2))
        return
    if not events:
        click.echo("no events")
    for e in events:
        if "window" in e:
            window = " - ".join(e["window"]) if e["window"] else "none"
            click.echo(
                f"snapshot {e['snapshot']}  {e['key']}  {e['type']:<12}  "
                f"{' - '.join(w or '?' for w in e['previous_window'])}  ->  {window}"
            )
            continue
        click.echo(
            f"snapshot {e['snapshot']}  {e['key']}  {e['type']:<12}  {e['status']:<13}  "
            f"{e['at']}  x{e['count']}"
        )


def replay_event(change: dict) -> dict:
    """One event of the contract's replay JSON (DESIGN.md): an update event, or a window event
    `{"snapshot", "key", "type": "rescheduled"|"cancelled", "window": [start, end] or null,
    "previous_window": [start, end]}` (times as `at`, a part never known is null)."""
    if change["type"] in ("rescheduled", "cancelled"):
        return {
            "snapshot": change["snapshot"],
            "key": change["key"],
            "type": change["type"],
            "window": _window(change["window"]),
            "previous_window": _window(change["previous_window"]),
        }
    return {
        "snapshot": change["snapshot"],
        "key": change["key"],
        "type": change["type"],
        "status": change["status"],
        "at": iso_minute(change["posted_at"]),
        "count": change["count"],
    }


def _window(window) -> list | None:
    if window is None:
        return None
    return [iso_minute(t) if t is not None else None for t in window]


def register(app: Flask) -> None:
    app.cli.add_command(db_cli)
    app.cli.add_command(feed_cli)
    app.cli.add_command(poll_once)
    app.cli.add_command(dispatch_once)
    app.cli.add_command(worker)
