"""Subscribers: search by address (and channel), one subscriber with their consent records,
export, erase, suppress and unsuppress, resume a paused channel. Every change and every export
is audit-logged by subscriber id, and an address typed into a suppression reason is stored
masked (notifier/privacy.py); erasing a subscriber also masks any copy of their address left in
other tables (GDPR art. 17).

Unsuppress puts the address back where it would be without the suppression: 'confirmed' when
it had opted in (and not unsubscribed since), 'unsubscribed' when it had left, else 'pending'
(never confirmed: it gets no mail until it signs up and confirms). SendGrid keeps a suppression
list of its own; an address that bounced there must be removed in SendGrid as well.
"""

from __future__ import annotations

import json

from flask import Response, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import RequestEntityTooLarge

from .. import context, exporter, importer, subscriptions
from ..delivery.wake import work_queued
from ..i18n import LANGUAGES
from ..privacy import mask_addresses
from . import bp
from .common import CHANNELS, SUBSCRIBER_STATES, audit, error_page
from .params import int_arg

PAGE = 50
MAX_QUERY = 254
MAX_REASON = 200
RECENT_DELIVERIES = 20


def _subscriber(subscriber_id: int) -> dict:
    row = context.store().get_subscriber(subscriber_id)
    if row is None:
        abort(404)
    return row


@bp.route("/subscribers", methods=["GET", "POST"])
def subscribers():
    """Search by address is a POST: an address in a URL would end up in the access log."""
    form = request.form if request.method == "POST" else request.args
    query = request.form.get("q", "").strip()[:MAX_QUERY]
    state = form.get("state", "")
    state = state if state in SUBSCRIBER_STATES else ""
    channel = form.get("channel", "")
    channel = channel if channel in CHANNELS else ""
    offset = int_arg(form, "offset", 0)
    rows = context.store().search_subscribers(
        query, state, channel=channel, limit=PAGE + 1, offset=offset
    )
    return render_template(
        "admin/subscribers.html",
        subscribers=rows[:PAGE],
        more=len(rows) > PAGE,
        q=query,
        state=state,
        channel=channel,
        offset=offset,
        page=PAGE,
        states=SUBSCRIBER_STATES,
        export_components=context.store().list_components(),
    )


@bp.get("/subscribers/<id:subscriber_id>")
def subscriber(subscriber_id: int):
    store = context.store()
    row = _subscriber(subscriber_id)
    names = {c["id"]: c["name"] for c in store.list_components()}
    deliveries = store.subscriber_deliveries(subscriber_id)
    return render_template(
        "admin/subscriber.html",
        s=row,
        components=[names.get(cid, cid) for cid in store.subscriber_component_ids(row["id"])],
        consents=store.list_consents(subscriber_id),
        deliveries=deliveries[-RECENT_DELIVERIES:][::-1],
        delivery_total=len(deliveries),
    )


@bp.post("/subscribers/<id:subscriber_id>/export")
def export_subscriber(subscriber_id: int):
    _subscriber(subscriber_id)
    data = subscriptions.export_data(context.store(), subscriber_id, context.now())
    audit("subscriber.export", f"subscriber:{subscriber_id}")
    body = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    return Response(
        body,
        mimetype="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="subscriber-{subscriber_id}.json"',
            "Cache-Control": "no-store",
        },
    )


@bp.post("/subscribers/<id:subscriber_id>/erase")
def erase_subscriber(subscriber_id: int):
    _subscriber(subscriber_id)
    if request.form.get("confirm") != "yes":
        flash(_("Tick the box to confirm that the data is erased for good."))
        return redirect(url_for(".subscriber", subscriber_id=subscriber_id), 303)
    subscriptions.erase(context.store(), subscriber_id)
    audit("subscriber.erase", f"subscriber:{subscriber_id}")
    flash(_("Subscriber #%(id)s and all their data are erased.", id=subscriber_id))
    return redirect(url_for(".subscribers"), 303)


