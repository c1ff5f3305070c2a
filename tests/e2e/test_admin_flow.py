"""The ops console end to end: headless Chromium against gunicorn, mail through the fake
SendGrid (started here; gunicorn and `flask dispatch-once` are pointed at it).

Log in; write a German and English announcement and preview both; test-send; send to one
product's audience; watch the ledger fill in live while one address is refused; resend the
failed one; find every step in the audit log. Screenshots: artifacts/screenshots/admin-*.png.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect
from werkzeug.security import generate_password_hash

from notifier.feed import parse_feed
from notifier.notifications import notify_changes
from notifier.poller import ingest
from notifier.settings import Settings
from notifier.store import SQLiteStore

from ..helpers import add_subscriber, atom
from ..test_subscribe_helpers import seed_catalogue
from .conftest import SCREENSHOTS
from .server import start_gunicorn

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "e2e ops password"
SUBJECTS = {
    "de": "[Hinweis] SMS (EU): Verzögerte SMS-Zustellung",
    "en": "[Notice] SMS (EU): Delayed SMS delivery",
}
# Who is on the list, and who of them follows SMS (EU) (or everything) and is confirmed.
PEOPLE = {
    "anna@example.de": {"language": "de", "components": ["sms-eu"]},
    "bernd@example.de": {"language": "de"},
    "carol@example.com": {"language": "en", "components": ["sms-eu", "voice"]},
    "dave@example.com": {"language": "en", "components": ["voice"]},
    "erika@example.de": {"language": "de", "components": ["voice"]},
    "left@example.com": {"components": ["sms-eu"], "state": "unsubscribed"},
    "bounced@example.com": {"components": ["sms-eu"], "state": "suppressed"},
}
AUDIENCE = {"anna@example.de": "de", "bernd@example.de": "de", "carol@example.com": "en"}
REFUSED = "carol@example.com"


@pytest.fixture
def ops(tmp_path, sendgrid):
    instance = tmp_path / "instance"
    instance.mkdir()
    store = SQLiteStore(instance / "notifier.db")
    store.upgrade()
    now = datetime.now(UTC)
    feed_id = seed_catalogue(store, now, url="http://127.0.0.1:9/never-polled.atom")
    for email, fields in PEOPLE.items():
        add_subscriber(store, email, now=now, **fields)
    # An incident from the status page waiting in the review queue (REVIEW_MODE=on).
    ingest(store, feed_id, parse_feed(atom([])), now)
    entry = {
        "key": "voice0000001",
        "title": "Voice calls failing",
        "updates": [(now - timedelta(minutes=2), "Investigating", "Calls fail in the EU.")],
    }
    ingest(store, feed_id, parse_feed(atom([entry])), now)
    notify_changes(store, Settings(review_mode=True), now)
    store.close()
    running = start_gunicorn(
        instance,
        workers=2,
        ADMIN_PASSWORD_HASH=generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000"),
        EMAIL_BACKEND="sendgrid",
        SENDGRID_API_KEY=sendgrid.api_key,
        SENDGRID_API_HOST=sendgrid.base_url,
        SENDGRID_TIMEOUT_SECONDS="5",
    )
    yield running
    running.stop()


def dispatch(ops) -> str:
    """What the worker does every few seconds: one `flask --app app dispatch-once`."""
    result = ops.flask("dispatch-once")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def received(sendgrid, start: int = 0) -> list[tuple[str, str]]:
    out = []
    for request in sendgrid.accepted_requests()[start:]:
        for p in request.body["personalizations"]:
            out.append((p["to"][0]["email"], request.body["subject"]))
    return sorted(out)


def shot(page, name: str, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"admin-{name}.png", full_page=full_page)


def count(page, name: str) -> str:
    return page.inner_text(f'.progress [data-count="{name}"]')


def test_compose_preview_test_send_send_watch_resend_and_audit(ops, sendgrid, open_page):
    w = open_page("en-US", viewport={"width": 1400, "height": 900})
    page = w.page

    # 1. Log in (the console sends everyone without a session to the login page).
    page.goto(ops.base_url + "/admin/announcements")
    assert page.url.endswith("/admin/login?next=/admin/announcements")
    shot(page, "login")
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/announcements")
    shot(page, "announcements")

    # 2. Compose German and English side by side; Q/A rows come from the server.
    page.click("text=New announcement")
    page.fill("#products", "SMS (EU)")
    page.fill("#window-start", "2026-11-26T09:30")
    page.fill("#window-end", "2026-11-26T11:00")
    page.fill("#de-title", "Verzögerte SMS-Zustellung")
    page.fill("#de-intro", "heute Morgen kamen SMS in der EU verspätet an.")
    page.fill("#de-bullets", "Alles läuft wieder normal.\nDu musst nichts tun.")
    page.fill("#en-title", "Delayed SMS delivery")
    page.fill("#en-intro", "This morning SMS in the EU arrived late.")
    page.fill("#en-bullets", "Everything works normally again.\nYou need to do nothing.")
    page.click("button[value='qa-add:de']")
    page.wait_for_url(re.compile(r".*/admin/announcements/\d+#de-qa-0$"))
    draft = re.search(r"/announcements/(\d+)", page.url).group(1)
    page.fill("#de-qa-0-q", "Was ist passiert?")
    page.fill("#de-qa-0-a", "Ein Gateway war überlastet.")
    page.click("button[value='qa-add:en']")
    page.wait_for_selector("#en-qa-0-q")
    assert page.input_value("#de-qa-0-q") == "Was ist passiert?"  # saved on the way
    page.fill("#en-qa-0-q", "What happened?")
    page.fill("#en-qa-0-a", "A gateway was overloaded.")
    page.check("#audience-sms-eu")  # choosing a product selects "only these" (admin.js)
    assert page.is_checked("#scope-components")
    page.click("button[value='save']:not(.default-action)")
    assert "Draft saved." in page.inner_text(".notice")
    assert page.inner_text("[data-audience-count]") == str(len(AUDIENCE))
    shot(page, "composer")

    # 3. Preview both languages exactly as rendered.
    page.click("button[value='preview']")
    page.wait_for_url(f"**/admin/announcements/{draft}/preview")
    assert page.inner_text('[data-subject="de"]') == SUBJECTS["de"]
    assert page.inner_text('[data-subject="en"]') == SUBJECTS["en"]
    for lang, heading in (("de", "Verzögerte SMS-Zustellung"), ("en", "Delayed SMS delivery")):
        frame = page.frame_locator(f'iframe[src$="/preview/{lang}.html"]')
        assert frame.locator("h1").inner_text() == heading
    page.click("summary:has-text('Text part') >> nth=0")
    assert "F: Was ist passiert?" in page.inner_text('[data-text="de"]')
    shot(page, "preview", full_page=False)  # iframes do not survive full-page captures

    # 4. A test send reaches the test address only, once per language.
    page.click("text=Back to editing")
    page.fill("#test-to", "ops.team@example.com")
    page.click("button[value='test']")
    assert "Test send queued to ops.team@example.com (de, en)." in page.inner_text(".notice")
    dispatch(ops)
    assert received(sendgrid) == [  # marked as a test in the subject (issue 13)
        ("ops.team@example.com", "[Hinweis] SMS (EU): [TEST] Verzögerte SMS-Zustellung"),
        ("ops.team@example.com", "[Notice] SMS (EU): [TEST] Delayed SMS delivery"),
    ]
    tests_done = len(sendgrid.accepted_requests())

    # 5. Send: the confirmation shows the count; then the ledger.
    page.click("button[value='send']")
    page.wait_for_url(f"**/admin/announcements/{draft}/send")
    assert page.inner_text("[data-language-count=de]") == "2"
    assert page.inner_text("[data-language-count=en]") == "1"
    shot(page, "confirm-send")
    sendgrid.rejected_addresses = {REFUSED}  # SendGrid refuses one address (400)
    page.click("text=Send now to 3 recipients")
    page.wait_for_url("**/admin/notifications/*")
    ledger_url = page.url
    assert (count(page, "pending"), count(page, "total")) == ("3", "3")
    shot(page, "ledger-queued")

    # 6. The worker sends; the open page follows live (admin.js polls, no reload).
    assert dispatch(ops).startswith("2 sent, 0 to retry, 1 failed")
    expect(page.locator('.progress [data-count="sent"]')).to_have_text("2")
    assert (count(page, "failed"), count(page, "pending")) == ("1", "0")
    assert received(sendgrid, tests_done) == sorted(
        (email, SUBJECTS[lang]) for email, lang in AUDIENCE.items() if email != REFUSED
    )
    page.reload()
    row = page.locator(f'tr[data-delivery="{REFUSED}"]')
    assert row.get_attribute("data-state") == "failed"
    assert "Does not contain a valid address." in row.inner_text()
    shot(page, "ledger-failed")

    # 7. Resend the failed one: a fresh delivery that goes out.
    sendgrid.rejected_addresses = set()
    page.click("[data-resend=failed]")
    page.wait_for_url(lambda url: url != ledger_url and "/admin/notifications/" in url)
    assert "Fresh deliveries queued as notification" in page.inner_text(".notice")
    dispatch(ops)
    expect(page.locator('.progress [data-count="sent"]')).to_have_text("1")
    assert received(sendgrid, tests_done) == sorted(
        (email, SUBJECTS[lang]) for email, lang in AUDIENCE.items()
    )  # exactly the audience, each in their language: nobody who left, nobody twice
    shot(page, "ledger-resent")

    # 8. The other pages, and the audit log with every step.
    page.click(f'a[href="/admin/announcements/{draft}"]')
    assert "Use as a new draft" in page.inner_text("main")  # sent: read-only
    shot(page, "announcement-sent")
    page.click(".admin-nav >> text=Review")
    page.click("text=Review >> nth=-1")
    assert page.inner_text("h1").endswith("Voice calls failing")
    page.fill("#de-title", "Anrufe schlagen fehl")
    page.click("button[value='save']:not(.default-action)")
    assert "Saved. It still waits for approval." in page.inner_text(".notice")
    shot(page, "review-detail", full_page=False)
    for name, link in (
        ("dashboard", "Dashboard"),
        ("notifications", "Deliveries"),
        ("review", "Review"),
        ("subscribers", "Subscribers"),
    ):
        page.click(f".admin-nav >> text={link}")
        shot(page, name)
    page.fill("#q", "anna")
    page.click("form.search button")
    page.click("text=anna@example.de")
    assert "Consent records" in page.inner_text("main")
    shot(page, "subscriber")
    page.click(".admin-nav >> text=Audit log")
    actions = page.eval_on_selector_all(
        "tr[data-action]", "rows => rows.map(r => r.dataset.action)"
    )
    assert actions[::-1] == [
        "login",
        "announcement.create",
        "announcement.edit",
        "announcement.edit",
        "announcement.test_send",
        "announcement.send",
        "resend",
        "review.edit",
    ]
    shot(page, "audit")
    page.click(".language-switch >> text=Deutsch")
    assert page.inner_text("h1") == "Protokoll"
    shot(page, "audit-de")
    assert len(list(SCREENSHOTS.glob("admin-*.png"))) >= 15
