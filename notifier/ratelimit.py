"""Per-IP rate limits: Flask-Limiter counting in the database, so every gunicorn worker (and
every web dyno) shares one count. An in-memory count would give each worker its own budget.

Limits (settings, per client address; IPv6 clients per /64, the block one host usually has):

- POST /subscribe: RATE_LIMIT_SUBSCRIBE.
- every page reached by a signed link (confirm, preferences, export, erase, unsubscribe, undo,
  a channel's resume and new signing secret), GET and POST together: RATE_LIMIT_LINKS, one
  shared budget.
- the RFC 8058 one-click POST: RATE_LIMIT_ONE_CLICK, generous on purpose: mailbox providers
  send those from a few of their own addresses for all their users at once.
- the ops console login (POST /admin/login): RATE_LIMIT_ADMIN_LOGIN failed attempts per client
  address and, separately, per user name typed, so guessing one account's password from many
  addresses is as slow as from one. Only failures count: a team behind one office address
  logging in at nine does not lock itself out.

Every limit keyed by client address also counts per IPv6 /48, with SITE_MULTIPLIER (16) times
the /64 budget. A /48 is what one site gets (RIPE-690 and RFC 6177 advise a /48 per business
site, a /56 per home), so a per-/64 count alone let one site ask for 65,536 budgets; 16 lets an
office or campus with many /64s share the page and still caps a /48 at 16 /64s' worth. IPv4
(and IPv4-mapped IPv6) clients have no second count: one address is already one budget.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from flask import Flask, request
from flask_limiter import Limiter
from limits import parse_many
from limits.storage import Storage

from .settings import Settings
from .store import StoreError

SCHEME = "notifier-store"

SUBSCRIBE_ENDPOINTS = ("public.subscribe",)
LINK_ENDPOINTS = (
    "public.confirm",
    "public.preferences",
    "public.export",
    "public.erase",
    "public.unsubscribe",
    "public.undo",
    "public.resume",  # issue 12: a channel's "send test message again" and new secret
    "public.new_secret",
)
ONE_CLICK_ENDPOINTS = ("public.one_click",)
# The calendar feed shares the one-click budget's size: calendar services poll for all users.
CALENDAR_ENDPOINTS = ("calendar_feed.feed",)
# GET /metrics (a scraper every 15 s or so) shares it too (notifier/metrics.py).
METRICS_ENDPOINTS = ("metrics.metrics",)
ADMIN_LOGIN_ENDPOINT = "admin.login"
SITE_MULTIPLIER = 16
SITE_SCOPE_SUFFIX = "-ipv6-48"


class StoreStorage(Storage):
    """A `limits` storage on the store's rate_limits table (fixed windows).

    Time comes from the app's clock, so tests move windows by advancing the clock.
    """

    STORAGE_SCHEME = (SCHEME,)

    def __init__(self, uri: str | None = None, *, store=None, clock=None, **options):
        super().__init__(uri, **options)
        if store is None or clock is None:
            raise ValueError(f"{SCHEME}:// needs the store and clock as storage options")
        self.store = store
        self.clock = clock

    @property
    def base_exceptions(self) -> type[Exception]:
        return StoreError

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = self.clock()
        return self.store.hit_rate_limit(key, amount, now + timedelta(seconds=expiry), now)

    def get(self, key: str) -> int:
        window = self.store.rate_limit_window(key, self.clock())
        return 0 if window is None else window["count"]

    def get_expiry(self, key: str) -> float:
        now: datetime = self.clock()
        window = self.store.rate_limit_window(key, now)
        return (now if window is None else window["expires_at"]).timestamp()

    def check(self) -> bool:
        try:
            return self.store.ping()
        except StoreError:
            return False

    def reset(self) -> int | None:
        return self.store.clear_rate_limits()

    def clear(self, key: str) -> None:
        self.store.clear_rate_limit(key)


_KEYS = "notifier.client_keys"  # request.environ slot for _client_keys' answer


def _client_keys() -> tuple[str, str]:
    """(client_key, ipv6_site_key) of this request, worked out once: Flask-Limiter asks for
    them several times per limited request (keys and exemptions of two limits), and parsing
    the address each time was a tenth of its time on a sign-up."""
    remote = request.remote_addr
    cached = request.environ.get(_KEYS)
    if cached is None or cached[0] != remote:
        cached = (remote, *_keys_for(remote))
        request.environ[_KEYS] = cached
    return cached[1], cached[2]


def _keys_for(remote: str | None) -> tuple[str, str]:
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return remote or "unknown", ""
    # The client's address (after ProxyFix), IPv4-mapped IPv6 as IPv4.
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.version == 4:
        return str(address), ""
    return (
        str(ipaddress.ip_network(f"{address}/64", strict=False)),
        str(ipaddress.ip_network(f"{address}/48", strict=False)),
    )


def client_key() -> str:
    """The client's address (after ProxyFix); IPv6 grouped by /64 ("2001:db8:1:2::/64")."""
    return _client_keys()[0]


