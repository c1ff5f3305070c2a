"""Browser fixtures: the app under real gunicorn, Debian's Chromium through Playwright.

Browser tests skip when /usr/bin/chromium is missing, unless REQUIRE_BROWSER=1 (CI), where a
missing browser is a failure. Screenshots of every page go to artifacts/screenshots/.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notifier.store import SQLiteStore

from ..test_subscribe_helpers import seed_catalogue
from .server import ROOT, start_gunicorn

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing (apt-get install chromium)"
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        chromium.playwright = playwright  # the request API (no cookies) hangs off it
        yield chromium
        chromium.close()


@pytest.fixture
def server(tmp_path):
    """gunicorn with 2 workers on a private database that already knows a few products."""
    instance = tmp_path / "instance"
    instance.mkdir()
    store = SQLiteStore(instance / "notifier.db")
    store.upgrade()
    seed_catalogue(store, datetime.now(UTC), url="http://127.0.0.1:9/never-polled.atom")
    store.close()
    # One second instead of three keeps the walk quick; tests/test_subscribe.py covers 3 s.
    running = start_gunicorn(instance, workers=2, FORM_MIN_FILL_SECONDS="1")
    yield running
    running.stop()


class PageWatcher:
    """Collects console errors (CSP violations show up there) and saves screenshots."""

    def __init__(self, page, prefix: str):
        self.page = page
        self.prefix = prefix
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("response", self._response)

    def _console(self, message) -> None:
        # A page answered 400/404 on purpose logs "Failed to load resource"; stylesheets and
        # scripts are checked in _response instead.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(message.text)

    def _response(self, response) -> None:
        if response.request.resource_type != "document" and response.status >= 400:
            self.errors.append(f"{response.status} {response.url}")

    def shot(self, name: str, full_page: bool = True) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SCREENSHOTS / f"{self.prefix}-{name}.png", full_page=full_page)


@pytest.fixture
def open_page(browser, request):
    """open_page(locale, **context options) -> PageWatcher; asserts no console errors after."""
    contexts, watchers = [], []

    def make(locale: str = "en-US", **options) -> PageWatcher:
        context = browser.new_context(locale=locale, **options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        watcher = PageWatcher(context.new_page(), f"{request.node.name}-{locale}")
        watchers.append(watcher)
        return watcher

    yield make
    for context in contexts:
        context.close()
    assert [e for w in watchers for e in w.errors] == []


# --- every page, seeded with long rows (tests/e2e/test_phone_width.py, test_a11y.py) -----

SITE_PASSWORD = "e2e walk password"
# Long enough to break any layout that cannot wrap or scroll: no natural break points.
LONG_FEED_URL = (
    "https://status.a-rather-long-subdomain-for-status-pages.example.com/history.atom"
    "?token=0123456789abcdef0123456789abcdef0123456789abcdef&region=eu-west-1"
)
LONG_TITLE = (
    "Degraded performance of the SMS delivery pipeline for Europe-Middle-East-Africa "
    "customers using the REST-API-v1-batches-endpoint-with-delivery-reports-enabled"
)
LONG_EMAIL = (
    "a.very.long.local-part.that.keeps-going+status-notifications"
    "@subdomain.example-company.example.com"
)
# GET routes that are no page of their own, with the reason; every other GET route is walked.
NOT_A_PAGE = {
    "static": "stylesheets and scripts",
    "health.healthz": "JSON for the load balancer",
    "admin.live": "JSON polled by admin.js",
    "public.language": "a redirect back to the page the visitor came from",
    # The mail as the recipient sees it: checked inside its preview page's iframe; the mail
    # layout itself belongs to templates/email.
    "admin.announcement_frame": "mail HTML, shown in the preview page's iframe",
    "admin.notification_frame": "mail HTML, shown in the preview page's iframe",
    "calendar_feed.feed": "text/calendar for calendar apps (tests/test_calendar.py)",
}


def _seed_site(instance: Path) -> dict:
    """A database with long rows everywhere; returns the ids and tokens the walk needs."""
    from datetime import timedelta

    from notifier import tokens
    from notifier.announcements import normalize
    from notifier.feed import parse_feed
    from notifier.notifications import notify_changes
    from notifier.poller import ingest
    from notifier.settings import Settings

    from ..helpers import add_subscriber, atom
    from .server import SECRET_KEY

    store = SQLiteStore(instance / "notifier.db")
    store.upgrade()
    now = datetime.now(UTC)
    feed_id = seed_catalogue(store, now, url=LONG_FEED_URL)
    ids = {}
    people = {
        "anna@example.de": {"language": "de", "components": ["sms-eu"]},
        "carol@example.com": {"language": "en", "components": ["sms-eu", "voice"]},
        LONG_EMAIL: {"language": "en"},
        "pending@example.com": {"components": ["sms-eu"], "state": "pending"},
        "left@example.com": {"components": ["voice"], "state": "unsubscribed"},
        "bounced@example.com": {"state": "suppressed"},
    }
    for n in range(30):
        people[f"subscriber-{n:02d}-{LONG_EMAIL}"] = {"language": "de" if n % 2 else "en"}
    for address, fields in people.items():
        ids[address] = add_subscriber(store, address, now=now, **fields)
    # Several incidents sent and one waiting for review, all with long titles.
    ingest(store, feed_id, parse_feed(atom([])), now)
    entries = []
    for n in range(12):
        entries.append(
            {
                "key": f"inc{n:09d}",
                "title": f"{LONG_TITLE} #{n}",
                "updates": [(now - timedelta(minutes=30 - n), "Investigating", LONG_TITLE)],
            }
        )
        ingest(store, feed_id, parse_feed(atom(entries)), now)
    sent = notify_changes(store, Settings(review_mode=False), now)
    entries.append(
        {
            "key": "review000001",
            "title": f"Under review: {LONG_TITLE}",
            "updates": [(now - timedelta(minutes=1), "Identified", LONG_TITLE)],
        }
    )
    ingest(store, feed_id, parse_feed(atom(entries)), now)
    [review] = notify_changes(store, Settings(review_mode=True), now)
    content, audience = normalize(
        {
            "de": {
                "title": f"Hinweis: {LONG_TITLE}",
                "intro": LONG_TITLE,
                "bullets": [LONG_FEED_URL],
            },
            "en": {
                "title": f"Notice: {LONG_TITLE}",
                "intro": LONG_TITLE,
                "bullets": [LONG_FEED_URL],
            },
        }
    )
    sent_announcement = store.save_announcement(content, audience, "admin", now)
    store.send_announcement(sent_announcement, content, audience, now, now + timedelta(hours=1))
    draft = store.save_announcement(content, audience, "admin", now)
    for n in range(5):
        store.record_poll_error(feed_id, now, f"HTTP 503 from {LONG_FEED_URL} (attempt {n})")
    store.raise_alert("dispatch_failing", f"SendGrid refused: {LONG_FEED_URL}", now)
    for _ in range(10):
        store.audit("admin", "announcement.send", f"{LONG_EMAIL}", {"url": LONG_FEED_URL}, now)
    rows = {r["email"]: r for r in (store.get_subscriber_by_email(a) for a in people)}
    store.close()

    def token(address: str, purpose: str) -> str:
        row = rows[address]
        if purpose == tokens.CONFIRM:
            nonce = row["token_nonce"]
        elif purpose == tokens.UNDO:
            nonce = tokens.undo_nonce(row["link_nonce"], row["unsubscribed_at"])
        else:
            nonce = row["link_nonce"]
        return tokens.make_token(SECRET_KEY, purpose, row["id"], nonce)

    return {
        "announcement_id": draft,
        "sent_announcement_id": sent_announcement,
        "notification_id": review,
        "sent_notification_id": sent[0],
        "subscriber_id": ids[LONG_EMAIL],
        "tokens": {
            "public.confirm": token("pending@example.com", tokens.CONFIRM),
            "public.preferences": token(LONG_EMAIL, tokens.MANAGE),
            "public.erase": token(LONG_EMAIL, tokens.MANAGE),
            "public.unsubscribe": token(LONG_EMAIL, tokens.MANAGE),
            "public.one_click": token(LONG_EMAIL, tokens.MANAGE),
            "public.undo": token("left@example.com", tokens.UNDO),
        },
    }


ROUTES_SCRIPT = """
import json
from app import create_app
app = create_app()
print(json.dumps([(r.endpoint, r.rule, sorted(r.arguments))
                  for r in app.url_map.iter_rules() if "GET" in r.methods]))
