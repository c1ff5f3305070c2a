"""CLI for ops: `flask --app app admin add|remove|list|hash-password`,
`flask --app app announce FILE.yaml [--dry-run] [--test-to ADDR]` and
`flask --app app subscribers import FILE.csv [--dry-run] POLICY` / `subscribers export`.

Errors are one clear line each on stderr with exit status 1. Passwords are prompted twice
(hidden) or read from stdin with --password-stdin, never taken as an argument (it would end up
in the shell history and the process list).
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext
from werkzeug.security import generate_password_hash

from . import announcements as rules
from . import context, exporter, importer
from .admin.auth import BUILTIN_USER, MAX_PASSWORD, clean_username, valid_username
from .admin.common import SUBSCRIBER_STATES
from .delivery.mailer import mask_email
from .delivery.wake import work_queued
from .forms import normalize_email
from .i18n import DEFAULT_TIMEZONES, LANGUAGES
from .render import render_email

MIN_PASSWORD = 12
admin_cli = AppGroup(
    "admin", help="Ops console users (the built-in 'admin' is ADMIN_PASSWORD_HASH)."
)


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(1)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        # Prompts go to stderr: ADMIN_PASSWORD_HASH="$(flask --app app admin hash-password)"
        # captures the hash alone.
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    if len(password) < MIN_PASSWORD:
        _fail(f"the password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        _fail(f"the password may have at most {MAX_PASSWORD} characters")
    return password


def _name(raw: str) -> str:
    name = clean_username(raw)
    if not valid_username(name):
        _fail(f"a name is 1-64 characters: lower-case letters, digits and . _ @ - (got {raw!r})")
    if name == BUILTIN_USER:
        _fail(f"'{BUILTIN_USER}' is the built-in user; its password is ADMIN_PASSWORD_HASH")
    return name


@admin_cli.command("add")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@with_appcontext
def admin_add(name: str, password_stdin: bool):
    """Add an ops user, or set a new password for one (ends their sessions)."""
    name = _name(name)
    password_hash = generate_password_hash(_read_password(password_stdin))
    store, now = context.store(), context.now()
    created = store.add_admin_user(name, password_hash, now)
    action = "admin_user.add" if created else "admin_user.password"
    store.audit(_actor(), action, f"admin_user:{name}", None, now)
    click.echo(f"ops user {name} added" if created else f"new password set for ops user {name}")


@admin_cli.command("remove")
@click.argument("name")
@with_appcontext
def admin_remove(name: str):
    """Remove an ops user; their sessions end with the next request."""
    name = clean_username(name)
    store, now = context.store(), context.now()
    if not store.remove_admin_user(name):
        _fail(f"no ops user {name!r} (see: flask --app app admin list)")
    store.audit(_actor(), "admin_user.remove", f"admin_user:{name}", None, now)
    click.echo(f"ops user {name} removed")


@admin_cli.command("list")
@with_appcontext
def admin_list():
    """List the ops users and when they last logged in."""
    configured = "set" if context.settings().admin_password_hash else "not set: cannot log in"
    click.echo(f"{BUILTIN_USER:<24}  built-in (ADMIN_PASSWORD_HASH {configured})")
    for user in context.store().list_admin_users():
        last = user["last_login_at"]
        seen = f"last login {last:%Y-%m-%d %H:%M} UTC" if last else "never logged in"
        click.echo(f"{user['username']:<24}  added {user['created_at']:%Y-%m-%d}, {seen}")


@admin_cli.command("hash-password", with_appcontext=False)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
def admin_hash_password(password_stdin: bool):
    """Print a werkzeug hash of a password, for ADMIN_PASSWORD_HASH."""
    click.echo(generate_password_hash(_read_password(password_stdin)))


# --- announce ------------------------------------------------------------------------
def _problems(problems: list) -> None:
    for problem in problems:
        click.echo(f"error: {problem.field}: {problem}", err=True)
    raise SystemExit(1)


@click.command("announce")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Validate and show both mails; send nothing.")
@click.option("--test-to", metavar="ADDR", help="Send a test to this address only.")
@click.option("--yes", is_flag=True, help="Send without asking (scripts, no terminal).")
@with_appcontext
def announce(file: Path, dry_run: bool, test_to: str | None, yes: bool):
    """Send the announcement in FILE.yaml (same fields as the ops composer).

    Like the composer's confirmation page, it asks before sending to everyone, showing the
    recipient count; --yes skips the question, and without a terminal to ask on it refuses.
    """
    if dry_run and test_to:
        _fail("use either --dry-run or --test-to, not both")
    store, settings, now = context.store(), context.settings(), context.now()
    try:
        content, audience = rules.load_file(file)
    except rules.AnnouncementError as exc:
        _problems(exc.problems)
    known = {c["id"] for c in store.list_components()}
    problems = rules.validate(content, audience, known)
    if problems:
        _problems(problems)
    per_language = rules.recipients_by_language(store, audience)
    split = ", ".join(f"{lang}: {n}" for lang, n in per_language.items())
    click.echo(f"recipients: {sum(per_language.values())} ({split})")
    if dry_run:
        _show(content, audience["languages"])
        click.echo("dry run: nothing was saved or sent")
        return
    expires = rules.expires_at(now, settings.notification_ttl_hours)
    if test_to:
        _test_send(store, content, audience, test_to, now, settings.notification_ttl_hours)
        return
    if not sum(per_language.values()):
        _fail("no confirmed subscriber matches this audience; nothing was sent")
    if not yes:
        _confirm(sum(per_language.values()))
    actor = _actor()
    announcement_id = store.save_announcement(content, audience, actor, now)
    nid, count = store.send_announcement(announcement_id, content, audience, now, expires)
    work_queued(store, now)
    store.audit(
        actor,
        "announcement.send",
        f"announcement:{announcement_id}",
        {"notification": nid, "recipients": count},
        now,
    )
    click.echo(
        f"announcement {announcement_id} queued as notification {nid}: {count} deliveries; "
        "the worker sends them"
    )


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _confirm(recipients: int) -> None:
    """Ask on the terminal before sending; exit 1 on "no" or when there is no terminal."""
    if not _stdin_is_terminal():
        _fail("not sent: no terminal to confirm on; add --yes to send without asking")
    question = f"Send this announcement to {recipients} recipient(s) now?"
    if not click.confirm(question, default=False, err=True):
        _fail("not sent")


def _show(content: dict, languages: list[str]) -> None:
    for lang in languages:
        zone = DEFAULT_TIMEZONES[lang]
        email = render_email(content, lang, zone)
        click.echo(f"\n--- {lang} ({zone}) ---")
        click.echo(f"Subject: {email.subject}\n")
        click.echo(email.text)


def _test_send(store, content, audience, address: str, now, ttl_hours: int) -> None:
    try:
        address = normalize_email(address.strip())
    except ValueError:
        _fail(f"--test-to: not a valid email address: {address!r}")
    rules.queue_test_sends(store, content, audience, address, now, ttl_hours)
    store.audit(
        _actor(),
        "announcement.test_send",
        None,
        {"to": mask_email(address), "languages": audience["languages"]},
        now,
    )
    languages = ", ".join(audience["languages"])
    click.echo(f"test send queued to {address} ({languages}); the worker sends it")


# --- subscribers import / export (notifier/importer.py, notifier/exporter.py) ------------
subscribers_cli = AppGroup(
    "subscribers", help="Import subscribers from a CSV file, or export them."
)
POLICY_HELP = (
    "choose a policy: --consent-source TEXT --consented-at YYYY-MM-DD (they agreed elsewhere: "
    "imported as confirmed) or --reconfirm (imported as pending; each gets a confirmation mail)"
)


def _policy(source, consented_at, reconfirm, language, now) -> importer.Policy:
    if reconfirm and consented_at:
        _fail("--reconfirm and --consented-at exclude each other; " + POLICY_HELP)
    if reconfirm:
        return importer.Policy.reconfirm(source or "", language)
    if not source or not consented_at:
        _fail(POLICY_HELP)
    try:
        when = importer.parse_date(consented_at, now)
    except ValueError:
        _fail(f"--consented-at: not a date (YYYY-MM-DD) or in the future: {consented_at!r}")
    try:
        return importer.Policy.consent(source, when, language)
    except ValueError:
        _fail("--consent-source is empty; " + POLICY_HELP)


@subscribers_cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show what the import would do; change nothing.")
@click.option("--consent-source", metavar="TEXT", help="Where they agreed (consent policy).")
@click.option("--consented-at", metavar="DATE", help="When they agreed, for rows without a date.")
@click.option("--reconfirm", is_flag=True, help="Import as pending and send confirmation mails.")
@click.option(
    "--language", type=click.Choice(LANGUAGES), default="en", show_default=True,
    help="Language for rows without one.",
)  # fmt: skip
@with_appcontext
def subscribers_import(file, dry_run, consent_source, consented_at, reconfirm, language):
    """Import subscribers from FILE.csv (Statuspage's subscriber export is read as is).

    Prints new, unchanged, updated, skipped (with reasons) and errors (with line numbers).
    Addresses that unsubscribed or are suppressed here are never resubscribed.
    """
    store, settings, now = context.store(), context.settings(), context.now()
    policy = _policy(consent_source, consented_at, reconfirm, language, now)
    try:
        text = importer.decode(file.read_bytes())
        report = importer.run_import(
            store, settings, text, policy, now, dry_run=dry_run, actor=_actor()
        )
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror or exc}")
    except importer.ImportFileError as exc:
        _fail(f"{file}: {exc}")
    for line in report.lines():
        click.echo(line)


@subscribers_cli.command("export")
@click.option("--state", type=click.Choice(list(SUBSCRIBER_STATES)), help="Only this state.")
@click.option("--language", type=click.Choice(LANGUAGES), help="Only this language.")
@click.option("--component", metavar="ID", help="Only subscribers who hear about this component.")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
    help="The CSV file to write (addresses never go to the terminal or a log).",
)  # fmt: skip
@with_appcontext
def subscribers_export(state, language, component, output):
    """Export subscribers as CSV (the import's columns), audited with filters and count."""
    store, now = context.store(), context.now()
    if component and component not in {c["id"] for c in store.list_components()}:
        _fail(f"--component: no component with id {component!r} in the catalogue")
    body, count = exporter.export_csv(
        store, state=state or "", language=language or "", component=component or ""
    )
    try:
        output.write_text(body, encoding="utf-8", newline="")
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror or exc}")
    detail = exporter.audit_detail(state or "", language or "", component or "", count)
    store.audit(_actor(), "subscribers.export", None, detail, now)
    click.echo(f"{count} subscribers written to {output}")


def register(app: Flask) -> None:
    app.cli.add_command(admin_cli)
    app.cli.add_command(announce)
    app.cli.add_command(subscribers_cli)


if __name__ == "__main__":
    # `python -m notifier.cli_admin [--password-stdin]`: a hash without starting the app, which
    # in production refuses to start while ADMIN_PASSWORD_HASH is missing.
    admin_hash_password()
