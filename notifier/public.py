"""Public pages: sign-up, confirmation, preferences, unsubscribe (page and RFC 8058 one-click),
undo, privacy, and the language switch. Views parse input, call one function in
notifier.subscriptions, then redirect or render. Rate limits: notifier/ratelimit.py.

Channels (issue 12): the sign-up form also takes a Slack, Microsoft Teams or webhook target,
vetted by the address guard (delivery/safehttp.check_target); the owner confirms by mail. A
webhook's signing secret is shown on the confirmation answer and on "New signing secret"
(POST /preferences/<token>/secret) only, never cached (Cache-Control: no-store) and never
again: a used confirmation link of a channel says "already confirmed". POST
/preferences/<token>/resume clears a pause and sends the test message again. Pages show the
target masked (senders.mask_target): an incoming-webhook URL is a credential.

Only a POST changes anything. A view that serves a page and a form at one address acts only
when `request.method == "POST"`: Flask answers HEAD on every GET route and Flask-WTF checks no
CSRF token on HEAD or OPTIONS, and mail security scanners send both to every link in a mail
(tests/test_methods.py walks every route with every other method).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import unicodedata

from flask import (
    Blueprint,
    Response,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale, refresh
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, generate_csrf
from werkzeug.exceptions import BadRequest, NotFound, RequestEntityTooLarge, TooManyRequests

from . import context, subscriptions, tokens
from .delivery.senders import mask_target
from .errors import bad_request_texts, csrf_texts, retry_after_seconds
from .forms import (
    CHANNEL_CHOICES,
    LANGUAGE_CHOICES,
    Catalogue,
    PreferencesForm,
    SubscribeForm,
    component_list,
    kept_groups,
    load_catalogue,
    seconds_since,
    started_token,
    zone_options,
)
from .i18n import LANGUAGE_COOKIE, LANGUAGE_COOKIE_MAX_AGE, LANGUAGES
from .subscriptions import InvalidLink, Visitor

log = logging.getLogger(__name__)
bp = Blueprint("public", __name__)

MAX_USER_AGENT = 512


@bp.context_processor
def page_context() -> dict:
    # After a POST, the switch leads back to the same address as a GET (every form page has one).
    query = request.method == "GET" and request.query_string
    return {
        "current_language": get_locale().language,
        "language_choices": LANGUAGE_CHOICES,
        "current_path": request.full_path if query else request.path,
        "zone_options": zone_options,
        "component_list": component_list,
        "mask_target": mask_target,
        "channel_name": lambda channel: dict(CHANNEL_CHOICES).get(channel, channel),
    }


def _visitor() -> Visitor:
    agent = "".join(
        ch for ch in (request.user_agent.string or "") if unicodedata.category(ch) != "Cc"
    )
    return Visitor(ip=request.remote_addr, user_agent=agent[:MAX_USER_AGENT] or None)


def _link(purpose: str, token: str) -> dict:
    """The subscriber behind a signed link (InvalidLink otherwise); pages speak its language."""
    row = subscriptions.subscriber_for_link(
        context.store(), context.settings(), purpose, token, context.now()
    )
    g.subscriber_language = row["language"]
    return row


def _manage_url(endpoint: str, subscriber: dict) -> str:
    token = subscriptions.manage_token(context.settings(), subscriber, context.now())
    return url_for(endpoint, token=token)


# --- sign-up -------------------------------------------------------------------------
def _subscribe_page(form: SubscribeForm, status: int = 200, stale: bool = False):
    settings = context.settings()
    # Keep the first stamp across a correction, so fixing a typo quickly is not "too fast".
    started = form.started.data
    if seconds_since(settings.secret_key, started, context.now()) is None:
        started = started_token(settings.secret_key, context.now())
    page = render_template(
        "subscribe.html",
        form=form,
        started=started,
        stale=stale,
        consent_version=settings.consent_version,
    )
    return page, status


# Stand-ins for the two values of a first-visit sign-up page that are the visitor's own; a
# fresh random pair per process, so no text on the page can be mistaken for one.
_CSRF_SLOT = f"csrf-slot-{secrets.token_hex(16)}"
_STARTED_SLOT = f"started-slot-{secrets.token_hex(16)}"


def _first_visit_page(catalogue: Catalogue, language: str) -> bytes:
    """The sign-up page as it looks before the visitor did anything: rendered once per
    catalogue, language and address with stand-ins, then only this visitor's CSRF token and
    started stamp go in. Rendering all of it on every GET cost most of its time."""
    key = ("page", language, request.script_root, request.path)
    pieces = catalogue.rendered.get(key)
    if pieces is None:
        form = SubscribeForm.for_request(catalogue, language)
        page = render_template(
            "subscribe.html",
            form=form,
            started=_STARTED_SLOT,
            stale=False,
            consent_version=context.settings().consent_version,
            csrf_token=lambda: _CSRF_SLOT,
        )
        pieces = tuple(p.encode() for p in re.split(f"({_CSRF_SLOT}|{_STARTED_SLOT})", page))
        catalogue.remember(key, pieces)
    started = started_token(context.settings().secret_key, context.now())
    values = {
        _CSRF_SLOT.encode(): generate_csrf().encode(),
        _STARTED_SLOT.encode(): started.encode(),
    }
    return b"".join(values.get(p, p) for p in pieces)


@bp.get("/subscribe")
@bp.get("/")
def home():
    catalogue, language = load_catalogue(context.store()), get_locale().language
    # A query string shows in the language links and a waiting flash message in the page:
    # those pages are rendered for this visitor alone.
    if not request.query_string and "_flashes" not in session:
        return _first_visit_page(catalogue, language)
    return _subscribe_page(SubscribeForm.for_request(catalogue, language))


@bp.post("/subscribe")
def subscribe():
    settings, now = context.settings(), context.now()
    form = SubscribeForm.for_request(load_catalogue(context.store()), get_locale().language)
    if not form.validate() or not form.check_target(settings):
        return _subscribe_page(form, 400)
    if not form.website.data and form.stamp_expired(settings.secret_key, now):
        # Open for over an hour: a person gets the form back with a fresh stamp (a bot would
        # have to fetch it again, which is the point), nothing is stored yet.
        return _subscribe_page(form, 400, stale=True)
    if form.looks_automated(settings.secret_key, now, settings.form_min_fill_seconds):
        log.info("sign-up dropped: honeypot filled or sent too fast")
    else:
        subscriptions.subscribe(
            context.store(),
            settings,
            form.email.data,
            form.preferences(),
            _visitor(),
            now,
            channel=form.channel.data,
            target_url=form.target_url.data,
        )
    # The same answer for every address and target and for dropped bots: nothing to learn.
    return redirect(url_for(".check_inbox"), 303)


@bp.get("/subscribe/check-inbox")
def check_inbox():
    return render_template("check_inbox.html")


# --- confirmation --------------------------------------------------------------------
def _already_confirmed(token: str):
    """A used confirmation link of a channel subscription (the reload of the page that showed
    a webhook's secret): say it is confirmed, never show the secret again. InvalidLink (the
    generic page) for everything else."""
    row = subscriptions.confirmed_before(context.store(), context.settings(), token, context.now())
    if row is None:
        raise InvalidLink
    g.subscriber_language = row["language"]
    return render_template("confirmed_already.html"), 200, {"Cache-Control": "no-store"}


def _shown_once(template: str, **values):
    """A page with a signing secret on it: never cached, never stored by the browser."""
    return render_template(template, **values), 200, {"Cache-Control": "no-store"}


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str):
    if request.method != "POST":  # mail scanners GET and HEAD links: only show the button
        try:
            subscriber = _link(tokens.CONFIRM, token)
        except InvalidLink:
            return _already_confirmed(token)
        return render_template("confirm.html", token=token, subscriber=subscriber)
    try:
        subscriber = subscriptions.confirm(
            context.store(), context.settings(), token, _visitor(), context.now()
        )
    except InvalidLink:
        return _already_confirmed(token)
    g.subscriber_language = subscriber["language"]
    refresh()
    if subscriber["channel"] == "webhook":
        # The secret is on this page only: no redirect, so it never sits in a cookie or URL.
        return _shown_once(
            "webhook_secret.html",
            subscriber=subscriber,
            secret=subscriber["webhook_secret"],
            preferences_url=_manage_url(".preferences", subscriber),
            confirmed=True,
        )
    if subscriber["channel"] != "email":
        flash(
            _(
                "Done! Your subscription is confirmed. We are sending a test message to "
                "the channel now; it gets notifications once the test message arrives."
            )
        )
    else:
        flash(_("Done! Your subscription is confirmed. You can adjust it here at any time."))
    return redirect(_manage_url(".preferences", subscriber), 303)


# --- preferences, export, erase ------------------------------------------------------
def _form_data(prefs: subscriptions.Preferences) -> dict:
    # The stored choices as they are: a group chosen as the group is ticked as the group (the
    # template ticks its current members with it); members chosen one by one stay members.
    return {
        "language": prefs.language,
        "timezone": prefs.timezone,
        "scope": "all" if prefs.all_components else "selected",
        "components": list(prefs.component_ids),
        "notify_incidents": prefs.notify_incidents,
        "notify_maintenance": prefs.notify_maintenance,
        "maintenance_reminders": prefs.maintenance_reminders,
    }


@bp.route("/preferences/<token>", methods=["GET", "POST"])
def preferences(token: str):
    store = context.store()
    subscriber = _link(tokens.MANAGE, token)
    current = subscriptions.current_preferences(store, subscriber)
    catalogue = load_catalogue(store)
    # A chosen group gone from the page stays on offer (ticked) until the subscriber unticks it.
    catalogue = catalogue.with_kept(kept_groups(store, catalogue, current.component_ids))
    form = PreferencesForm.for_request(catalogue, current.language, **_form_data(current))
    editable = subscriber["state"] in ("pending", "confirmed")
    status = 200
    if request.method == "POST" and editable:
        if form.validate():
            prefs = form.preferences()
            subscriptions.update_preferences(store, subscriber["id"], prefs, context.now())
            g.subscriber_language = prefs.language  # the page after the redirect speaks it
            refresh()
            if subscriber["channel"] == "email":
                flash(_("Saved. Your changes apply to the next email."))
            else:
                flash(_("Saved. Your changes apply to the next message."))
            return redirect(url_for(".preferences", token=token), 303)
        status = 400
    page = render_template(
        "preferences.html",
        form=form,
        token=token,
        subscriber=subscriber,
        editable=editable,
    )
    return page, status


@bp.post("/preferences/<token>/resume")
def resume(token: str):
    """ "Send test message again" / "Resume" of a channel subscription (POST only)."""
    subscriber = _link(tokens.MANAGE, token)
    if subscriptions.resume_channel(context.store(), subscriber["id"], context.now()):
        flash(
            _(
                "We are sending a test message to the channel. Notifications start again "
                "once it arrives."
            )
        )
    return redirect(url_for(".preferences", token=token), 303)


@bp.post("/preferences/<token>/secret")
def new_secret(token: str):
    """A new signing secret for a webhook subscription, shown once (POST only)."""
    subscriber = _link(tokens.MANAGE, token)
    secret = subscriptions.new_signing_secret(context.store(), subscriber["id"], context.now())
    if secret is None:
        return redirect(url_for(".preferences", token=token), 303)
    return _shown_once(
        "webhook_secret.html",
        subscriber=subscriber,
        secret=secret,
        preferences_url=url_for(".preferences", token=token),
        confirmed=False,
    )


@bp.post("/preferences/<token>/export")
def export(token: str):
    subscriber = _link(tokens.MANAGE, token)
    data = subscriptions.export_data(context.store(), subscriber["id"], context.now())
    body = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    return Response(
        body,
        mimetype="application/json",
        headers={
            "Content-Disposition": 'attachment; filename="sinch-status-subscription.json"',
            "Cache-Control": "no-store",
        },
    )


@bp.route("/preferences/<token>/erase", methods=["GET", "POST"])
def erase(token: str):
    subscriber = _link(tokens.MANAGE, token)
    if request.method != "POST":
        return render_template("erase.html", token=token, subscriber=subscriber)
    subscriptions.erase(context.store(), subscriber["id"])
    return render_template("erased.html")


# --- unsubscribe and undo ------------------------------------------------------------
@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe(token: str):
    subscriber = _link(tokens.MANAGE, token)
    if request.method != "POST":
        return render_template("unsubscribe.html", token=token, subscriber=subscriber)
    subscriptions.unsubscribe(context.store(), subscriber["id"], context.now(), "page")
    return redirect(url_for(".unsubscribed"), 303)


@bp.route("/unsubscribe/one-click/<token>", methods=["GET", "POST"])
def one_click(token: str):
    """RFC 8058: the provider POSTs without cookies or CSRF token; answer 200, no redirect."""
    if request.method != "POST":  # a person opened the header's URL: show the normal page
        return redirect(url_for(".unsubscribe", token=token), 303)
    try:
        subscriber = _link(tokens.MANAGE, token)
    except InvalidLink:
        return Response(
            _("This link is invalid or has expired.") + "\n", 404, mimetype="text/plain"
        )
    subscriptions.unsubscribe(context.store(), subscriber["id"], context.now(), "one-click")
    return Response(_("You are unsubscribed.") + "\n", 200, mimetype="text/plain")


@bp.get("/unsubscribed")
def unsubscribed():
    return render_template("unsubscribed.html")


@bp.route("/unsubscribe/undo/<token>", methods=["GET", "POST"])
def undo(token: str):
    if request.method != "POST":
        _link(tokens.UNDO, token)
        return render_template("undo.html", token=token)
    subscriber = subscriptions.undo_unsubscribe(
        context.store(), context.settings(), token, context.now()
    )
    g.subscriber_language = subscriber["language"]
    flash(_("Welcome back! You will get our notifications again."))
    return redirect(_manage_url(".preferences", subscriber), 303)


# --- privacy and language ------------------------------------------------------------
@bp.get("/privacy")
def privacy():
    return render_template("privacy.html", consent_version=context.settings().consent_version)


def _safe_next(target: str | None) -> str:
    """Only paths on this site: never //evil.example or a scheme."""
    if (
        not target
        or len(target) > 2048
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(unicodedata.category(ch) == "Cc" for ch in target)
    ):
        return url_for(".home")
    return target