"""


def _get_routes(server) -> list[tuple[str, str, list[str]]]:
    """(endpoint, rule, arguments) of every GET route of the app's URL map, read by the app
    itself under the server's environment."""
    import json
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", ROUTES_SCRIPT],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return sorted(json.loads(result.stdout.splitlines()[-1]), key=lambda r: r[1])


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """gunicorn over a seeded database, and every page worth walking: .pages is a list of
    (name, path, needs_login)."""
    from werkzeug.security import generate_password_hash

    _require_chromium()  # before seeding and starting a server nobody would use
    instance = tmp_path_factory.mktemp("site") / "instance"
    instance.mkdir()
    seeded = _seed_site(instance)
    running = start_gunicorn(
        instance,
        workers=2,
        FEED_URLS=LONG_FEED_URL,
        FORM_MIN_FILL_SECONDS="1",
        ADMIN_PASSWORD_HASH=generate_password_hash(SITE_PASSWORD, method="pbkdf2:sha256:1000"),
    )
    try:
        pages = []
        for endpoint, rule, arguments in _get_routes(running):
            if endpoint in NOT_A_PAGE:
                continue
            values = {
                "announcement_id": seeded["announcement_id"],
                "notification_id": seeded["notification_id"],
                "subscriber_id": seeded["subscriber_id"],
                "token": seeded["tokens"].get(endpoint),
            }
            path = rule
            for name in arguments:
                assert values.get(name) is not None, f"no value for <{name}> in {rule}"
                path = re.sub(rf"<(?:[^:>]+:)?{name}>", str(values[name]), path)
            pages.append((endpoint, path, rule.startswith("/admin") and endpoint != "admin.login"))
        # The same views with other data in them.
        pages += [
            (
                "admin.announcement(sent)",
                f"/admin/announcements/{seeded['sent_announcement_id']}",
                True,
            ),
            (
                "admin.notification(sent)",
                f"/admin/notifications/{seeded['sent_notification_id']}",
                True,
            ),
            ("admin.subscribers(search)", "/admin/subscribers?q=example", True),
            ("public.error(404)", "/no-such-page", False),
            ("public.link_invalid", "/preferences/not-a-valid-token", False),
            ("admin.error(404)", "/admin/no-such-page", True),
        ]
        running.pages = pages
        yield running
    finally:
        running.stop()


def log_in(page, base_url: str) -> None:
    page.goto(base_url + "/admin/login")
    page.fill("#username", "admin")
    page.fill("#password", SITE_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base_url + "/admin/")
