"""Subscriber export as CSV (issue 15 part 5): notifier/exporter.py, the ops console download
(POST, CSRF, audited) and `flask subscribers export`. Both backends.

The file holds the import's columns (an export imports back unchanged), formula cells are
guarded (OWASP CSV Injection), and addresses appear in the file only: never in the audit log
or the app log.
"""

from __future__ import annotations

import csv
import getpass
import io
import logging
from datetime import UTC, datetime

import pytest

from notifier import exporter
from notifier.importer import ImportReport, Policy, run_import

from .helpers import add_subscriber
from .test_admin_helpers import (  # noqa: F401  (fixtures)
    admin_client,
    admin_settings,
    audit_rows,
    post,
)
from .test_channel_dispatch import add_channel
from .test_subscribe_helpers import seed_catalogue

HEADER = ("email,state,language,timezone,components,consent_source,consented_at,created_at,"
          "confirmed_at")  # fmt: skip


@pytest.fixture
def people(db, clock):
    now = clock()
    seed_catalogue(db, now)
    add_subscriber(db, "anna@example.de", now=now, language="de", components=["sms-eu"])
    add_subscriber(db, "bob@example.com", now=now)  # all components
    add_subscriber(db, "grp@example.com", now=now, components=["grp-sms"])
    add_subscriber(db, "voice@example.com", now=now, components=["voice"])
    add_subscriber(db, "wait@example.com", now=now, state="pending", components=["sms-eu"])
    add_subscriber(db, "left@example.com", now=now, state="unsubscribed")
    # Issue 12: an owner's Slack channel is not an email subscription; it is never exported
    # (it would import back as a second email subscription of anna).
    add_channel(db, "slack", "https://hooks.slack.com/services/T1/B1/x", now=now,
                owner="anna@example.de")  # fmt: skip
    return db


def rows(body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body)))


T = "2026-11-26T12:00:00Z"


def test_export_writes_every_subscriber_in_the_import_columns(people):
    body, count = exporter.export_csv(people)
    assert count == 6
    assert body.split("\r\n")[0] == HEADER
    assert rows(body)[1:] == [
        ["anna@example.de", "confirmed", "de", "Europe/Berlin", "sms-eu", "", "", T, T],
        ["bob@example.com", "confirmed", "en", "UTC", "", "", "", T, T],
        ["grp@example.com", "confirmed", "en", "UTC", "grp-sms", "", "", T, T],
        ["voice@example.com", "confirmed", "en", "UTC", "voice", "", "", T, T],
        ["wait@example.com", "pending", "en", "UTC", "sms-eu", "", "", T, ""],
        ["left@example.com", "unsubscribed", "en", "UTC", "", "", "", T, ""],
    ]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"state": "confirmed"}, ["anna@example.de", "bob@example.com", "grp@example.com",
                                  "voice@example.com"]),
        ({"language": "de"}, ["anna@example.de"]),
        # SMS (EU): chosen directly, through its group, or with all components.
        ({"component": "sms-eu"}, ["anna@example.de", "bob@example.com", "grp@example.com",
                                   "wait@example.com", "left@example.com"]),
        ({"component": "grp-sms", "state": "confirmed"},
         ["anna@example.de", "bob@example.com", "grp@example.com"]),
        ({"component": "voice", "state": "pending"}, []),
    ],
)  # fmt: skip
def test_export_filters_by_state_language_and_component(people, filters, expected):
    body, count = exporter.export_csv(people, **filters)
    assert [r[0] for r in rows(body)[1:]] == expected
    assert count == len(expected)


def test_the_consent_record_says_where_and_when(people, settings, clock):
    policy = Policy.consent('=HYPERLINK("http://evil.example")', datetime(2025, 3, 1, tzinfo=UTC))
    run_import(people, settings, "email\nnew@example.com\n", policy, clock(), dry_run=False,
               actor="ops")  # fmt: skip
    body, _ = exporter.export_csv(people, component="voice", language="en", state="confirmed")
    assert rows(body)[1:] == [
        ["bob@example.com", "confirmed", "en", "UTC", "", "", "", T, T],
        ["voice@example.com", "confirmed", "en", "UTC", "voice", "", "", T, T],
        ["new@example.com", "confirmed", "en", "UTC", "",
         "'=HYPERLINK(\"http://evil.example\")", "2025-03-01T00:00:00Z", T, T],
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+49 30 1234", "'+49 30 1234"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        (None, ""),
    ],
)
def test_cells_a_spreadsheet_would_run_are_guarded(value, written):
    assert exporter.escape_cell(value) == written


