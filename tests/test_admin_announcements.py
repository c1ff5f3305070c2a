"""The announcement composer: drafts, Q/A rows, validation beside the fields, audiences,
preview, test send, send with confirmation, and the post-incident template."""

from __future__ import annotations

import re

import pytest

from notifier import jobs

from .helpers import table
from .test_admin_helpers import (  # noqa: F401  (fixtures)
    admin_client,
    admin_settings,
    audience_world,
    audit_rows,
    composer_form,
    deliveries,
    hidden,
    mail_through_fake_sendgrid,
    post,
    received,
)


def new_draft(admin, **fields) -> int:
    response = post(admin, "/admin/announcements/new", composer_form(**fields))
    assert response.status_code == 303
    return int(re.search(r"/admin/announcements/(\d+)", response.headers["Location"]).group(1))


def nothing_sent(db) -> bool:
    return table(db, "notifications") == [] and table(db, "deliveries") == []


# --- drafts ----------------------------------------------------------------------------
def test_a_draft_keeps_both_languages_and_the_shared_fields(admin, db, clock):
    draft = new_draft(admin)
    row = db.get_announcement(draft)
    assert (row["state"], row["created_by"], row["incident_id"]) == ("draft", "admin", None)
    assert row["content"] == {
        "kind": "announcement",
        "products": ["SMS (EU)"],
        # 09:30 and 11:00 in Berlin (CET in November) are 08:30 and 10:00 UTC.
        "window": {
            "start": "2026-11-26T08:30:00Z",
            "end": "2026-11-26T10:00:00Z",
            "zone": "Europe/Berlin",
        },
        "de": {
            "title": "Verzögerte SMS-Zustellung",
            "intro": "heute Morgen kamen SMS in der EU verspätet an.",
            "bullets": ["Alles läuft wieder normal.", "Du musst nichts tun."],
            "qa": [{"q": "Was ist passiert?", "a": "Ein Gateway war überlastet."}],
        },
        "en": {
            "title": "Delayed SMS delivery",
            "intro": "This morning SMS in the EU arrived late.",
            "bullets": ["Everything works normally again.", "You need to do nothing."],
            "qa": [{"q": "What happened?", "a": "A gateway was overloaded."}],
        },
    }
    assert row["audience"] == {"components": None, "languages": ["de", "en"]}
    page = admin.get(f"/admin/announcements/{draft}").text
    assert 'value="2026-11-26T09:30"' in page  # shown again in the zone it was typed in
    assert nothing_sent(db)


def test_questions_are_added_moved_and_removed_without_javascript(admin, db):
    draft = new_draft(admin)

    def press(action, **extra):
        form = composer_form(action=action, **extra)
        return post(admin, f"/admin/announcements/{draft}", form)

    response = press("qa-add:de")
    assert response.headers["Location"] == f"/admin/announcements/{draft}#de-qa-1"
    assert db.get_announcement(draft)["content"]["de"]["qa"][1] == {"q": "", "a": ""}
    press("save", **{"de-qa-1-q": "Muss ich etwas tun?", "de-qa-1-a": "Nein."})
    response = press("qa-up:de:1", **{"de-qa-1-q": "Muss ich etwas tun?", "de-qa-1-a": "Nein."})
    assert response.headers["Location"] == f"/admin/announcements/{draft}#de-qa-0"
    assert db.get_announcement(draft)["content"]["de"]["qa"] == [
        {"q": "Muss ich etwas tun?", "a": "Nein."},
        {"q": "Was ist passiert?", "a": "Ein Gateway war überlastet."},
    ]
    press(
        "qa-remove:de:0",
        **{
            "de-qa-0-q": "Muss ich etwas tun?",
            "de-qa-0-a": "Nein.",
            "de-qa-1-q": "Was ist passiert?",
            "de-qa-1-a": "Ein Gateway war überlastet.",
        },
    )
    assert db.get_announcement(draft)["content"]["de"]["qa"] == [
        {"q": "Was ist passiert?", "a": "Ein Gateway war überlastet."}
    ]
    assert db.get_announcement(draft)["content"]["en"]["qa"] == [
        {"q": "What happened?", "a": "A gateway was overloaded."}
    ]
    page = admin.get(f"/admin/announcements/{draft}").text
    assert 'name="action" value="qa-down:de:0"' in page and 'value="qa-add:en"' in page


