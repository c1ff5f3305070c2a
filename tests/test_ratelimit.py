"""Per-IP rate limits counted in the database, shared by every worker and process."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest

from app import create_app
from notifier import tokens
from notifier.ratelimit import StoreStorage, client_key

from .e2e.server import start_gunicorn
from .test_subscribe_helpers import (
    confirmed_subscriber,
    form_tokens,
    signup,
    signup_data,
    subscriber,
)


def test_storage_counts_fixed_windows_on_the_injected_clock(db, clock):
    storage = StoreStorage("notifier-store://", store=db, clock=clock)
    assert [storage.incr("k", 60) for _ in range(3)] == [1, 2, 3]
    assert storage.incr("k", 60, amount=2) == 5
    assert (storage.get("k"), storage.get("other")) == (5, 0)
    assert storage.get_expiry("k") == (clock() + timedelta(seconds=60)).timestamp()
    clock.advance(seconds=60)
    assert storage.get("k") == 0  # the window is over
    assert storage.incr("k", 60) == 1  # and a new one starts
    storage.clear("k")
    assert storage.get("k") == 0
    storage.incr("a", 60)
    assert storage.reset() == 1  # only "a": "k" was cleared
    assert storage.check() is True


def test_two_app_instances_on_one_database_share_the_budget(settings, clock):
    # Two gunicorn workers are two app instances with their own Limiter objects.
    workers = [create_app(settings), create_app(settings)]
    for worker in workers:
        worker.extensions["clock"] = clock
    clients = [w.test_client() for w in workers]
    statuses = [signup(clients[i % 2], clock, f"u{i}@example.com").status_code for i in range(12)]
    assert statuses == [303] * 10 + [429] * 2
    for worker in workers:
        worker.extensions["store"].close()


def test_ipv6_clients_are_counted_per_64_block(app):
    keys = []
    for address in ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:3::1", "::ffff:1.2.3.4"):
        with app.test_request_context(environ_base={"REMOTE_ADDR": address}):
            keys.append(client_key())
    assert keys == ["2001:db8:1:2::/64", "2001:db8:1:2::/64", "2001:db8:1:3::/64", "1.2.3.4"]


def test_forwarded_for_is_ignored_without_trusted_proxies(client, clock):
    # A client inventing a new X-Forwarded-For per request must not get a new budget.
    statuses = [
        _signup_forwarded(client, clock, f"u{i}@example.com", f"10.0.0.{i}").status_code
        for i in range(11)
    ]
    assert statuses == [303] * 10 + [429]


def _signup_forwarded(client, clock, email, forwarded_for):
    environ = {"REMOTE_ADDR": "198.51.100.7", "HTTP_X_FORWARDED_FOR": forwarded_for}
    found = form_tokens(client, environ_base=environ)
    clock.advance(seconds=5)
    return client.post("/subscribe", data={**found, **signup_data(email)}, environ_base=environ)


def test_one_trusted_proxy_hop_takes_the_client_from_x_forwarded_for(settings, clock, tmp_path):
    app = create_app(settings.with_overrides(trusted_proxy_hops=1))
    app.extensions["clock"] = clock
    client = app.test_client()
    for i in range(10):
        _signup_forwarded(client, clock, f"a{i}@example.com", "203.0.113.1")
    assert _signup_forwarded(client, clock, "b@example.com", "203.0.113.1").status_code == 429
    assert _signup_forwarded(client, clock, "c@example.com", "203.0.113.2").status_code == 303
    db = app.extensions["store"]
    assert db.list_consents(subscriber(db, "c@example.com")["id"])[0]["signup_ip"] == (
        "203.0.113.2"
    )
    db.close()


def test_signed_link_pages_share_one_budget_and_one_click_has_its_own(settings, clock):
    app = create_app(
        settings.with_overrides(
            rate_limit_links="4 per 10 minutes", rate_limit_one_click="2/minute"
        )
    )
    app.extensions["clock"] = clock
    client = app.test_client()
    db = app.extensions["store"]
    row = confirmed_subscriber(client, settings, db, clock)  # uses 2 link hits (GET + POST)
    token = tokens.make_token(
        settings.secret_key, tokens.MANAGE, row["id"], row["link_nonce"], now=clock()
    )
    assert client.get(f"/preferences/{token}").status_code == 200
    assert client.get(f"/unsubscribe/{token}").status_code == 200
    assert client.get(f"/preferences/{token}/erase").status_code == 429
    assert client.get(f"/confirm/{token}").status_code == 429
    one_click = [client.post(f"/unsubscribe/one-click/{token}").status_code for _ in range(3)]
    assert one_click == [200, 200, 429]
    db.close()


@pytest.mark.slow
def test_gunicorn_workers_share_the_sign_up_limit(tmp_path):
    server = start_gunicorn(tmp_path / "instance", workers=3, FORM_MIN_FILL_SECONDS="0")
    try:
        statuses = []
        for i in range(24):
            # A new connection per sign-up: sync workers take turns accepting them.
            with httpx.Client(base_url=server.base_url) as http:
                html = http.get("/").text
                found = {
                    name: re.search(rf'name="{name}" value="([^"]*)"', html).group(1)
                    for name in ("csrf_token", "started")
                }
                response = http.post("/subscribe", data={**found, **signup_data(f"p{i}@x.org")})
                statuses.append(response.status_code)
    finally:
        server.stop()
    assert statuses == [303] * 10 + [429] * 14


def test_limit_and_proxy_settings_come_from_the_environment():
    from notifier.settings import SettingsError, load_settings

    parsed = load_settings(
        {"RATE_LIMIT_SUBSCRIBE": "5 per hour", "TRUSTED_PROXY_HOPS": "2", "CONSENT_VERSION": "v9"}
    )
    assert (parsed.rate_limit_subscribe, parsed.trusted_proxy_hops, parsed.consent_version) == (
        "5 per hour",
        2,
        "v9",
    )
    # Behind Heroku's router the client is one hop away unless told otherwise.
    assert load_settings({"DYNO": "web.1"}).trusted_proxy_hops == 1
    assert load_settings({}).trusted_proxy_hops == 0
    with pytest.raises(SettingsError, match="RATE_LIMIT_LINKS must be a rate limit"):
        load_settings({"RATE_LIMIT_LINKS": "lots"})
