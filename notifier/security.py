"""Request hardening: the client address behind proxies, CSRF on every form, security headers."""

from __future__ import annotations

from flask import Flask, Response
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from .settings import Settings

# No inline script or style anywhere: the pages load /static/site.css and /static/site.js only.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=(), interest-cohort=()"
)
HSTS = "max-age=31536000; includeSubDomains"

# Views that take a POST without a CSRF token, each for a reason of its own.
CSRF_EXEMPT_VIEWS = (
    # RFC 8058: mailbox providers POST the List-Unsubscribe URL with no cookie and no token;
    # the signed token in the URL is the authorization.
    "notifier.public.one_click",
)
# Signed webhooks (SendGrid events) authenticate with their own signature.
CSRF_EXEMPT_BLUEPRINTS = ("hooks",)


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, its signing serializer built once per set of keys.

    Flask builds a new one twice per request (open and save), and building one serializes a
    probe value to learn its type: a tenth of the time of a first visit to the sign-up page,
    whose CSRF token starts a session. The cookies are the same.
    """

    def __init__(self):
        self._serializers: dict = {}

    def get_signing_serializer(self, app: Flask):
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        if keys not in self._serializers:
            self._serializers[keys] = super().get_signing_serializer(app)
        return self._serializers[keys]


def init_security(app: Flask, settings: Settings) -> CSRFProtect:
    """ProxyFix, CSRF, the session and headers; call after the blueprints are registered."""
    app.session_interface = SessionInterface()
    if settings.trusted_proxy_hops:
        # Only as many X-Forwarded-* hops as we really have: trusting more would let any
        # client pick its own address and walk around the per-IP limits.
        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_port=hops)
    app.config.update(
        # The default (1 h) would turn a form left open over lunch into an error page.
        WTF_CSRF_TIME_LIMIT=24 * 3600,
        # Flask-WTF's strict mode demands a same-origin Referer on HTTPS, but our pages send
        # none (Referrer-Policy: no-referrer, as URLs hold tokens). The session-bound token
        # plus SameSite=Lax cookies is the protection.
        WTF_CSRF_SSL_STRICT=False,
    )
    csrf = CSRFProtect(app)
    for view in CSRF_EXEMPT_VIEWS:
        csrf.exempt(view)
    for name in CSRF_EXEMPT_BLUEPRINTS:
        if name in app.blueprints:
            csrf.exempt(app.blueprints[name])
    defaults = [
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
        ("Permissions-Policy", PERMISSIONS_POLICY),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ]
    if settings.production:
        defaults.append(("Strict-Transport-Security", HSTS))
    # Pages carry CSRF tokens, and some personal data or tokens in their URL.
    html_defaults = [*defaults, ("Cache-Control", "no-store")]

    @app.after_request
    def security_headers(response: Response) -> Response:
        # One pass over the headers a view set, instead of one lookup per default (each
        # lookup scans them all): this runs on every response.
        headers = response.headers
        present = {name.lower() for name, _value in headers}
        chosen = html_defaults if response.mimetype == "text/html" else defaults
        headers.extend([(k, v) for k, v in chosen if k.lower() not in present])
        return response

    return csrf