def test_an_unknown_button_is_a_bad_request(admin, db):
    assert post(admin, "/admin/announcements/new", composer_form(action="drop")).status_code == 400
    assert table(db, "announcements") == []


# --- validation ------------------------------------------------------------------------
@pytest.mark.parametrize("title", ["Wartung\r\nBcc: victim@example.com", "Wartung\nX", "A\rB"])
def test_crlf_in_a_title_is_refused_beside_the_field_and_nothing_is_sent(admin, db, clock, title):
    audience_world(db, clock())
    draft = new_draft(admin)
    response = post(
        admin, f"/admin/announcements/{draft}", composer_form(action="send", **{"de-title": title})
    )
    assert response.status_code == 400
    message = "Must be one line: line breaks and control characters are not allowed here."
    assert f'<p class="field-error" id="de-title-error">{message}</p>' in response.text
    assert re.search(
        r'id="de-title"[^>]*aria-describedby="de-title-hint de-title-error"'
        r' aria-invalid="true"',
        response.text,
    )
    assert '<a href="#de-title">Deutsch: Title</a>: ' + message in response.text
    # The confirmation step refuses it too, even with a token from an earlier check.
    assert admin.get(f"/admin/announcements/{draft}/send").status_code == 303
    response = post(admin, f"/admin/announcements/{draft}/send", {"revision": "x"})
    assert response.status_code == 400
    # And so does a test send.
    response = post(
        admin,
        f"/admin/announcements/{draft}",
        composer_form(action="test", test_to="ops@example.com", **{"de-title": title}),
    )
    assert response.status_code == 400
    assert nothing_sent(db)
    assert db.get_announcement(draft)["state"] == "draft"


def test_both_languages_are_needed_unless_the_audience_has_one(admin, db, clock):
    audience_world(db, clock())
    english_empty = {
        "en-title": "",
        "en-intro": "",
        "en-bullets": "",
        "en-qa-0-q": "",
        "en-qa-0-a": "",
    }
    draft = new_draft(admin, **english_empty)
    response = post(
        admin, f"/admin/announcements/{draft}", composer_form(action="send", **english_empty)
    )
    assert response.status_code == 400
    assert re.findall(r'<p class="field-error" id="([\w-]+)-error">', response.text) == [
        "en-title",
        "en-intro",
    ]
    response = post(
        admin,
        f"/admin/announcements/{draft}",
        composer_form(action="send", audience_languages=["de"], **english_empty),
    )
    assert response.headers["Location"] == f"/admin/announcements/{draft}/send"


def test_fields_are_length_capped(admin, db):
    draft = new_draft(admin)
    form = composer_form(action="send", **{"en-title": "x" * 151, "de-qa-0-a": "y" * 4001})
    response = post(admin, f"/admin/announcements/{draft}", form)
    assert response.status_code == 400
    errors = dict(
        re.findall(r'<p class="field-error" id="([\w-]+)-error">([^<]*)</p>', response.text)
    )
    assert errors == {
        "en-title": "At most 150 characters.",
        "de-qa-0-a": "At most 4000 characters.",
    }


def test_no_language_or_no_product_chosen_is_an_error_not_everyone(admin, db, clock):
    audience_world(db, clock())
    draft = new_draft(admin)
    form = composer_form(action="send", audience_languages=None, audience_scope="components")
    response = post(admin, f"/admin/announcements/{draft}", form)
    errors = dict(
        re.findall(r'<p class="field-error" id="([\w-]+)-error">([^<]*)</p>', response.text)
    )
    assert errors == {
        "audience-components": "Choose at least one product, or everyone.",
        "audience-languages": "Choose at least one language.",
    }


