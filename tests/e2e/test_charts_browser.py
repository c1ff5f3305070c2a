"""The dashboard charts in the real Chromium (issue 15, part 3), at desktop and phone width.

gunicorn serves a database seeded with a week of deliveries, a day of polls and subscribers
over 90 days. In German and English: the SVG charts render under the app's own CSP (no console
error), have their bars and accessible names, do not widen a 390 px page, open their tables,
and axe finds no violation in the charts section. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from werkzeug.security import generate_password_hash

from notifier.store import SQLiteStore

from ..helpers import add_subscriber
from .conftest import SITE_PASSWORD, log_in
from .server import start_gunicorn

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FEEDS = ("http://127.0.0.1:9/sms.atom", "http://127.0.0.1:9/voice.atom")
WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
OUTCOMES = [("sent", None), ("failed", "HTTP 400"), ("failed", "expired"), ("suppressed", "bounce"),
            ("cancelled", "withdrawn")]  # fmt: skip


def _seed(instance, now: datetime) -> None:
    store = SQLiteStore(instance / "notifier.db")
    store.upgrade()
    notification = store._query_one(
        "INSERT INTO notifications (kind, content, created_at, expires_at) "
        "VALUES ('announcement', '{}', ?, ?) RETURNING id",
        [now - timedelta(days=8), now + timedelta(days=1)],
    )["id"]
    rows = []
    for hour in range(168):  # a daily rhythm, some failures and the odd expiry
        at = now - timedelta(hours=hour, minutes=1)
        volume = 5 + (hour % 24) * 2
        for n in range(volume):
            state, reason = OUTCOMES[0] if n % 9 else OUTCOMES[1 + (hour + n) % 4]
            rows.append([notification, state, reason, at, at, at])
    store._executemany(
        "INSERT INTO deliveries (notification_id, subscriber_id, email, language, timezone, "
        "state, reason, next_attempt_at, created_at, updated_at) "
        "VALUES (?, NULL, 'ops@example.com', 'en', 'UTC', ?, ?, ?, ?, ?)",
        rows,
    )
    for number, url in enumerate(FEEDS):
        feed = store.ensure_feed(url, now - timedelta(days=2))["id"]
        for minute in range(0, 24 * 60, 5):
            at = now - timedelta(minutes=minute)
            if number == 1 and 300 <= minute < 420:  # two hours of outage on the second feed
                store.record_poll_error(feed, at, "HTTP 503")
            else:
                store.record_poll_success(feed, at)
                if minute % 60 == 0:
                    store.record_feed_warning(feed, at, "entry 3: unknown status word")
    for day in range(120):
        for n in range(day % 4):
            add_subscriber(store, f"s{day}-{n}@example.com", now=now - timedelta(days=day))
    store.close()


@pytest.fixture
def chart_server(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    _seed(instance, datetime.now(UTC))
    running = start_gunicorn(
        instance,
        workers=1,
        FEED_URLS=",".join(FEEDS),
        ADMIN_PASSWORD_HASH=generate_password_hash(SITE_PASSWORD, method="pbkdf2:sha256:1000"),
    )
    yield running
    running.stop()


CHARTS = """() => [...document.querySelectorAll('svg.chart')].map(svg => ({
  id: svg.id,
  role: svg.getAttribute('role'),
  name: svg.getAttribute('aria-labelledby').split(' ')
        .map(id => document.getElementById(id).textContent).join(' | '),
  bars: svg.querySelectorAll('g.bar').length,
  segments: svg.querySelectorAll('rect.seg').length,
  width: Math.round(svg.getBoundingClientRect().width),
  height: Math.round(svg.getBoundingClientRect().height),
}))"""


@pytest.mark.parametrize("locale", ["de-DE", "en-US"])
def test_dashboard_charts_render_at_desktop_and_phone_width(chart_server, open_page, locale):
    w = open_page(locale, viewport=WIDTHS["desktop"])
    page = w.page
    log_in(page, chart_server.base_url)
    axe = Axe()
    for name, viewport in WIDTHS.items():
        page.set_viewport_size(viewport)
        page.goto(chart_server.base_url + "/admin/")
        charts = page.evaluate(CHARTS)
        assert [(c["id"], c["role"], c["bars"]) for c in charts] == [
            ("chart-deliveries", "img", 168),
            ("chart-polls-1", "img", 24),
            ("chart-polls-2", "img", 24),
            ("chart-subscribers", "img", 90),
        ]
        title = "Zustellungen pro Stunde" if locale == "de-DE" else "Deliveries per hour"
        assert charts[0]["name"].startswith(title)
        assert all(c["segments"] > 0 and c["height"] > 60 for c in charts), charts
        # The charts fit the page: nothing sideways at 390 px.
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        assert all(c["width"] <= viewport["width"] for c in charts)
        page.locator("#charts-heading").scroll_into_view_if_needed()
        page.locator("section.charts").screenshot(
            path=_shot_path(w, f"charts-{name}"), animations="disabled"
        )
        # The table behind the first chart opens and shows its 168 hours.
        details = page.locator("[data-chart=chart-deliveries] details")
        details.locator("summary").click()
        assert details.locator("tbody tr").count() == 168
        assert details.locator("table caption").inner_text().startswith(title)
        page.evaluate(axe.axe_script)
        result = page.evaluate(
            "axe.run(document.querySelector('section.charts'), {resultTypes: ['violations']})"
        )
        assert [(v["id"], v["impact"]) for v in result["violations"]] == []
        w.shot(f"dashboard-{name}")


def _shot_path(w, name: str):
    from .conftest import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{w.prefix}-{name}.png"