def test_an_export_imports_back_with_every_row_unchanged(people, settings, clock):
    add_subscriber(people, "-dash@example.com", now=clock())
    body, count = exporter.export_csv(people)
    assert count == 7 and "'-dash@example.com" in body
    # Reconfirm: the consent policy would confirm the pending address (an update).
    report = run_import(people, settings, body, Policy.reconfirm(), clock(), dry_run=False,
                        actor="ops")  # fmt: skip
    assert (report.rows, report.unchanged, report.new, report.updated, report.errors,
            report.confirmations) == (7, 6, 0, 0, (), 0)  # fmt: skip
    assert [(i.line, i.code) for i in report.skipped] == [(7, "unsubscribed")]
    assert report.ignored_columns == ("state", "created_at", "confirmed_at")
    assert isinstance(report, ImportReport)


# --- the ops console -----------------------------------------------------------------
def test_ops_download_the_csv_and_the_audit_log_keeps_filters_and_count_only(people, admin, caplog):
    caplog.set_level(logging.DEBUG)
    response = post(admin, "/admin/subscribers/export", {"state": "confirmed", "language": "de"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="subscribers-20261126-1200.csv"')  # fmt: skip
    assert response.headers["Cache-Control"] == "no-store"
    assert rows(response.get_data(as_text=True)) == [
        HEADER.split(","),
        ["anna@example.de", "confirmed", "de", "Europe/Berlin", "sms-eu", "", "", T, T],
    ]
    assert audit_rows(people)[-1] == (
        "admin", "subscribers.export", None,
        {"state": "confirmed", "language": "de", "component": "all", "rows": 1},
    )  # fmt: skip
    assert "anna@" not in caplog.text
    audit_page = admin.get("/admin/audit").get_data(as_text=True)
    assert "Exported subscribers as CSV" in audit_page and "anna@" not in audit_page


def test_the_list_page_offers_the_export_form_and_the_import(people, admin):
    page = admin.get("/admin/subscribers").get_data(as_text=True)
    assert 'action="/admin/subscribers/export"' in page
    assert '<option value="sms-eu">SMS (EU)</option>' in page
    assert 'href="/admin/subscribers/import"' in page


@pytest.mark.parametrize(
    "form", [{"state": "gone"}, {"language": "fr"}, {"component": "no-such-thing"}]
)
def test_an_unknown_filter_is_a_400_page(people, admin, form):
    response = post(admin, "/admin/subscribers/export", form)
    assert response.status_code == 400
    assert "text/html" in response.headers["Content-Type"]
    assert [a for _, a, _, _ in audit_rows(people)] == ["login"]


def test_the_export_is_post_only_and_needs_the_csrf_token(people, admin):
    assert admin.get("/admin/subscribers/export").status_code == 405
    assert admin.post("/admin/subscribers/export", data={}).status_code == 400
    assert [a for _, a, _, _ in audit_rows(people)] == ["login"]


def test_the_export_needs_a_login(people, client):
    response = client.post("/admin/subscribers/export", data={})
    assert response.status_code in (302, 303, 400)
    assert "anna@" not in response.get_data(as_text=True)


# --- the CLI -------------------------------------------------------------------------
def test_cli_export_writes_the_file_and_audits_the_count(people, runner, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "subscribers.csv"
    result = runner.invoke(args=["subscribers", "export", "--component", "voice", "-o", str(out)])
    assert (result.exit_code, result.output) == (0, f"3 subscribers written to {out}\n")
    assert [r[0] for r in rows(out.read_text())[1:]] == [
        "bob@example.com", "voice@example.com", "left@example.com"]  # fmt: skip
    assert audit_rows(people)[-1] == (
        f"cli:{getpass.getuser()}", "subscribers.export", None,
        {"state": "all", "language": "all", "component": "voice", "rows": 3},
    )  # fmt: skip
    assert "@example" not in result.output + caplog.text


def test_cli_export_names_an_unknown_component(people, runner, tmp_path):
    result = runner.invoke(
        args=["subscribers", "export", "--component", "fax", "-o", str(tmp_path / "x.csv")]
    )
    assert (result.exit_code, result.output) == (
        1, "error: --component: no component with id 'fax' in the catalogue\n")  # fmt: skip