def ipv6_site_key() -> str:
    """The client's IPv6 /48 ("2001:db8:1::/48"); "" for IPv4 clients, which have no site
    limit (the limit is then exempt, see _is_not_ipv6)."""
    return _client_keys()[1]


def _is_not_ipv6() -> bool:
    return not ipv6_site_key()


def site_limit(value: str) -> str:
    """A /64 limit string scaled to its /48 site: SITE_MULTIPLIER times every amount, same
    windows ("5 per minute;20 per hour" -> "80 per 1 minute;320 per 1 hour")."""
    return ";".join(
        f"{item.amount * SITE_MULTIPLIER} per {item.multiples} {item.GRANULARITY.name}"
        for item in parse_many(value)
    )


def init_rate_limits(app: Flask, settings: Settings) -> Limiter:
    """Attach one Limiter to this app; call after the blueprints are registered."""
    limiter = Limiter(
        key_func=client_key,
        storage_uri=f"{SCHEME}://",
        storage_options={
            "store": app.extensions["store"],
            "clock": lambda: app.extensions["clock"](),
        },
        strategy="fixed-window",
        headers_enabled=False,
        key_prefix="ip",
    )
    limiter.init_app(app)
    # Every limit of this app wraps its views (_limit below). The check Flask-Limiter also
    # runs before every request is for default, application and blueprint limits, which
    # this app has none of; it still cost a tenth of every GET /.
    app.before_request_funcs[None].remove(limiter._check_request_limit)
    _limit(app, limiter, SUBSCRIBE_ENDPOINTS, settings.rate_limit_subscribe, "subscribe", ["POST"])
    _limit(app, limiter, LINK_ENDPOINTS, settings.rate_limit_links, "links", None)
    _limit(app, limiter, ONE_CLICK_ENDPOINTS, settings.rate_limit_one_click, "one-click", ["POST"])
    _limit(app, limiter, CALENDAR_ENDPOINTS, settings.rate_limit_one_click, "calendar", None)
    _limit(app, limiter, METRICS_ENDPOINTS, settings.rate_limit_one_click, "metrics", None)
    if ADMIN_LOGIN_ENDPOINT in app.view_functions:
        _limit_admin_login(app, limiter, settings.rate_limit_admin_login)
    return limiter


def login_name_key() -> str:
    """The user name typed into the ops login form, as the login compares it."""
    from .admin.auth import clean_username

    name = clean_username(request.form.get("username"))
    return f"name:{name}" if name else ""  # empty: Flask-Limiter skips this limit


def _failed_login(response) -> bool:
    return response.status_code != 303  # a successful login redirects


def _limit_admin_login(app: Flask, limiter: Limiter, value: str) -> None:
    view = app.view_functions[ADMIN_LOGIN_ENDPOINT]
    scopes = (
        ("admin-login-ip", client_key, value, None),
        ("admin-login-ip" + SITE_SCOPE_SUFFIX, ipv6_site_key, site_limit(value), _is_not_ipv6),
        ("admin-login-name", login_name_key, value, None),
    )
    for scope, key_func, limit, exempt_when in scopes:
        decorate = limiter.shared_limit(
            limit,
            scope=scope,
            key_func=key_func,
            methods=["POST"],
            deduct_when=_failed_login,
            exempt_when=exempt_when,
        )
        view = decorate(view)
    app.view_functions[ADMIN_LOGIN_ENDPOINT] = view


def _limit(app: Flask, limiter: Limiter, endpoints, value: str, scope: str, methods) -> None:
    # The limiter belongs to this app (tests build many apps), so the limits wrap this app's
    # view functions instead of decorating the blueprint's module-level functions. Flask-Limiter
    # checks limits by window length, then in registration order, and stops at the first one
    # exceeded: registered first, the /64 (or IPv4) limit refuses a client over its own budget
    # before that request is counted against its whole /48.
    per_client = limiter.shared_limit(value, scope=scope, methods=methods)
    per_site = limiter.shared_limit(
        site_limit(value),
        scope=scope + SITE_SCOPE_SUFFIX,
        key_func=ipv6_site_key,
        methods=methods,
        exempt_when=_is_not_ipv6,
    )
    for endpoint in endpoints:
        app.view_functions[endpoint] = per_site(per_client(app.view_functions[endpoint]))