# --- audience --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("scope", "components", "languages", "expected"),
    [
        ("all", [], ["de", "en"], {"de": 3, "en": 2}),
        ("components", ["sms-eu"], ["de", "en"], {"de": 2, "en": 2}),
        ("components", ["grp-sms"], ["de", "en"], {"de": 2, "en": 2}),  # a group: its members
        ("components", ["sms-eu"], ["de"], {"de": 2}),
        ("components", ["voice", "sms-us"], ["en"], {"en": 1}),
    ],
)
def test_the_confirmation_shows_the_recipients_per_language(
    admin, db, clock, scope, components, languages, expected
):
    audience_world(db, clock())
    form = composer_form(
        action="send",
        audience_scope=scope,
        audience_components=components,
        audience_languages=languages,
    )
    draft = new_draft(admin, **form)
    response = post(admin, f"/admin/announcements/{draft}", form)
    assert response.headers["Location"] == f"/admin/announcements/{draft}/send"
    page = admin.get(f"/admin/announcements/{draft}/send").text
    counts = dict(re.findall(r'data-language-count="(\w+)">(\d+)<', page))
    assert {k: int(v) for k, v in counts.items()} == expected
    assert f"Recipients: {sum(expected.values())}</h2>" in page
    audience = db.get_announcement(draft)["audience"]
    assert db.count_audience("announcement", audience) == sum(expected.values())


def test_sending_to_nobody_is_refused(admin, db, clock):
    draft = new_draft(admin, action="send")
    revision = hidden(admin.get(f"/admin/announcements/{draft}/send").text, "revision")
    response = post(admin, f"/admin/announcements/{draft}/send", {"revision": revision})
    assert response.headers["Location"] == f"/admin/announcements/{draft}"
    assert "Nobody would get this announcement" in admin.get(response.headers["Location"]).text
    assert nothing_sent(db)


# --- send ------------------------------------------------------------------------------
def test_send_asks_for_confirmation_then_queues_exactly_the_audience(admin, db, clock):
    ids = audience_world(db, clock())
    form = composer_form(action="send", audience_scope="components", audience_components=["sms-eu"])
    draft = new_draft(admin, **form)
    assert post(admin, f"/admin/announcements/{draft}", form).status_code == 303
    assert nothing_sent(db)  # the button only leads to the confirmation
    page = admin.get(f"/admin/announcements/{draft}/send").text
    assert "Send now to 4 recipients" in page
    assert "[Hinweis] SMS (EU): Verzögerte SMS-Zustellung" in page
    assert "[Notice] SMS (EU): Delayed SMS delivery" in page
    response = post(
        admin, f"/admin/announcements/{draft}/send", {"revision": hidden(page, "revision")}
    )
    [notification] = table(db, "notifications")
    nid = notification["id"]
    assert response.headers["Location"] == f"/admin/notifications/{nid}"
    assert (notification["kind"], notification["announcement_id"]) == ("announcement", draft)
    assert deliveries(db) == [
        (nid, "de-all@example.de", "de", "pending", None),
        (nid, "de-sms-eu@example.de", "de", "pending", None),
        (nid, "en-all@example.com", "en", "pending", None),
        (nid, "en-sms-eu@example.com", "en", "pending", None),
    ]
    row = db.get_announcement(draft)
    assert (row["state"], row["notification_id"], row["sent_at"]) == ("sent", nid, clock())
    assert "Sending to 4 recipients." in admin.get(f"/admin/notifications/{nid}").text
    # A second press (another tab, a double click) sends nothing more.
    again = post(
        admin, f"/admin/announcements/{draft}/send", {"revision": hidden(page, "revision")}
    )
    assert again.headers["Location"] == f"/admin/announcements/{draft}"
    assert len(table(db, "notifications")) == 1
    assert audit_rows(db)[-1] == (
        "admin",
        "announcement.send",
        f"announcement:{draft}",
        {"notification": nid, "recipients": 4},
    )
    assert ids["unsubscribed@example.com"] not in [
        d["subscriber_id"] for d in table(db, "deliveries")
    ]


def test_a_draft_changed_after_the_confirmation_page_is_not_sent_unseen(admin, db, clock):
    audience_world(db, clock())
    draft = new_draft(admin)
    revision = hidden(admin.get(f"/admin/announcements/{draft}/send").text, "revision")
    post(admin, f"/admin/announcements/{draft}", composer_form(**{"en-title": "Changed"}))
    response = post(admin, f"/admin/announcements/{draft}/send", {"revision": revision})
    assert response.headers["Location"] == f"/admin/announcements/{draft}/send"
    assert nothing_sent(db)


