"""Subscriber import (issue 15 part 4): notifier/importer.py and `flask subscribers import`.

Both policies, every error kind with its line, the dry run equal to the real run (and writing
nothing), idempotence, never resubscribing unsubscribed or suppressed addresses, Statuspage's
own export read as is, the audit with counts only. Both backends.
"""

from __future__ import annotations

import getpass
import html
import io
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from notifier import importer
from notifier.importer import ImportReport, Issue, Policy, run_import

from .helpers import add_subscriber, table
from .test_admin_helpers import (  # noqa: F401  (fixtures)
    admin_client,
    admin_settings,
    audit_rows,
    csrf_token,
)
from .test_subscribe_helpers import seed_catalogue

ACTOR = f"cli:{getpass.getuser()}"
CONSENTED = datetime(2025, 3, 1, tzinfo=UTC)
CONSENT = Policy.consent("old status page, double opt-in", CONSENTED)
TABLES = ("subscribers", "subscriber_components", "consents", "deliveries", "notifications",
          "confirmation_sends", "audit_log")  # fmt: skip


@pytest.fixture
def world(db, clock):
    seed_catalogue(db, clock())
    return db


def snapshot(db) -> dict:
    order = {"subscriber_components": "subscriber_id, component_id"}
    return {name: table(db, name, order.get(name, "id")) for name in TABLES}


def imported(db, settings, clock, text, policy=CONSENT, dry_run=False) -> ImportReport:
    return run_import(db, settings, text, policy, clock(), dry_run=dry_run, actor="ops")


def subscriber(db, email: str) -> dict:
    row = dict(db.get_subscriber_by_email(email))
    for key in ("id", "link_nonce", "token_nonce"):
        row.pop(key)
    return row


# --- the consent policy ----------------------------------------------------------------
def test_consent_policy_imports_confirmed_with_source_and_date_in_the_consent_record(
    world, settings, clock
):
    db, now = world, clock()
    text = (
        "email,language,time zone,components,consent source,consent date\n"
        "Anna@Example.DE,de,,SMS (EU);voice,,\n"
        "bob@example.com,en,America/New_York,,newsletter form 2024,2024-06-30\n"
    )
    report = imported(db, settings, clock, text)
    assert report == ImportReport(rows=2, new=2)
    anna = db.get_subscriber_by_email("anna@example.de")
    assert subscriber(db, "anna@example.de") == {
        "email": "anna@example.de", "language": "de", "timezone": "Europe/Berlin",
        "all_components": 0, "notify_incidents": 1, "notify_maintenance": 1,
        "maintenance_reminders": 1, "state": "confirmed", "suppressed_reason": None,
        "created_at": now, "updated_at": now, "confirmed_at": now, "unsubscribed_at": None,
        "suppressed_at": None,
        # issue 12: an imported subscription is an email one
        "channel": "email", "target_url": None, "webhook_secret": None, "verified_at": None,
        "paused_at": None, "paused_reason": None, "failure_count": 0, "failing_since": None,
    }  # fmt: skip
    assert anna["token_nonce"] is None and anna["link_nonce"]
    assert db.subscriber_component_ids(anna["id"]) == ["sms-eu", "voice"]
    bob = db.get_subscriber_by_email("bob@example.com")
    assert (bob["timezone"], bob["all_components"]) == ("America/New_York", 1)
    assert [
        {k: v for k, v in c.items() if k != "id"} for c in table(db, "consents")
    ] == [
        {"subscriber_id": anna["id"], "consent_version": "import", "language": "de",
         "signup_at": CONSENTED, "signup_ip": None, "signup_user_agent": None,
         "confirmed_at": CONSENTED, "confirm_ip": None, "confirm_user_agent": None,
         "withdrawn_at": None, "source": "old status page, double opt-in", "imported_at": now},
        {"subscriber_id": bob["id"], "consent_version": "import", "language": "en",
         "signup_at": datetime(2024, 6, 30, tzinfo=UTC), "signup_ip": None,
         "signup_user_agent": None, "confirmed_at": datetime(2024, 6, 30, tzinfo=UTC),
         "confirm_ip": None, "confirm_user_agent": None, "withdrawn_at": None,
         "source": "newsletter form 2024", "imported_at": now},
    ]  # fmt: skip
    assert table(db, "deliveries") == []  # they agreed already: no mail


