"""Browser fixtures: the app under real gunicorn, Debian's Chromium through Playwright.

Browser tests skip when /usr/bin/chromium is missing, unless REQUIRE_BROWSER=1 (CI), where a
missing browser is a failure. Screenshots of every page go to artifacts/screenshots/.
"""

from __future__ import annotations

import os
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