def test_a_sent_announcement_cannot_be_edited(admin, db, clock):
    audience_world(db, clock())
    draft = new_draft(admin)
    revision = hidden(admin.get(f"/admin/announcements/{draft}/send").text, "revision")
    post(admin, f"/admin/announcements/{draft}/send", {"revision": revision})
    before = db.get_announcement(draft)
    post(admin, f"/admin/announcements/{draft}", composer_form(**{"en-title": "Changed"}))
    assert db.get_announcement(draft) == before
    page = admin.get(f"/admin/announcements/{draft}").text
    assert "Use as a new draft" in page and 'name="en-title"' not in page


# --- preview and test send -------------------------------------------------------------
def test_preview_shows_both_languages_as_rendered_in_a_sandboxed_frame(admin, db):
    draft = new_draft(admin)
    response = post(admin, f"/admin/announcements/{draft}", composer_form(action="preview"))
    assert response.headers["Location"] == f"/admin/announcements/{draft}/preview"
    page = admin.get(response.headers["Location"])
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]
    assert re.findall(r'data-subject="(\w+)">([^<]*)<', page.text) == [
        ("de", "[Hinweis] SMS (EU): Verzögerte SMS-Zustellung"),
        ("en", "[Notice] SMS (EU): Delayed SMS delivery"),
    ]
    assert f'src="/admin/announcements/{draft}/preview/de.html" sandbox' in page.text
    text = re.search(r'<pre lang="de" data-text="de">(.*?)</pre>', page.text, re.S).group(1)
    assert "26. November 2026, 09:30 – 11:00 MEZ" in text
    assert "F: Was ist passiert?" in text and "-unsubscribe_url-" not in text
    frame = admin.get(f"/admin/announcements/{draft}/preview/de.html")
    assert frame.headers["Content-Security-Policy"].startswith("sandbox; default-src 'none';")
    assert frame.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "<h1" in frame.text and "Verzögerte SMS-Zustellung" in frame.text
    assert "https://status-notify.example.com/unsubscribe/…" in frame.text


def test_a_test_send_goes_to_that_address_only_in_each_language(admin, db, clock, mail, app):
    audience_world(db, clock())
    draft = new_draft(admin)
    form = composer_form(action="test", test_to="Ops.Team@Example.COM")
    response = post(admin, f"/admin/announcements/{draft}", form)
    assert response.headers["Location"] == f"/admin/announcements/{draft}"
    assert (
        "Test send queued to ops.team@example.com (de, en)."
        in admin.get(response.headers["Location"]).text
    )
    assert [(d[1], d[2], d[3]) for d in deliveries(db)] == [
        ("ops.team@example.com", "de", "pending"),
        ("ops.team@example.com", "en", "pending"),
    ]
    jobs.dispatch(app)
    assert received(mail) == [
        ("ops.team@example.com", "[Hinweis] SMS (EU): [TEST] Verzögerte SMS-Zustellung"),
        ("ops.team@example.com", "[Notice] SMS (EU): [TEST] Delayed SMS delivery"),
    ]
    assert db.get_announcement(draft)["state"] == "draft"  # a test is not the send
    assert audit_rows(db)[-1] == (
        "admin",
        "announcement.test_send",
        f"announcement:{draft}",
        {"languages": ["de", "en"], "to": "o***@example.com"},
    )


def test_a_test_send_needs_a_valid_address(admin, db):
    draft = new_draft(admin)
    response = post(
        admin,
        f"/admin/announcements/{draft}",
        composer_form(action="test", test_to="not-an-address"),
    )
    assert response.status_code == 400
    assert '<p class="field-error" id="test-to-error">Enter the email address' in response.text
    assert nothing_sent(db)


def test_a_draft_can_be_discarded(admin, db):
    draft = new_draft(admin)
    post(admin, f"/admin/announcements/{draft}/discard")
    assert db.get_announcement(draft)["state"] == "discarded"
    assert f"/admin/announcements/{draft}" not in admin.get("/admin/announcements").text