def test_a_group_chosen_by_name_is_stored_as_the_group_without_its_members(world, settings, clock):
    report = imported(world, settings, clock, "email,components\nc@example.com,SMS|sms-eu|Chat\n")
    assert report == ImportReport(rows=1, new=1)
    row = world.get_subscriber_by_email("c@example.com")
    assert world.subscriber_component_ids(row["id"]) == ["engage-chat", "grp-sms"]


def test_addresses_in_the_consent_source_are_masked(world, settings, clock):
    policy = Policy.consent("list sent by jane.doe@example.org", CONSENTED)
    imported(world, settings, clock, "email\nx@example.com\n", policy)
    assert [c["source"] for c in table(world, "consents")] == ["list sent by [address]"]


# --- the reconfirm policy --------------------------------------------------------------
def test_reconfirm_imports_pending_and_queues_confirmations_batched_per_minute(
    world, settings, clock, monkeypatch
):
    monkeypatch.setattr(importer, "RECONFIRM_PER_MINUTE", 2)
    db, now = world, clock()
    text = "email\n" + "".join(f"p{n}@example.com\n" for n in range(5))
    report = imported(db, settings, clock, text, Policy.reconfirm())
    assert report == ImportReport(rows=5, new=5, confirmations=5)
    rows = [db.get_subscriber_by_email(f"p{n}@example.com") for n in range(5)]
    assert {(r["state"], r["confirmed_at"]) for r in rows} == {("pending", None)}
    assert all(r["token_nonce"] for r in rows)
    notifications = table(db, "notifications")
    assert [(n["kind"], n["batch_key"]) for n in notifications] == [
        ("confirmation", "confirmation:2026-11-26T12:00Z"),
        ("confirmation", "confirmation:2026-11-26T12:01Z"),
        ("confirmation", "confirmation:2026-11-26T12:02Z"),
    ]
    by_id = {n["id"]: n["batch_key"][-6:-1] for n in notifications}
    assert [
        (d["subscriber_id"], d["state"], by_id[d["notification_id"]], d["next_attempt_at"])
        for d in table(db, "deliveries")
    ] == [
        (rows[n].get("id"), "pending", f"12:0{n // 2}", now + timedelta(minutes=n // 2))
        for n in range(5)
    ]
    consents = [
        (c["consent_version"], c["confirmed_at"], c["source"]) for c in table(db, "consents")
    ]
    assert consents == [(settings.consent_version, None, "import")] * 5
    assert len(table(db, "confirmation_sends")) == 5


def test_a_reconfirmed_import_is_confirmed_by_the_link_like_a_sign_up(world, settings, clock):
    from notifier import subscriptions, tokens
    from notifier.subscriptions import Visitor

    imported(world, settings, clock, "email\nq@example.com\n", Policy.reconfirm("CRM export"))
    row = world.get_subscriber_by_email("q@example.com")
    token = tokens.make_token(settings.secret_key, tokens.CONFIRM, row["id"], row["token_nonce"],
                              now=clock())  # fmt: skip
    subscriptions.confirm(world, settings, token, Visitor("198.51.100.7"), clock())
    [consent] = table(world, "consents")
    assert (consent["source"], consent["confirmed_at"], consent["confirm_ip"]) == (
        "CRM export", clock(), "198.51.100.7")  # fmt: skip
    assert world.get_subscriber(row["id"])["state"] == "confirmed"


# --- errors and skips, one row each ----------------------------------------------------
def test_every_error_and_skip_kind_is_reported_with_its_line(world, settings, clock):
    db, now = world, clock()
    add_subscriber(db, "left@example.com", now=now, state="unsubscribed")
    add_subscriber(db, "bounced@example.com", now=now, state="suppressed")
    text = (
        "email,language,timezone,components,consent date\n"  # line 1
        "good@example.com,en,UTC,,\n"  # 2
        "not an address,en,,,\n"  # 3
        "x1@example.com,en,,Fax (EU),\n"  # 4
        "x2@example.com,en,Mars/Olympus,,\n"  # 5
        "GOOD@example.com,en,,,\n"  # 6: the same address as line 2
        "left@example.com,en,,,\n"  # 7
        "bounced@example.com,en,,,\n"  # 8
        "x3@example.com,fr,,,\n"  # 9
        "x4@example.com,en,,,2999-01-01\n"  # 10
        ",en,,,\n"  # 11
        '"multi\nline@example.com",en,,,\n'  # 12-13: one record over two lines
        "x5@example.com,en,,SMS (EU),\n"  # 14
    )
    report = imported(db, settings, clock, text)
    assert report == ImportReport(
        rows=12,
        new=2,
        skipped=(Issue(7, "unsubscribed"), Issue(8, "suppressed")),
        errors=(
            Issue(3, "bad_address"),
            Issue(4, "unknown_component", "Fax (EU)"),
            Issue(5, "unknown_zone", "Mars/Olympus"),
            Issue(6, "duplicate_in_file", "2"),
            Issue(9, "unknown_language", "fr"),
            Issue(10, "bad_date", "2999-01-01"),
            Issue(11, "missing_address"),
            Issue(12, "bad_address"),
        ),
    )
    assert report.lines() == [
        "imported: 12 rows: 2 new, 0 unchanged, 0 updated, 2 skipped, 8 errors; "
        "0 confirmation mails queued",
        "skipped line 7: unsubscribed here; an import never resubscribes",
        "skipped line 8: suppressed here (bounced or complained); an import never resubscribes",
        "error line 3: not a valid email address",
        "error line 4: unknown component: Fax (EU)",
        "error line 5: unknown time zone: Mars/Olympus",
        "error line 6: the same address as an earlier line: line 2",
        "error line 9: unknown language (de or en): fr",
        "error line 10: not a date (YYYY-MM-DD) or a date in the future: 2999-01-01",
        "error line 11: no email address",
        "error line 12: not a valid email address",
    ]
    assert {r["email"]: r["state"] for r in table(db, "subscribers")} == {
        "left@example.com": "unsubscribed",
        "bounced@example.com": "suppressed",
        "good@example.com": "confirmed",
        "x5@example.com": "confirmed",
    }


def test_an_ambiguous_component_name_asks_for_the_id(world, settings, clock):
    from .helpers import add_component

    feed = world.ensure_feed("https://other.example.com/history.atom", clock())
    add_component(world, feed["id"], "voice-2", "Voice", clock())
    report = imported(world, settings, clock, "email,components\nv@example.com,Voice\n")
    assert report.errors == (Issue(2, "ambiguous_component", "Voice"),)


# --- dry run, idempotence, updates ------------------------------------------------------
MIXED = (
    "email,language,timezone,components\n"
    "new@example.com,de,,voice\n"
    "same@example.com,en,UTC,\n"
    "moved@example.com,de,Europe/Vienna,SMS (EU)\n"
    "waiting@example.com,en,,\n"
    "left@example.com,en,,\n"
    "bad,en,,\n"
)


def _mixed_world(db, now):
    add_subscriber(db, "same@example.com", now=now)
    add_subscriber(db, "moved@example.com", now=now, language="en", components=["voice"])
    add_subscriber(db, "waiting@example.com", now=now, state="pending")
    add_subscriber(db, "left@example.com", now=now, state="unsubscribed")


@pytest.mark.parametrize("policy", [CONSENT, Policy.reconfirm()], ids=["consent", "reconfirm"])
def test_the_dry_run_reports_exactly_what_the_real_run_does_and_writes_nothing(
    world, settings, clock, policy
):
    db = world
    _mixed_world(db, clock())
    before = snapshot(db)
    dry = imported(db, settings, clock, MIXED, policy, dry_run=True)
    assert snapshot(db) == before
    assert dry.dry_run and dry.lines()[0].startswith("dry run, nothing was saved: 6 rows")
    real = imported(db, settings, clock, MIXED, policy)
    assert real == dry and not real.dry_run
    confirmed_by_import = policy.mode == "consent"  # a pending address they agreed for
    assert real == ImportReport(
        rows=6,
        new=1,
        unchanged=1 if confirmed_by_import else 2,
        updated=2 if confirmed_by_import else 1,
        skipped=(Issue(6, "unsubscribed"),),
        errors=(Issue(7, "bad_address"),),
        confirmations=0 if confirmed_by_import else 1,
    )


def test_updates_change_preferences_and_confirm_a_pending_address(world, settings, clock):
    db = world
    _mixed_world(db, clock())
    clock.advance(minutes=5)
    imported(db, settings, clock, MIXED)
    moved = subscriber(db, "moved@example.com")
    assert (moved["language"], moved["timezone"], moved["all_components"], moved["updated_at"]) == (
        "de", "Europe/Vienna", 0, clock())  # fmt: skip
    moved_id = db.get_subscriber_by_email("moved@example.com")["id"]
    assert db.subscriber_component_ids(moved_id) == ["sms-eu"]
    waiting = db.get_subscriber_by_email("waiting@example.com")
    assert (waiting["state"], waiting["confirmed_at"], waiting["token_nonce"]) == (
        "confirmed", clock(), None)  # fmt: skip
    assert [(c["subscriber_id"], c["source"]) for c in table(db, "consents")] == [
        (db.get_subscriber_by_email("new@example.com")["id"], "old status page, double opt-in"),
        (waiting["id"], "old status page, double opt-in"),
    ]
    assert subscriber(db, "left@example.com")["state"] == "unsubscribed"


@pytest.mark.parametrize("policy", [CONSENT, Policy.reconfirm()], ids=["consent", "reconfirm"])
def test_a_second_run_changes_nothing(world, settings, clock, policy):
    db = world
    _mixed_world(db, clock())
    first = imported(db, settings, clock, MIXED, policy)
    before = {k: v for k, v in snapshot(db).items() if k != "audit_log"}
    clock.advance(hours=1)
    second = imported(db, settings, clock, MIXED, policy)
    assert {k: v for k, v in snapshot(db).items() if k != "audit_log"} == before
    assert second == ImportReport(
        rows=6,
        unchanged=4,
        skipped=(Issue(6, "unsubscribed"),),
        errors=(Issue(7, "bad_address"),),
    )
    assert first.new == 1


def test_addresses_match_whatever_their_case_and_nothing_is_duplicated(world, settings, clock):
    add_subscriber(world, "anna@example.de", now=clock(), language="de")
    report = imported(world, settings, clock, "email,language\nANNA@Example.de,de\n")
    assert report == ImportReport(rows=1, unchanged=1)
    assert [r["email"] for r in table(world, "subscribers")] == ["anna@example.de"]


# --- Statuspage's own export -------------------------------------------------------------
STATUSPAGE_EXPORT = (
    "\ufeffid,mode,email,endpoint,phone_number,phone_country,components,quarantined_at,"
    "purge_at,created_at\n"
    "x9k2,email,ops@customer.example,,,,sms-eu;voice,,,2019-02-20T12:00:19.418-06:00\n"
    "x9k3,sms,,,4915112345678,DE,,,,2019-02-21T08:00:00.000Z\n"
    "x9k4,webhook,hook@customer.example,https://hooks.example/x,,,,,,2019-03-01T00:00:00Z\n"
    "x9k5,email,gone@customer.example,,,,,2020-01-01T00:00:00Z,2020-01-08T00:00:00Z,"
    "2019-04-01T00:00:00Z\n"
    "x9k6,email,all@customer.example,,,,,,,2019-05-01T00:00:00Z\n"
)


def test_statuspage_subscriber_export_is_read_as_is(world, settings, clock):
    report = imported(world, settings, clock, STATUSPAGE_EXPORT)
    assert report == ImportReport(
        rows=5,
        new=2,
        skipped=(Issue(3, "not_email", "sms"), Issue(4, "not_email", "webhook"),
                 Issue(5, "quarantined")),
        ignored_columns=("id", "endpoint", "phone_number", "phone_country", "purge_at"),
    )  # fmt: skip
    ops = world.get_subscriber_by_email("ops@customer.example")
    assert world.subscriber_component_ids(ops["id"]) == ["sms-eu", "voice"]
    assert [(c["subscriber_id"], c["signup_at"]) for c in table(world, "consents")] == [
        (ops["id"], datetime(2019, 2, 20, 18, 0, 19, 418000, tzinfo=UTC)),
        (world.get_subscriber_by_email("all@customer.example")["id"],
         datetime(2019, 5, 1, tzinfo=UTC)),
    ]  # fmt: skip


def test_a_semicolon_separated_file_from_excel_is_read(world, settings, clock):
    text = "\ufeffE-Mail;Sprache;Components\nd@example.de;de;Voice, SMS (EU)\n"
    report = imported(world, settings, clock, text)
    assert report == ImportReport(rows=1, new=1, ignored_columns=("Sprache",))
    row = world.get_subscriber_by_email("d@example.de")
    assert world.subscriber_component_ids(row["id"]) == ["sms-eu", "voice"]


def test_a_file_without_an_email_column_is_refused_whole(world, settings, clock):
    with pytest.raises(importer.ImportFileError, match="no email column"):
        imported(world, settings, clock, "name,language\nAnna,de\n")


# --- audit and logs --------------------------------------------------------------------
def test_every_real_import_is_audited_with_counts_and_no_address_is_logged(
    world, settings, clock, caplog
):
    caplog.set_level(logging.DEBUG)
    _mixed_world(world, clock())
    imported(world, settings, clock, MIXED, dry_run=True)
    imported(world, settings, clock, MIXED)
    assert audit_rows(world) == [
        ("ops", "subscribers.import", None,
         {"policy": "consent", "rows": 6, "new": 1, "unchanged": 1, "updated": 2, "skipped": 1,
          "errors": 1, "confirmations": 0}),
    ]  # fmt: skip
    assert "@" not in caplog.text


# --- the CLI ---------------------------------------------------------------------------
def test_cli_refuses_to_run_without_a_policy(runner, world, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("email\na@example.com\n")
    result = runner.invoke(args=["subscribers", "import", str(path)])
    assert (result.exit_code, result.output) == (1, "error: " + importer_policy_help() + "\n")
    result = runner.invoke(
        args=["subscribers", "import", str(path), "--reconfirm", "--consented-at", "2025-01-01"]
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: --reconfirm and --consented-at exclude each other")
    assert table(world, "subscribers") == []


def importer_policy_help() -> str:
    from notifier.cli_admin import POLICY_HELP

    return POLICY_HELP


def test_cli_dry_run_then_import_print_the_same_report(runner, world, tmp_path):
    _mixed_world(world, datetime(2026, 11, 26, tzinfo=UTC))
    path = tmp_path / "list.csv"
    path.write_text(MIXED)
    args = ["subscribers", "import", str(path), "--consent-source", "old page",
            "--consented-at", "2025-03-01"]  # fmt: skip
    dry = runner.invoke(args=[*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    real = runner.invoke(args=args)
    assert real.exit_code == 0, real.output
    tail = [
        "skipped line 6: unsubscribed here; an import never resubscribes",
        "error line 7: not a valid email address",
    ]
    counts = "6 rows: 1 new, 1 unchanged, 2 updated, 1 skipped, 1 errors; 0 confirmation mails"
    assert dry.output.splitlines() == [f"dry run, nothing was saved: {counts} would be queued",
                                       *tail]  # fmt: skip
    assert real.output.splitlines() == [f"imported: {counts} queued", *tail]
    assert [a for _, a, _, _ in audit_rows(world)] == ["subscribers.import"]
    assert audit_rows(world)[0][0] == ACTOR


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        (b"email\n\xff\xfe@x\n", [], "the file is not UTF-8 text (save it as CSV UTF-8)"),
        (b"name\nx\n", [], "no email column in the header row"),
        (b"", [], "the file is empty"),
        (b'email\n"open@example.com\n', [], "line 2: not valid CSV (unexpected end of data)"),
    ],
)
def test_cli_names_a_file_it_cannot_read_in_one_line(runner, world, tmp_path, content, extra,
                                                      message):  # fmt: skip
    path = tmp_path / "list.csv"
    path.write_bytes(content)
    result = runner.invoke(args=["subscribers", "import", str(path), "--reconfirm", *extra])
    assert (result.exit_code, result.output) == (1, f"error: {path}: {message}\n")


def test_cli_names_a_bad_consent_date(runner, world, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("email\na@example.com\n")
    result = runner.invoke(args=["subscribers", "import", str(path), "--consent-source", "x",
                                 "--consented-at", "yesterday"])  # fmt: skip
    message = "error: --consented-at: not a date (YYYY-MM-DD) or in the future: 'yesterday'\n"
    assert (result.exit_code, result.output) == (1, message)


ADDRESSES = [
    "a@example.com", "A.B@Example.COM", "a..b@example.com", ".a@example.com", "a.@example.com",
    "a@-x.com", "a@x-.com", "a@localhost", "a@x.local", "a@x.test", "a@münchen.de", "ä@x.de",
    "a@1.2.3.4", "a@[1.2.3.4]", "a@x", "a@x.123", "x" * 65 + "@example.com",
    "a@" + "b" * 64 + ".com", "a b@example.com", '"a"@example.com', "a@@example.com",
    "@example.com", "a@", "a@example.com.", "a+tag@example.co.uk", "=cmd@example.com",
    "a@example.invalid", "o'neil@example.ie", "a@example..com", "a@_x.com", "a@x_y.com",
    "a@xn--mnchen-3ya.de", "a@" + "a." * 120 + "com", "x@example.onion", "a@exa\u200bmple.com",
]  # fmt: skip


@pytest.mark.parametrize("raw", ADDRESSES)
def test_the_fast_address_check_agrees_with_the_sign_up_form(raw):
    from notifier.forms import normalize_email

    def outcome(normalize):
        try:
            return normalize(raw)
        except ValueError as exc:
            return type(exc).__name__

    assert outcome(importer.normalize_address) == outcome(normalize_email)


# --- the ops console: upload, dry run, confirm -------------------------------------------
def upload(admin, text: str | bytes, **fields):
    data = text.encode() if isinstance(text, str) else text
    form = {"csrf_token": csrf_token(admin, "/admin/subscribers/import"), **fields}
    if data is not None:
        form["file"] = FileStorage(io.BytesIO(data), "list.csv", content_type="text/csv")
    # Encoded here, in memory: given the form, the test client spools a body over 500 KB to a
    # TemporaryFile (werkzeug.test.stream_encode_multipart) that nothing closes. The garbage
    # collector then warns "unclosed file <_io.BufferedRandom name=N>" in whichever later test
    # it runs, and filterwarnings turns that into an error there.
    boundary, body = encode_multipart(form)
    return admin.post("/admin/subscribers/import", data=body,
                      content_type=f'multipart/form-data; boundary="{boundary}"')  # fmt: skip


CONSENT_FORM = {"policy": "consent", "consent_source": "old page", "consented_at": "2025-03-01",
                "language": "en"}  # fmt: skip


def _hidden(page: str) -> dict:
    return {n: html.unescape(v) for n, v in
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)}  # fmt: skip


def test_ops_upload_see_the_dry_run_then_confirm_and_get_the_same_report(world, admin, clock):
    db = world
    _mixed_world(db, clock())
    before = snapshot(db)
    response = upload(admin, MIXED, **CONSENT_FORM)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert snapshot(db) == before  # the dry run wrote nothing, not even an audit entry
    counts = dict(re.findall(r'<dd data-count="(\w+)">(\d+)</dd>', page))
    expected = {"new": "1", "unchanged": "1", "updated": "2", "skipped": "1", "errors": "1",
                "confirmations": "0"}  # fmt: skip
    assert counts == expected
    assert "<td>6</td><td>unsubscribed here: an import never resubscribes</td>" in page
    assert "<td>7</td><td>not a valid email address</td>" in page
    hidden = _hidden(page)
    assert hidden.pop("csv") == MIXED
    assert {k: v for k, v in hidden.items() if k != "csrf_token"} == CONSENT_FORM
    done = admin.post("/admin/subscribers/import/confirm", data={**hidden, "csv": MIXED})
    assert done.status_code == 200
    done_page = done.get_data(as_text=True)
    assert dict(re.findall(r'<dd data-count="(\w+)">(\d+)</dd>', done_page)) == expected
    assert "Import done" in done_page and "Import now" not in done_page
    assert db.get_subscriber_by_email("new@example.com")["state"] == "confirmed"
    assert audit_rows(db)[-1] == (
        "admin", "subscribers.import", None,
        {"policy": "consent", "rows": 6, "new": 1, "unchanged": 1, "updated": 2, "skipped": 1,
         "errors": 1, "confirmations": 0},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("content", "fields", "message"),
    [
        (MIXED, {}, "Choose how the addresses come in"),
        (MIXED, {"policy": "consent", "consented_at": "2025-03-01"}, "consent source"),
        (MIXED, {"policy": "consent", "consent_source": "x", "consented_at": "soon"},
         "not in the future"),
        (b"", CONSENT_FORM, "Choose a CSV file to upload."),
        (b"email\n\xff@x\n", CONSENT_FORM, "The file is not UTF-8 text."),
        (b"name\nx\n", CONSENT_FORM, "The first line has no email column"),
    ],
)  # fmt: skip
def test_a_file_or_form_the_import_cannot_use_is_a_400_page(world, admin, content, fields,
                                                           message):  # fmt: skip
    response = upload(admin, content, **fields)
    assert response.status_code == 400
    assert message in html.unescape(response.get_data(as_text=True))
    assert table(world, "subscribers") == []


def test_a_file_over_the_size_limit_is_a_413_page(world, admin, monkeypatch):
    from notifier.admin import subscribers

    monkeypatch.setattr(subscribers, "MAX_IMPORT_BYTES", 1000)
    response = upload(admin, "email\n" + "a@example.com\n" * 200, **CONSENT_FORM)
    assert response.status_code == 413
    assert "The file is too large" in response.get_data(as_text=True)


def test_a_bigger_file_than_the_app_wide_form_limit_goes_through(world, admin):
    text = "email\n" + "".join(f"person.{n:05d}@example.com\n" for n in range(12000))
    assert len(text) > 256 * 1024
    response = upload(admin, text, policy="reconfirm")
    assert response.status_code == 200
    assert '<dd data-count="new">12000</dd>' in response.get_data(as_text=True)


def test_the_import_views_are_post_with_csrf_and_need_a_login(world, admin, client):
    assert admin.post("/admin/subscribers/import", data=CONSENT_FORM).status_code == 400
    confirm = admin.post("/admin/subscribers/import/confirm", data={**CONSENT_FORM, "csv": MIXED})
    assert confirm.status_code == 400
    assert admin.get("/admin/subscribers/import/confirm").status_code == 405
    assert client.get("/admin/subscribers/import").status_code in (302, 303)
    assert table(world, "subscribers") == []


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC: OverflowError in astimezone
        "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
        "2026-13-01",
        "2026-02-30",
        "",
        "yesterday",
        "2027-01-01",  # later than now
    ],
)
def test_every_unreadable_or_future_consent_date_is_a_value_error(value):
    """The CLI and the upload page turn ValueError into one line / a 400 message; anything
    else would be a traceback or a 500."""
    from datetime import UTC, datetime

    from notifier.importer import parse_date

    with pytest.raises(ValueError):
        parse_date(value, datetime(2026, 11, 30, tzinfo=UTC))


def test_a_file_the_dry_run_took_is_taken_by_the_confirmation(world, admin):
    """The report page posts the file back url-encoded, up to 3 characters per byte ("/",
    ",", "@", newlines, non-ASCII): a file under the limit must not turn into a 413 at the
    last step."""
    from notifier.admin.subscribers import MAX_IMPORT_BYTES

    note = "/" * 3400  # an extra column the import ignores: 3 characters each once encoded
    text = "email,note\n" + "".join(f"person.{n:04d}@example.com,{note}\n" for n in range(1000))
    assert 3_000_000 < len(text.encode()) <= MAX_IMPORT_BYTES
    dry = upload(admin, text, **CONSENT_FORM)
    assert dry.status_code == 200
    assert '<dd data-count="new">1000</dd>' in dry.get_data(as_text=True)
    hidden = _hidden(dry.get_data(as_text=True))
    done = admin.post("/admin/subscribers/import/confirm", data=hidden)
    assert done.status_code == 200
    assert '<dd data-count="new">1000</dd>' in done.get_data(as_text=True)
    too_big = text + "x" * (MAX_IMPORT_BYTES - len(text.encode()) + 1)
    over = admin.post("/admin/subscribers/import/confirm", data={**hidden, "csv": too_big})
    assert over.status_code == 413
