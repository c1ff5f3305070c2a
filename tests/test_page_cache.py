"""The sign-up page is rendered once per catalogue, language and address and then only gets
each visitor's own CSRF token and start stamp (notifier/public.py, _first_visit_page): nothing
of one visitor may reach another's page, and a catalogue sync shows at once, in every process.
"""

from __future__ import annotations

import re

from flask_babel import get_locale
from flask_wtf.csrf import generate_csrf

from app import create_app
from notifier import context, forms, public, subscriptions

from .test_subscribe_helpers import (
    form_tokens,
    hidden,
    seed_catalogue,
    signup,
    signup_data,
    snapshot,
)

GERMAN = {"Accept-Language": "de-DE,de;q=0.9"}
ENGLISH = {"Accept-Language": "en"}


def _page(client, path="/", headers=ENGLISH) -> str:
    response = client.get(path, headers=headers)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _without_own_values(html: str) -> str:
    """The page with this visitor's CSRF token and stamp blanked (they differ by design)."""
    return re.sub(r'(name="(?:csrf_token|started)" value=")[^"]*"', r'\1"', html)


def _boxes(html: str) -> list[str]:
    return re.findall(r'name="components" value="([^"]+)"', html)


def test_cached_page_is_the_page_rendered_afresh(app, db, clock):
    """Byte for byte, in both languages and at both addresses, against the uncached view."""
    seed_catalogue(db, clock())
    for path in ("/", "/subscribe"):
        for headers in (GERMAN, ENGLISH):
            for _ in range(2):  # the first call fills the cache, the second reads it
                with app.test_request_context(path, headers=headers):
                    app.preprocess_request()
                    catalogue = forms.load_catalogue(context.store())
                    language = get_locale().language
                    cached = public._first_visit_page(catalogue, language).decode()
                    form = forms.SubscribeForm.for_request(catalogue, language)
                    fresh, status = public._subscribe_page(form)
                    assert (status, cached) == (200, fresh)
                    assert hidden(cached, "csrf_token") == generate_csrf()


def test_each_visitor_gets_a_token_for_their_own_session_only(app, db, clock):
    seed_catalogue(db, clock())
    ada, bob = app.test_client(), app.test_client()
    ada_tokens = form_tokens(ada, headers=GERMAN)
    clock.advance(seconds=7)
    bob_tokens = form_tokens(bob, headers=GERMAN)
    assert ada_tokens["csrf_token"] != bob_tokens["csrf_token"]
    # Each stamp says when that visitor's page was shown.
    key = app.extensions["settings"].secret_key
    assert forms.seconds_since(key, ada_tokens["started"], clock()) == 7
    assert forms.seconds_since(key, bob_tokens["started"], clock()) == 0
    clock.advance(seconds=5)
    # Bob's token in Ada's session is refused: tokens are bound to their session.
    crossed = ada.post("/subscribe", data={**bob_tokens, **signup_data("ada@example.com")})
    assert crossed.status_code == 400
    assert db.get_subscriber_by_email("ada@example.com") is None
    own = ada.post("/subscribe", data={**ada_tokens, **signup_data("ada@example.com")})
    assert (own.status_code, own.headers["Location"]) == (303, "/subscribe/check-inbox")
    own = bob.post("/subscribe", data={**bob_tokens, **signup_data("bob@example.com")})
    assert (own.status_code, own.headers["Location"]) == (303, "/subscribe/check-inbox")


def test_one_visitors_entries_and_errors_never_reach_anothers_page(app, db, clock):
    seed_catalogue(db, clock())
    ada, bob = app.test_client(), app.test_client()
    blank = _without_own_values(_page(bob))
    found = form_tokens(ada, headers=ENGLISH)
    clock.advance(seconds=5)
    entries = signup_data(
        "ada-secret@example",  # no dot in the domain: refused, the form comes back filled in
        language="en",
        timezone="Asia/Tokyo",
        scope="selected",
        components=["sms-eu", "voice"],
        channel="webhook",  # issue 12: her target must not reach Bob's page either
        target_url="https://ada-secret.example.net/hook",
    )
    refused = ada.post("/subscribe", data={**found, **entries}, headers=ENGLISH)
    page = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert 'value="ada-secret@example"' in page
    assert '<option value="Asia/Tokyo" selected>' in page
    assert 'value="voice" id="component-voice" checked' in page
    assert 'id="error-summary"' in page
    assert 'value="https://ada-secret.example.net/hook"' in page
    assert 'id="channel-webhook" checked' in page
    # Bob's next page is the blank one again (and so is Ada's own next visit).
    assert _without_own_values(_page(bob)) == blank
    assert _without_own_values(_page(ada)) == blank
    assert "ada-secret" not in blank and "error" not in blank
    assert re.findall(r'<option value="([^"]+)" selected>', blank) == ["UTC"]
    ticked = re.findall(r'id="([^"]+)"[^>]* checked', blank)
    assert ticked == [
        "channel-email",  # issue 12: mail unless the visitor chooses a channel
        "language-en",
        "notify_incidents",
        "notify_maintenance",
        "scope-all",
    ]


def test_each_language_has_its_own_page(client, db, clock):
    seed_catalogue(db, clock())
    german, english = _page(client, headers=GERMAN), _page(client, headers=ENGLISH)
    assert '<html lang="de">' in german and '<html lang="en">' in english
    assert '<option value="Europe/Berlin" selected>' in german
    assert '<option value="UTC" selected>' in english
    assert "Datenschutzhinweis" in german and "privacy notice" in english
    # The switch (a cookie) beats Accept-Language, and the cached page follows it.
    client.get("/language/en?next=/")
    assert _without_own_values(_page(client, headers=GERMAN)) == _without_own_values(english)


def test_the_address_and_query_in_the_language_links_are_this_requests(client, db, clock):
    seed_catalogue(db, clock())
    tagged = _page(client, "/subscribe?utm_source=mail")
    assert 'href="/language/de?next=/subscribe?utm_source%3Dmail"' in tagged
    assert 'href="/language/de?next=/subscribe"' in _page(client, "/subscribe")
    assert 'href="/language/de?next=/"' in _page(client, "/")


def test_a_waiting_message_is_shown_once_on_the_sign_up_page(client, db, clock):
    seed_catalogue(db, clock())
    with client.session_transaction() as session:
        session["_flashes"] = [("message", "A note for this visitor only")]
    assert "<p>A note for this visitor only</p>" in _page(client)
    assert "A note for this visitor only" not in _page(client)
    assert "A note for this visitor only" not in _page(client.application.test_client())


def test_a_catalogue_sync_shows_at_once_in_every_process(app, settings, clock, db):
    """Two apps on one database stand for two gunicorn workers or dynos: each has its own
    cached page, and the sync one of them (or the worker) stores reaches both."""
    feed_id = seed_catalogue(db, clock())
    other = create_app(settings)
    other.extensions["clock"] = clock
    try:
        first, second = app.test_client(), other.test_client()
        before = ["grp-sms", "sms-eu", "sms-us", "voice", "grp-engage", "engage-chat"]
        assert _boxes(_page(first)) == _boxes(_page(second)) == before
        assert _boxes(_page(first, headers=GERMAN)) == before
        clock.advance(minutes=5)
        db.replace_components(
            feed_id,
            [
                {"id": "grp-sms", "name": "SMS", "group": True, "position": 1},
                {"id": "sms-eu", "name": "SMS (EU)", "group_id": "grp-sms", "position": 2},
                {"id": "sms-apac", "name": "SMS (APAC)", "group_id": "grp-sms", "position": 3},
                {"id": "voice", "name": "Voice calls", "position": 4},
            ],
            clock(),
        )
        after = ["grp-sms", "sms-eu", "sms-apac", "voice"]
        for client in (first, second):
            for headers in (ENGLISH, GERMAN):
                page = _page(client, headers=headers)
                assert _boxes(page) == after
                assert "> Voice calls</label>" in page and "SMS (US)" not in page
    finally:
        other.extensions["store"].close()


def test_a_sign_up_on_an_erased_subscribers_id_starts_with_no_old_rows(app, client, db, clock):
    """A new address stores its choices and consent without first clearing any: erasing
    takes them along, also when SQLite hands the erased id out again."""
    seed_catalogue(db, clock())
    signup(client, clock, "old@example.com", scope="selected", components=["grp-sms", "voice"])
    old = db.get_subscriber_by_email("old@example.com")
    subscriptions.erase(db, old["id"])
    signup(client, clock, "new@example.com", scope="selected", components=["sms-eu"])
    new = db.get_subscriber_by_email("new@example.com")
    if db.backend == "sqlite":
        assert new["id"] == old["id"]  # the case this guards: SQLite reused the id
    rows = snapshot(db)
    assert rows["subscribers"] == [new]
    assert rows["subscriber_components"] == [{"subscriber_id": new["id"], "component_id": "sms-eu"}]
    assert [(c["subscriber_id"], c["signup_at"]) for c in rows["consents"]] == [
        (new["id"], clock())
    ]
    assert [s["subscriber_id"] for s in rows["confirmation_sends"]] == [new["id"]]


def test_pages_per_address_prefix_are_capped_and_each_keeps_its_prefix(app, client, db, clock):
    """SCRIPT_NAME (a proxy may pass a client's through) is part of the key: every prefix
    gets its own links, and the number of kept pages stays bounded."""
    seed_catalogue(db, clock())
    for n in range(forms.MAX_RENDERED + 8):
        page = client.get("/", environ_overrides={"SCRIPT_NAME": f"/p{n}"}, headers=ENGLISH)
        assert f'href="/p{n}/privacy"' in page.get_data(as_text=True)
    with app.app_context():
        catalogue = forms.load_catalogue(context.store())
    assert len(catalogue.rendered) == forms.MAX_RENDERED