@bp.post("/subscribers/<id:subscriber_id>/suppress")
def suppress_subscriber(subscriber_id: int):
    row = _subscriber(subscriber_id)
    # Free text: any address typed into it is stored masked (notifier/privacy.py).
    reason = mask_addresses(" ".join((request.form.get("reason") or "").split()))[:MAX_REASON]
    if not reason:
        flash(_("Give a reason for the suppression."))
        return redirect(url_for(".subscriber", subscriber_id=subscriber_id), 303)
    if row["state"] == "suppressed":
        flash(_("This address is suppressed already."))
        return redirect(url_for(".subscriber", subscriber_id=subscriber_id), 303)
    store, now = context.store(), context.now()
    cancelled = store.suppress_subscriber(subscriber_id, f"ops: {reason}", now)
    audit(
        "subscriber.suppress",
        f"subscriber:{subscriber_id}",
        reason=reason,
        previous_state=row["state"],
        cancelled_deliveries=cancelled,
    )
    flash(_("Suppressed. Waiting deliveries stopped: %(count)s.", count=cancelled))
    return redirect(url_for(".subscriber", subscriber_id=subscriber_id), 303)


@bp.post("/subscribers/<id:subscriber_id>/resume")
def resume_channel(subscriber_id: int):
    """Resume a paused Slack, Microsoft Teams or webhook subscription (issue 12): the pause and
    failure streak are cleared and a new test message is queued; notices flow again once the
    target accepts it (store `resume_channel`). Audited with the channel and the pause reason;
    a subscription that is not paused changes nothing."""
    row = _subscriber(subscriber_id)
    if row["channel"] == "email" or row["paused_at"] is None:
        flash(_("This channel is not paused."))
        return redirect(url_for(".subscriber", subscriber_id=subscriber_id), 303)
    store, now = context.store(), context.now()
    if store.resume_channel(subscriber_id, now):
        work_queued(store, now)
        audit(
            "subscriber.resume_channel",
            f"subscriber:{subscriber_id}",
            channel=row["channel"],
            paused_reason=row["paused_reason"],
        )
        flash(_("Resumed. A test message is on its way; notices follow once it is accepted."))
    else:
        flash(_("This channel is not paused."))
    return redirect(url_for(".subscriber", subscriber_id=subscriber_id), 303)


@bp.post("/subscribers/<id:subscriber_id>/unsuppress")
def unsuppress_subscriber(subscriber_id: int):
    _subscriber(subscriber_id)
    state = context.store().unsuppress_subscriber(subscriber_id, context.now())
    if state is None:
        flash(_("This address is not suppressed."))
    else:
        audit("subscriber.unsuppress", f"subscriber:{subscriber_id}", new_state=state)
        flash(
            _(
                "Suppression lifted; the subscriber is now: %(state)s.",
                state=SUBSCRIBER_STATES[state],
            )
        )
    return redirect(url_for(".subscriber", subscriber_id=subscriber_id), 303)


# --- import and export (issue 15; notifier/importer.py, notifier/exporter.py) ----------------
MAX_IMPORT_BYTES = 4 * 1024 * 1024  # a 10,000-row Statuspage export is about 1 MB
IMPORT_ENDPOINTS = ("admin.import_dry_run", "admin.import_confirm")
FILE_PROBLEMS = {
    "not_utf8": _l("The file is not UTF-8 text. Save it as “CSV UTF-8” and upload it again."),
    "empty": _l("The file is empty."),
    "no_email_column": _l("The first line has no email column (“email” or “Email address”)."),
    "bad_csv": _l("Line %(line)s is not valid CSV (%(detail)s)."),
    "too_many_rows": _l("More than %(limit)s rows: split the file."),
    "no_file": _l("Choose a CSV file to upload."),
    "no_policy": _l(
        "Choose how the addresses come in: they agreed elsewhere (consent source and date), "
        "or they confirm by mail."
    ),
    "no_source": _l("Say where these people agreed to the mails (consent source)."),
    "bad_date": _l("Give the date of their consent as a date that is not in the future."),
}
ISSUE_TEXTS = {
    "bad_address": _l("not a valid email address"),
    "missing_address": _l("no email address"),
    "unknown_component": _l("unknown component"),
    "ambiguous_component": _l("component name used more than once; use its id"),
    "unknown_zone": _l("unknown time zone"),
    "unknown_language": _l("unknown language (de or en)"),
    "bad_date": _l("not a date, or a date in the future"),
    "duplicate_in_file": _l("the same address as an earlier line"),
    "unsubscribed": _l("unsubscribed here: an import never resubscribes"),
    "suppressed": _l("suppressed here (bounced or complained): an import never resubscribes"),
    "not_email": _l("not an email subscriber"),
    "quarantined": _l("quarantined by Statuspage (mail to it bounced there)"),
}