# --- post-incident notice ----------------------------------------------------------------
def test_a_post_incident_notice_is_prefilled_from_the_incident(admin, db, clock):
    from datetime import timedelta

    from notifier.feed import parse_feed
    from notifier.poller import ingest

    from .helpers import atom
    from .test_subscribe_helpers import seed_catalogue

    feed_id = seed_catalogue(db, clock())
    ingest(db, feed_id, parse_feed(atom([])), clock())  # the silent baseline
    t0 = clock() - timedelta(hours=5)
    entry = {
        "key": "sms000000001",
        "title": "Delayed SMS delivery",
        "updates": [
            (t0, "Investigating", "Looking into it."),
            (t0 + timedelta(hours=3), "Resolved", "Fixed."),
        ],
    }
    ingest(db, feed_id, parse_feed(atom([entry])), clock())
    [incident] = db.recent_incidents()
    db.set_incident_enrichment(incident["id"], ["sms-eu"], "major", clock())
    assert (
        f'<option value="{incident["id"]}">Delayed SMS delivery'
        in admin.get("/admin/announcements").text
    )

    response = post(admin, "/admin/announcements/from-incident", {"incident_id": incident["id"]})
    draft = int(response.headers["Location"].rsplit("/", 1)[1])
    row = db.get_announcement(draft)
    assert (row["incident_id"], row["audience"]) == (
        incident["id"],
        {"components": ["sms-eu"], "languages": ["de", "en"]},
    )
    content = row["content"]
    assert (content["products"], content["window"]) == (
        ["SMS (EU)"],
        {"start": "2026-11-26T07:00:00Z", "end": "2026-11-26T10:00:00Z", "zone": "Europe/Berlin"},
    )
    assert content["de"]["title"] == "Informationen zur Störung von SMS (EU)"
    assert [qa["q"] for qa in content["en"]["qa"]] == [
        "What happened?",
        "What did not work?",
        "How do I recognise affected messages?",
        "What can I do so my messages still arrive?",
        "Will I be billed for messages that were not sent?",
        "What are you doing to prevent this from happening again?",
        "Where do I hear about future incidents?",
        "Do I need to do anything now?",
        "Is the problem fully fixed?",
        "Where can I get help?",
    ]
    assert len(content["de"]["qa"]) == 10
    page = admin.get(f"/admin/announcements/{draft}").text
    assert "Post-incident notice for: Delayed SMS delivery." in page
    assert 'value="2026-11-26T08:00"' in page  # 07:00 UTC in Berlin
    # The template's gaps in square brackets must be filled before anything goes out.
    errors = re.findall(r'<p class="field-error" id="([\w-]+)-error">Replace the placeholder', page)
    assert errors == ["de-qa-0-a", "de-qa-1-a", "en-qa-0-a", "en-qa-1-a"]
    form = {
        "products": "SMS (EU)",
        "window_start": "2026-11-26T08:00",
        "window_end": "2026-11-26T11:00",
        "window_zone": "Europe/Berlin",
        "audience_scope": "components",
        "audience_components": ["sms-eu"],
        "audience_languages": ["de", "en"],
        "action": "send",
    }
    for lang in ("de", "en"):
        part = content[lang]
        form |= {
            f"{lang}-title": part["title"],
            f"{lang}-intro": part["intro"],
            f"{lang}-bullets": "\n".join(part["bullets"]),
        }
        for i, qa in enumerate(part["qa"]):
            form |= {f"{lang}-qa-{i}-q": qa["q"], f"{lang}-qa-{i}-a": qa["a"]}
    assert post(admin, f"/admin/announcements/{draft}", form).status_code == 400
    for lang in ("de", "en"):
        for i in (0, 1):
            form[f"{lang}-qa-{i}-a"] = re.sub(r"\s*\[[^\]]*\]", "", form[f"{lang}-qa-{i}-a"])
            form[f"{lang}-qa-{i}-a"] = form[f"{lang}-qa-{i}-a"] or "Messages were delayed."
    response = post(admin, f"/admin/announcements/{draft}", form)
    assert response.headers["Location"] == f"/admin/announcements/{draft}/send"
    assert audit_rows(db)[1] == (
        "admin",
        "announcement.prefill",
        f"announcement:{draft}",
        {"incident": incident["id"]},
    )
