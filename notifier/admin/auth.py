"""Ops login: the built-in user "admin" (ADMIN_PASSWORD_HASH) and named users (admin_users,
managed with `flask --app app admin add/remove`), sessions that time out, logout.

The session lives in Flask's signed cookie: {"user", "login", "seen", "fp"}. It ends

- after ADMIN_SESSION_IDLE_MINUTES without a request (the live progress poll does not count,
  so a dashboard left open still times out),
- ADMIN_SESSION_MAX_HOURS after the login, whatever happens,
- when the user's password changes or the user is removed (`fp` fingerprints the hash),
- when the user logs out anywhere: logout records the time, and every session of that user
  that started before it is over (a copied cookie dies with the logout, too).

All times come from the app's clock, so tests move them. A login clears the session first:
nothing set before it (CSRF token included) survives, so a planted session cannot be promoted.
Unknown names and wrong passwords get the same answer after the same work.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
import unicodedata

from flask import flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from werkzeug.security import check_password_hash, generate_password_hash

from .. import context
from . import bp
from .common import audit

log = logging.getLogger(__name__)

BUILTIN_USER = "admin"
SESSION_KEY = "admin"
MAX_USERNAME = 64
MAX_PASSWORD = 1024  # hashing megabytes on every guess would be a free denial of service
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}\Z")
# Requests that do not count as activity for the idle timeout.
PASSIVE_ENDPOINTS = frozenset({"admin.live"})
OPEN_ENDPOINTS = frozenset({"admin.login"})


def clean_username(raw: str | None) -> str:
    """The name as stored and compared: NFKC, trimmed, lower case, capped."""
    name = unicodedata.normalize("NFKC", raw or "").strip().lower()
    return name[: MAX_USERNAME + 1]


def valid_username(name: str) -> bool:
    return bool(USERNAME.match(name))


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash("not-a-password-of-anyone")


def password_hash_for(name: str) -> str | None:
    if name == BUILTIN_USER:
        return context.settings().admin_password_hash
    row = context.store().get_admin_user(name)
    return None if row is None else row["password_hash"]


def verify_password(name: str, password: str) -> bool:
    """True for a known user with this password; the same work for unknown names."""
    stored = password_hash_for(name) if valid_username(name) else None
    if stored is None or len(password) > MAX_PASSWORD:
        check_password_hash(_dummy_hash(), password[:MAX_PASSWORD])
        return False
    try:
        return check_password_hash(stored, password)
    except (ValueError, TypeError):
        log.error("the password hash of ops user %s is malformed", name)
        return False


def _fingerprint(password_hash: str) -> str:
    key = context.settings().secret_key.encode()
    return hmac.new(key, password_hash.encode(), hashlib.sha256).hexdigest()[:24]


# --- the session ---------------------------------------------------------------------
def start_session(name: str) -> None:
    now = context.now().timestamp()
    ended = context.store().admin_sessions_ended_at(name)
    if ended is not None and now <= ended.timestamp():
        now = ended.timestamp() + 0.001  # a login in the same instant as a logout still counts
    session.clear()
    session[SESSION_KEY] = {
        "user": name,
        "login": now,
        "seen": now,
        "fp": _fingerprint(password_hash_for(name) or ""),
    }


def current_user() -> str | None:
    """The logged-in ops user, or None (an ended session is removed from the cookie)."""
    data = session.get(SESSION_KEY)
    if not isinstance(data, dict):
        return None
    reason = _session_problem(data)
    if reason is not None:
        session.pop(SESSION_KEY, None)
        g.admin_session_ended = reason
        log.info("ops session of %s ended: %s", data.get("user"), reason)
        return None
    return data["user"]


def _session_problem(data: dict) -> str | None:
    settings, now = context.settings(), context.now().timestamp()
    try:
        name, login, seen = str(data["user"]), float(data["login"]), float(data["seen"])
    except (KeyError, TypeError, ValueError):
        return "malformed"
    if now - seen > settings.admin_session_idle_minutes * 60:
        return "idle"
    if now - login > settings.admin_session_max_hours * 3600:
        return "too old"
    stored = password_hash_for(name)
    if stored is None or not hmac.compare_digest(str(data.get("fp")), _fingerprint(stored)):
        return "user removed or password changed"
    ended = context.store().admin_sessions_ended_at(name)
    if ended is not None and login <= ended.timestamp():
        return "logged out"
    return None


def _touch() -> None:
    data = dict(session[SESSION_KEY])
    data["seen"] = context.now().timestamp()
    session[SESSION_KEY] = data


@bp.before_request
def require_login():
    """Every /admin route but the login page: a live session, or off to the login page."""
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    user = current_user()
    if user is None:
        if g.get("admin_session_ended") in ("idle", "too old"):
            flash(_("Your session has expired. Please log in again."))
        wanted = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("admin.login", next=wanted), 303)
    g.admin_user = user
    if request.endpoint not in PASSIVE_ENDPOINTS:
        _touch()
    return None


def safe_next(target: str | None) -> str:
    """Back to the ops page the user wanted; never anywhere else."""
    default = url_for("admin.dashboard")
    if not target or len(target) > 2048 or "\\" in target or target.startswith("//"):
        return default
    if not (target == "/admin" or target.startswith("/admin/")):
        return default
    if any(unicodedata.category(ch) == "Cc" for ch in target):
        return default
    return target


# --- views ---------------------------------------------------------------------------
@bp.route("/login", methods=["GET", "POST"])
def login():
    # Only a POST checks a password: HEAD would skip CSRF and the POST-only login limits.
    if request.method != "POST":
        if current_user() is not None:
            return redirect(safe_next(request.args.get("next")), 303)
        return _login_page(request.args.get("next"))
    name = clean_username(request.form.get("username"))
    password = request.form.get("password") or ""
    if not verify_password(name, password):
        # The same words for an unknown name and a wrong password: nothing to enumerate.
        log.info("ops login failed from %s", request.remote_addr)
        if valid_username(name) and password_hash_for(name) is not None:
            # Someone knows this name: worth a line in the audit log (never the password).
            context.store().audit(name, "login_failed", None, None, context.now())
        error = _("The name or the password is not right.")
        return _login_page(request.form.get("next"), name[:MAX_USERNAME], error), 401
    start_session(name)
    g.admin_user = name
    if name != BUILTIN_USER:
        context.store().record_admin_login(name, context.now())
    audit("login")
    return redirect(safe_next(request.form.get("next")), 303)


def _login_page(wanted: str | None, username: str = "", error: str | None = None) -> str:
    settings = context.settings()
    return render_template(
        "admin/login.html",
        next=(wanted or "")[:2048],
        username=username,
        error=error,
        idle_minutes=settings.admin_session_idle_minutes,
        max_hours=settings.admin_session_max_hours,
    )


@bp.post("/logout")
def logout():
    context.store().end_admin_sessions(g.admin_user, context.now())
    audit("logout")
    session.clear()
    flash(_("You are logged out. Every session of this user has ended."))
    return redirect(url_for("admin.login"), 303)