@bp.url_value_preprocessor
def allow_import_uploads(endpoint, values) -> None:
    """A bigger body for the import views only (the app allows 256 KB per request). Set here:
    url value preprocessors run before every before_request, and CSRFProtect's reads the form."""
    if endpoint in IMPORT_ENDPOINTS:
        # The confirmation gets the file back url-encoded: up to 3 characters per byte.
        factor = 3 if endpoint == "admin.import_confirm" else 1
        request.max_content_length = factor * MAX_IMPORT_BYTES + 64 * 1024
        request.max_form_memory_size = factor * MAX_IMPORT_BYTES + 64 * 1024


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc):
    limit = MAX_IMPORT_BYTES // (1024 * 1024)
    return error_page(
        413, _("The file is too large"), _("Upload at most %(mb)s MB at once.", mb=limit)
    )


def _import_fields(form) -> dict:
    return {
        "policy": form.get("policy", ""),
        "consent_source": " ".join((form.get("consent_source") or "").split())[:200],
        "consented_at": (form.get("consented_at") or "").strip()[:40],
        "language": form.get("language") if form.get("language") in LANGUAGES else "en",
    }


def _policy(fields: dict) -> importer.Policy | str:
    """The policy the form asks for, or the code of what is missing (FILE_PROBLEMS)."""
    if fields["policy"] == "reconfirm":
        return importer.Policy.reconfirm(fields["consent_source"], fields["language"])
    if fields["policy"] != "consent":
        return "no_policy"
    if not fields["consent_source"]:
        return "no_source"
    try:
        when = importer.parse_date(fields["consented_at"], context.now())
    except ValueError:
        return "bad_date"
    return importer.Policy.consent(fields["consent_source"], when, fields["language"])


def _import_form(fields: dict, problem: str | None = None, params: dict | None = None):
    message = FILE_PROBLEMS[problem] % (params or {}) if problem else None
    page = render_template("admin/import.html", fields=fields, problem=message,
                           max_mb=MAX_IMPORT_BYTES // (1024 * 1024))  # fmt: skip
    return page, 400 if problem else 200


def _run(fields: dict, text: str, dry_run: bool):
    policy = _policy(fields)
    if isinstance(policy, str):
        return _import_form(fields, policy)
    store = context.store()
    try:
        report = importer.run_import(store, context.settings(), text, policy, context.now(),
                                     dry_run=dry_run, actor=g.admin_user)  # fmt: skip
    except importer.ImportFileError as exc:
        return _import_form(fields, exc.code, exc.params)
    return render_template("admin/import_report.html", report=report, fields=fields,
                           csv_text=text if dry_run else None, issues=ISSUE_TEXTS)  # fmt: skip


@bp.get("/subscribers/import")
def import_form():
    return _import_form(_import_fields({}))


@bp.post("/subscribers/import")
def import_dry_run():
    """Step 1: upload and dry run; the report page carries the file on to the confirmation."""
    fields = _import_fields(request.form)
    upload = request.files.get("file")
    data = upload.read(MAX_IMPORT_BYTES + 1) if upload else b""
    if len(data) > MAX_IMPORT_BYTES:
        raise RequestEntityTooLarge
    if not data:
        return _import_form(fields, "no_file")
    try:
        text = importer.decode(data)
    except importer.ImportFileError as exc:
        return _import_form(fields, exc.code, exc.params)
    return _run(fields, text, dry_run=True)


@bp.post("/subscribers/import/confirm")
def import_confirm():
    """Step 2: the same file and policy for real; the same report, now of what was done."""
    fields = _import_fields(request.form)
    text = request.form.get("csv", "")
    if len(text.encode()) > MAX_IMPORT_BYTES:  # the dry run's limit holds for a forged form too
        raise RequestEntityTooLarge
    if not text.strip():
        return _import_form(fields, "no_file")
    return _run(fields, text, dry_run=False)


@bp.post("/subscribers/export")
def export_subscribers():
    """Subscribers as CSV, filtered; a POST because the download is audited (it changes the
    audit log). Addresses are in the file only: the audit entry has the filters and count."""
    state = request.form.get("state", "")
    language = request.form.get("language", "")
    component = request.form.get("component", "")
    store = context.store()
    if (
        (state and state not in SUBSCRIBER_STATES)
        or (language and language not in LANGUAGES)
        or (component and component not in {c["id"] for c in store.list_components()})
    ):
        abort(400)
    body, count = exporter.export_csv(store, state=state, language=language, component=component)
    audit("subscribers.export", None, **exporter.audit_detail(state, language, component, count))
    stamp = context.now().strftime("%Y%m%d-%H%M")
    return Response(
        body,
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="subscribers-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )
