"""Hypothesis fuzz of every form field: any input gives a clear 4xx or success, never a 500.

Rate limits are raised and the minimum fill-in time is zero through settings, so thousands
of posts reach the validation code; the app itself is not changed for the fuzz.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from app import create_app
from notifier import tokens
from notifier.forms import zone_names

from .test_subscribe_helpers import form_tokens, seed_catalogue, signup_data

# Examples per test on SQLite. The property (any field value gives a clear 4xx or a success,
# never a 500) is decided by the form code, which is the same on every backend: it gets the
# full count on SQLite. PostgreSQL adds only where an accepted value is stored, so it gets
# SERVER_EXAMPLES plus the values a server is known to treat differently (SERVER_HAZARDS),
# which every backend tries on every run.
EXAMPLES = 500
SERVER_EXAMPLES = 100
VALID = {
    "email": ["ada@example.com", "Grace.Hopper+status@Example.org"],
    "language": ["de", "en"],
    "timezone": ["Europe/Berlin", "UTC", "America/Argentina/Buenos_Aires"],
    "scope": ["all", "selected"],
    "components": ["sms-eu", "grp-sms", "voice"],
    "notify_incidents": ["y", ""],
    "notify_maintenance": ["y", ""],
    "website": [""],
    "started": [""],
    "csrf_token": [""],
}
CONTROL = st.characters(categories=["Cc", "Cf", "Zl", "Zp"])

text_value = st.one_of(
    st.text(max_size=300),  # any unicode (hypothesis leaves out lone surrogates)
    st.text(CONTROL, min_size=1, max_size=5),
    st.sampled_from(sorted({v for vs in VALID.values() for v in vs})),
    st.tuples(
        st.sampled_from(sorted({v for vs in VALID.values() for v in vs})), st.text(CONTROL)
    ).map("".join),
    # Huge values: past the 254/64 caps, and past MAX_CONTENT_LENGTH (256 KiB) for a 413.
    # ASCII, because percent-encoding 300 000 "é" per example would dominate the run time.
    st.sampled_from([255, 4096, 70_000, 300_000]).map(lambda n: "x" * n),
    st.just("é" * 255),
)
field_value = st.one_of(
    st.none(),  # the field is missing
    text_value,
    st.lists(text_value, min_size=2, max_size=4),  # sent more than once
)
FUZZ = hsettings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
# Values PostgreSQL treats unlike SQLite: NUL (text columns refuse it: "invalid byte sequence
# for encoding UTF8: 0x00"), characters outside the BMP (4-byte UTF-8), a length right at the
# 254-character address cap in multi-byte characters, and the same around a valid value.
SERVER_HAZARDS = (
    "\x00",
    "ada\x00@example.com",
    "Europe/Berlin\x00",
    "de\x00",
    "sms-eu\x00",
    "\U0001f600@example.com",
    "ada@example.com\U0001f600",
    "\U0001f600" * 60,
    "é" * 242 + "@example.com",
    ["ada@example.com", "\x00"],
)


def fuzz(database_url: str):
    """FUZZ with the example count for this backend, and SERVER_HAZARDS tried first."""

    def decorate(test):
        for value in SERVER_HAZARDS:
            test = example(value=value)(test)
        examples = EXAMPLES if database_url.startswith("sqlite") else SERVER_EXAMPLES
        return hsettings(FUZZ, max_examples=examples)(test)

    return decorate


@pytest.fixture
def fuzz_app(settings, clock):
    app = create_app(
        settings.with_overrides(
            rate_limit_subscribe="1000000 per minute",
            rate_limit_links="1000000 per minute",
            form_min_fill_seconds=0,
        )
    )
    app.extensions["clock"] = clock
    seed_catalogue(app.extensions["store"], clock())
    yield app
    app.extensions["store"].close()


def clean(value) -> bool:
    return not any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value)


def assert_stored_rows_are_sane(db) -> None:
    for row in db._query("SELECT email, language, timezone FROM subscribers"):
        assert clean(row["email"]) and len(row["email"]) <= 254, row
        assert row["language"] in ("de", "en"), row
        assert row["timezone"] in zone_names(), row


def post(client, path, base: dict, field: str, value):
    data = dict(base)
    if value is None:
        data.pop(field, None)
    else:
        data[field] = value
    return client.post(path, data=data)


@pytest.mark.parametrize("field", sorted(VALID))
def test_sign_up_form_field_never_causes_a_server_error(fuzz_app, settings, field):
    client = fuzz_app.test_client()
    db = fuzz_app.extensions["store"]
    base = {**form_tokens(client), **signup_data(scope="selected", components="sms-eu")}

    @fuzz(settings.database_url)
    @given(value=field_value)
    def check(value):
        response = post(client, "/subscribe", base, field, value)
        assert response.status_code in (303, 400, 413), response.status_code
        if response.status_code == 303:
            assert response.headers["Location"] == "/subscribe/check-inbox"
        response.close()

    check()
    assert_stored_rows_are_sane(db)


@pytest.mark.parametrize("field", sorted(set(VALID) - {"email", "website", "started"}))
def test_preferences_form_field_never_causes_a_server_error(fuzz_app, settings, clock, field):
    client = fuzz_app.test_client()
    db = fuzz_app.extensions["store"]
    sid = db.insert_subscriber(
        "ada@example.com",
        {
            "language": "de",
            "timezone": "UTC",
            "state": "confirmed",
            "token_nonce": None,
            "link_nonce": "nonce",
        },
        clock(),
    )
    token = tokens.make_token(settings.secret_key, tokens.MANAGE, sid, "nonce", now=clock())
    path = f"/preferences/{token}"
    base = {**form_tokens(client, path), **signup_data(scope="selected", components="voice")}
    del base["email"], base["website"]

    @fuzz(settings.database_url)
    @given(value=field_value)
    def check(value):
        response = post(client, path, base, field, value)
        assert response.status_code in (303, 400, 413), response.status_code
        response.close()

    check()
    assert_stored_rows_are_sane(db)


def test_raw_request_bodies_never_cause_a_server_error(fuzz_app, settings):
    examples = EXAMPLES if settings.database_url.startswith("sqlite") else SERVER_EXAMPLES

    @hsettings(FUZZ, max_examples=examples)
    @given(body=st.binary(max_size=2000), multipart=st.booleans())
    def check(body, multipart):
        client = fuzz_app.test_client()
        content_type = (
            "multipart/form-data; boundary=xyz"
            if multipart
            else "application/x-www-form-urlencoded"
        )
        response = client.post("/subscribe", data=body, content_type=content_type)
        assert 400 <= response.status_code < 500
        response.close()

    check()
