"""The subscriber import in the browser (issue 15 part 4): headless Chromium against gunicorn.

Log in; from the subscribers page open the import; upload a file with one row of each kind;
read the dry run's report (nothing saved yet); confirm; read the same report of what was done;
download the export. axe finds nothing on either report page, in German and English.
Screenshots: artifacts/screenshots/test_import_walk-*.png.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect
from werkzeug.security import generate_password_hash

from notifier.store import SQLiteStore

from ..helpers import add_subscriber
from ..test_subscribe_helpers import seed_catalogue
from .server import start_gunicorn

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "e2e import password"
LIST = (
    "email,language,time zone,components\n"
    "anna@example.de,de,Europe/Berlin,SMS (EU);Voice\n"
    "bob@example.com,en,,\n"
    "known@example.com,en,UTC,\n"
    "left@example.com,en,,\n"
    "not an address,en,,\n"
    "carol@example.com,en,,Fax\n"
    "dave@example.com,en,Mars/Base,\n"
    "BOB@example.com,en,,\n"
)
COUNTS = {"new": "2", "unchanged": "1", "updated": "0", "skipped": "1", "errors": "4",
          "confirmations": "0"}  # fmt: skip
RUN_AXE = "axe.run(document, {resultTypes: ['violations']})"


@pytest.fixture
def ops(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    store = SQLiteStore(instance / "notifier.db")
    store.upgrade()
    now = datetime.now(UTC)
    seed_catalogue(store, now, url="http://127.0.0.1:9/never-polled.atom")
    add_subscriber(store, "known@example.com", now=now)
    add_subscriber(store, "left@example.com", now=now, state="unsubscribed")
    store.close()
    running = start_gunicorn(
        instance,
        workers=2,
        ADMIN_PASSWORD_HASH=generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000"),
    )
    yield running
    running.stop()


def _axe_violations(page, axe: Axe) -> list[str]:
    """Every axe violation at desktop and phone width (tests/e2e/test_a11y.py's widths)."""
    page.evaluate(axe.axe_script)
    found = []
    for width in (390, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        found += [f"{width}: {v['id']} ({v['impact']})"
                  for v in page.evaluate(RUN_AXE)["violations"]]  # fmt: skip
    return found


def _counts(page) -> dict:
    return {key: page.locator(f'dd[data-count="{key}"]').inner_text().strip() for key in COUNTS}


@pytest.mark.parametrize("locale", ["en-US", "de-DE"])
def test_import_walk(ops, open_page, locale, tmp_path):
    w = open_page(locale, viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page, base, axe = w.page, ops.base_url, Axe()
    page.goto(base + "/admin/login")
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/admin/")

    page.goto(base + "/admin/subscribers")
    page.click('a[href="/admin/subscribers/import"]')
    page.wait_for_url(base + "/admin/subscribers/import")
    assert _axe_violations(page, axe) == []
    page.set_input_files(
        "#file", files=[{"name": "list.csv", "mimeType": "text/csv", "buffer": LIST.encode()}]
    )
    page.check('input[name=policy][value="consent"]')
    page.fill("#consent_source", "old status page, double opt-in")
    page.fill("#consented_at", "2025-03-01")
    w.shot("upload")
    page.click("button[type=submit].button:not(.button-secondary)")
    page.wait_for_url(base + "/admin/subscribers/import")

    # The dry run: the report, and nothing saved.
    expect(page.locator("h1")).to_have_text("Import: dry run" if locale == "en-US"
                                            else "Import: Probelauf")  # fmt: skip
    assert _counts(page) == COUNTS
    errors = page.locator("#errors tbody tr")
    assert [errors.nth(i).locator("td").first.inner_text() for i in range(errors.count())] == [
        "6", "7", "8", "9"]  # fmt: skip
    assert page.locator("#skipped tbody td").first.inner_text() == "5"
    assert _axe_violations(page, axe) == []
    w.shot("dry-run")
    store = SQLiteStore(ops.instance / "notifier.db")
    try:
        assert store.get_subscriber_by_email("anna@example.de") is None

        page.click("form[action='/admin/subscribers/import/confirm'] button[type=submit]")
        page.wait_for_url(base + "/admin/subscribers/import/confirm")
        expect(page.locator("h1")).to_have_text("Import done" if locale == "en-US"
                                                else "Import abgeschlossen")  # fmt: skip
        assert _counts(page) == COUNTS
        assert _axe_violations(page, axe) == []
        w.shot("done")
        anna = store.get_subscriber_by_email("anna@example.de")
        assert (anna["state"], anna["language"], anna["timezone"]) == (
            "confirmed", "de", "Europe/Berlin")  # fmt: skip
        assert store.subscriber_component_ids(anna["id"]) == ["sms-eu", "voice"]
        assert store.get_subscriber_by_email("left@example.com")["state"] == "unsubscribed"
        [entry] = [e for e in store.list_audit() if e["action"] == "subscribers.import"]
        assert entry["detail"] == {
            "policy": "consent",
            "rows": 8,
            "new": 2,
            "unchanged": 1,
            "updated": 0,
            "skipped": 1,
            "errors": 4,
            "confirmations": 0,
        }
    finally:
        store.close()

    # The export: a POST form; the file has the addresses, the page does not change.
    page.goto(base + "/admin/subscribers")
    page.select_option("#export-language", "de")
    with page.expect_download() as download:
        page.click("form[action='/admin/subscribers/export'] button[type=submit]")
    path = tmp_path / "export.csv"
    download.value.save_as(path)
    assert path.read_text().splitlines()[1].startswith("anna@example.de,confirmed,de,")