@bp.get("/language/<code>")
def language(code: str):
    if code not in LANGUAGES:
        raise NotFound()
    response = redirect(_safe_next(request.args.get("next")), 303)
    response.set_cookie(
        LANGUAGE_COOKIE,
        code,
        max_age=LANGUAGE_COOKIE_MAX_AGE,
        secure=context.settings().production,
        httponly=True,
        samesite="Lax",
    )
    return response


# --- errors on these pages -----------------------------------------------------------
def _error_page(status: int, title: str, message: str):
    return render_template("error.html", title=title, message=message), status


@bp.errorhandler(InvalidLink)
def invalid_link(exc):
    # Forged, expired, reused or for an erased address: one page, one status, for all of them.
    return render_template("link_invalid.html"), 404


@bp.errorhandler(CSRFError)
def csrf_error(exc):
    return _error_page(400, *csrf_texts())


@bp.errorhandler(TooManyRequests)
def too_many_requests(exc):
    page, status = _error_page(
        429,
        _("Too many requests"),
        _("There were too many requests from your network. Please wait a few minutes."),
    )
    return page, status, {"Retry-After": retry_after_seconds(exc, 600)}


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc):
    return _error_page(413, _("Too much data"), _("That was far more than this form takes."))


@bp.errorhandler(BadRequest)
def bad_request(exc):
    return _error_page(400, *bad_request_texts())
