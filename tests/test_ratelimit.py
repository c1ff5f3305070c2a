"""Per-IP rate limits counted in the database, shared by every worker and process."""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta

import httpx
import pytest

from app import create_app
from notifier import tokens
from notifier.ratelimit import StoreStorage, client_key, ipv6_site_key, site_limit

from .e2e.server import start_gunicorn
from .test_admin_helpers import ADMIN_HASH, csrf_token
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


def test_ipv6_clients_are_counted_per_64_block_and_per_48_site(app):
    addresses = [
        "2001:db8:1:2::1",
        "2001:db8:1:2:ffff::9",
        "2001:db8:1:3::1",
        "2001:db8:2::1",
        "::ffff:1.2.3.4",
        "1.2.3.4",
    ]
    keys = []
    for address in addresses:
        with app.test_request_context(environ_base={"REMOTE_ADDR": address}):
            keys.append((client_key(), ipv6_site_key()))
    assert keys == [
        ("2001:db8:1:2::/64", "2001:db8:1::/48"),
        ("2001:db8:1:2::/64", "2001:db8:1::/48"),
        ("2001:db8:1:3::/64", "2001:db8:1::/48"),
        ("2001:db8:2::/64", "2001:db8:2::/48"),
        ("1.2.3.4", ""),  # IPv4 (mapped or not) has no /48 budget: one address is one client
        ("1.2.3.4", ""),
    ]


def test_a_48_site_gets_sixteen_times_the_64_budget():
    assert site_limit("10 per 10 minutes") == "160 per 10 minute"
    assert site_limit("5 per minute;20 per hour") == "80 per 1 minute;320 per 1 hour"


def _in_site(n: int) -> str:
    """The n-th /64 of the site 2001:db8:1::/48."""
    return f"2001:db8:1:{n:x}::1"


def _block(address: str, prefix: int) -> str:
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _rate_limit_rows(db) -> dict[str, int]:
    return {row["key"]: row["count"] for row in db._query("SELECT * FROM rate_limits")}


def test_many_64_blocks_of_one_48_share_the_site_sign_up_limit(settings, clock):
    app = create_app(settings.with_overrides(rate_limit_subscribe="2 per 10 minutes"))
    app.extensions["clock"] = clock
    client = app.test_client()
    db = app.extensions["store"]
    # Each /64 stays inside its own budget of 2; the site runs out after 16 x 2.
    statuses = [
        signup(client, clock, f"u{i}@example.com", ip=_in_site(i // 2)).status_code
        for i in range(33)
    ]
    assert statuses == [303] * 32 + [429]
    assert signup(client, clock, "v@example.com", ip="2001:db8:1:ffff::1").status_code == 429
    assert signup(client, clock, "w@example.com", ip="2001:db8:2::1").status_code == 303
    assert signup(client, clock, "x@example.com", ip="198.51.100.7").status_code == 303
    # Every request counts in its /64 (IPv4: address) first, then in its /48 if still let in.
    per_64 = "LIMITER/ip/{}/subscribe/2/10/minute"
    per_48 = "LIMITER/ip/{}/subscribe-ipv6-48/32/10/minute"
    assert _rate_limit_rows(db) == {
        **{per_64.format(_block(_in_site(n), 64)): 2 for n in range(16)},
        per_64.format("2001:db8:1:10::/64"): 1,
        per_64.format("2001:db8:1:ffff::/64"): 1,
        per_48.format("2001:db8:1::/48"): 34,  # 32 let in, 2 refused
        per_64.format("2001:db8:2::/64"): 1,
        per_48.format("2001:db8:2::/48"): 1,
        per_64.format("198.51.100.7"): 1,
    }
    clock.advance(minutes=10)  # the site's window ends with the /64 ones
    assert signup(client, clock, "y@example.com", ip=_in_site(40)).status_code == 303
    db.close()


def test_ipv4_mapped_addresses_share_the_ipv4_budget_with_no_site_limit(settings, clock):
    app = create_app(settings.with_overrides(rate_limit_subscribe="2 per 10 minutes"))
    app.extensions["clock"] = clock
    client = app.test_client()
    db = app.extensions["store"]
    addresses = ["198.51.100.7", "::ffff:198.51.100.7", "198.51.100.7"]
    statuses = [
        signup(client, clock, f"u{i}@example.com", ip=ip).status_code
        for i, ip in enumerate(addresses)
    ]
    assert statuses == [303, 303, 429]
    assert _rate_limit_rows(db) == {  # no per-site row for IPv4
        "LIMITER/ip/198.51.100.7/subscribe/2/10/minute": 3  # the refused one counts too
    }
    db.close()


def test_links_one_click_and_admin_login_have_a_48_site_budget_too(settings, clock):
    app = create_app(
        settings.with_overrides(
            rate_limit_links="1 per 10 minutes",
            rate_limit_one_click="1 per 10 minutes",
            rate_limit_admin_login="1 per 10 minutes",
            admin_password_hash=ADMIN_HASH,
        )
    )
    app.extensions["clock"] = clock
    client = app.test_client()
    db = app.extensions["store"]
    # Confirming takes two link requests: done through a second app with a larger budget.
    links = create_app(settings.with_overrides(rate_limit_links="5 per 10 minutes"))
    links.extensions["clock"] = clock
    row = confirmed_subscriber(links.test_client(), settings, links.extensions["store"], clock)
    links.extensions["store"].close()
    token = tokens.make_token(
        settings.secret_key, tokens.MANAGE, row["id"], row["link_nonce"], now=clock()
    )

    def each_64(request) -> list[int]:
        return [request(_in_site(n)).status_code for n in range(17)]

    assert each_64(
        lambda ip: client.get(f"/preferences/{token}", environ_base={"REMOTE_ADDR": ip})
    ) == [200] * 16 + [429]
    assert each_64(
        lambda ip: client.post(f"/unsubscribe/one-click/{token}", environ_base={"REMOTE_ADDR": ip})
    ) == [200] * 16 + [429]
    csrf = csrf_token(client)
    assert each_64(
        lambda ip: client.post(
            "/admin/login",
            data={"csrf_token": csrf, "username": f"u{ip}", "password": "wrong", "next": ""},
            environ_base={"REMOTE_ADDR": ip},
        )
    ) == [401] * 16 + [429]
    db.close()


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
