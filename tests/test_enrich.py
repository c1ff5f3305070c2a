"""JSON API enrichment: the component catalogue and per-incident components/impact, served by a
local Statuspage stand-in; a broken API never blocks or fails the poll."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest

from notifier import jobs
from notifier.enrich import parse_components, parse_incident_components

from .conftest import SHARED_FIXTURES
from .feedgen import Incident, Page, Post, render, utc
from .helpers import raw_rows

JSON = {"Content-Type": "application/json; charset=utf-8"}
PAGE = Page()
SMS = Incident(
    key="sms0000000a1",
    title="Delayed SMS delivery (EU)",
    posts=(Post("investigating", utc(2026, 11, 26, 11, 2), "We are investigating delays."),),
)
WINDOW = Incident(
    key="maint000000m",
    title="SMS platform maintenance",
    kind="maintenance",
    posts=(Post("scheduled", utc(2026, 11, 20, 9, 0), "Planned upgrade."),),
    window=(utc(2026, 12, 1, 2, 0), utc(2026, 12, 1, 4, 0)),
)
SMS_RESOLVED = SMS.with_posts(Post("resolved", utc(2026, 11, 26, 12, 1), "Resolved."))


def component(id_, name, position, group_id=None, group=False, status="operational", **more):
    return {
        "id": id_,
        "name": name,
        "status": status,
        "position": position,
        "description": None,
        "showcase": False,
        "group_id": group_id,
        "page_id": "page0sinch01",
        "group": group,
        "only_show_if_degraded": False,
        **more,
    }


CATALOGUE = {
    "page": {"id": "page0sinch01", "name": "Sinch", "time_zone": "Etc/UTC"},
    "components": [
        component("grp0sms00001", "SMS", 1, group=True, components=["cmp0smseu001"]),
        component("cmp0smseu001", "SMS, Europe", 1, "grp0sms00001", status="partial_outage"),
        component("cmp0smsus001", "SMS, North America", 2, "grp0sms00001"),
        component("cmp0voice001", "Voice", 2, description="Calls and SIP trunking"),
    ],
}
INCIDENTS = {
    "page": CATALOGUE["page"],
    "incidents": [
        {
            "id": "sms0000000a1",
            "name": "Delayed SMS delivery (EU)",
            "impact": "major",
            "components": [{"id": "cmp0smseu001", "name": "SMS, Europe"}],
            "incident_updates": [
                {
                    "status": "investigating",
                    "affected_components": [
                        {"code": "cmp0smsus001", "name": "SMS, North America"},
                    ],
                }
            ],
        },
        {"id": "unrelated000", "impact": "minor", "components": []},
    ],
}
MAINTENANCES = {
    "page": CATALOGUE["page"],
    "scheduled_maintenances": [
        {"id": "maint000000m", "impact": "maintenance", "components": [{"id": "cmp0voice001"}]}
    ],
}


def ts(dt) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rows(db, sql: str, *params) -> list[dict]:
    return raw_rows(db, sql, *params)


@pytest.fixture
def page(app, feed_server):
    """A local Statuspage: history.atom plus the JSON API; the app polls it."""
    url = feed_server.set("/history.atom", render("atom", PAGE, [WINDOW, SMS]))
    serve(feed_server, "/api/v2/components.json", CATALOGUE)
    serve(feed_server, "/api/v2/incidents.json", INCIDENTS)
    serve(feed_server, "/api/v2/scheduled-maintenances.json", MAINTENANCES)
    app.extensions["settings"] = app.extensions["settings"].with_overrides(feed_urls=(url,))
    return feed_server


def serve(server, path: str, data, **options) -> None:
    server.set(path, json.dumps(data).encode(), headers=JSON, **options)


def api_requests(server) -> list[str]:
    return [r["path"] for r in server.requests if r["path"].startswith("/api/")]


def test_poll_caches_the_catalogue_with_groups(app, db, page, clock):
    (result,) = jobs.poll(app)
    assert result.outcome == "baseline"
    now = ts(clock())
    assert rows(db, "SELECT * FROM components ORDER BY position, id") == [
        {
            "id": "cmp0smseu001",
            "feed_id": 1,
            "name": "SMS, Europe",
            "description": None,
            "group_id": "grp0sms00001",
            "is_group": 0,
            "position": 1,
            "status": "partial_outage",
            "only_show_if_degraded": 0,
            "showcase": 0,
            "synced_at": now,
        },
        {
            "id": "grp0sms00001",
            "feed_id": 1,
            "name": "SMS",
            "description": None,
            "group_id": None,
            "is_group": 1,
            "position": 1,
            "status": "operational",
            "only_show_if_degraded": 0,
            "showcase": 0,
            "synced_at": now,
        },
        {
            "id": "cmp0smsus001",
            "feed_id": 1,
            "name": "SMS, North America",
            "description": None,
            "group_id": "grp0sms00001",
            "is_group": 0,
            "position": 2,
            "status": "operational",
            "only_show_if_degraded": 0,
            "showcase": 0,
            "synced_at": now,
        },
        {
            "id": "cmp0voice001",
            "feed_id": 1,
            "name": "Voice",
            "description": "Calls and SIP trunking",
            "group_id": None,
            "is_group": 0,
            "position": 2,
            "status": "operational",
            "only_show_if_degraded": 0,
            "showcase": 0,
            "synced_at": now,
        },
    ]
    assert rows(db, "SELECT components_synced_at FROM feeds") == [{"components_synced_at": now}]


def test_incidents_and_maintenance_get_components_and_impact(app, db, page, clock):
    jobs.poll(app)
    now = ts(clock())
    assert rows(db, "SELECT key, components, impact, enriched_at FROM incidents ORDER BY key") == [
        {
            "key": "maint000000m",
            "components": '["cmp0voice001"]',
            "impact": "maintenance",
            "enriched_at": now,
        },
        {
            "key": "sms0000000a1",
            "components": '["cmp0smseu001","cmp0smsus001"]',
            "impact": "major",
            "enriched_at": now,
        },
    ]
    assert api_requests(page) == [
        "/api/v2/components.json",
        "/api/v2/incidents.json",
        "/api/v2/scheduled-maintenances.json",
    ]


def test_the_catalogue_is_refreshed_hourly_and_incidents_only_when_they_change(
    app, db, page, clock
):
    jobs.poll(app)
    page.requests.clear()
    clock.advance(minutes=30)
    jobs.poll(app)
    # Nothing changed, catalogue fresh: the only API traffic is the check of the upcoming
    # maintenance's window (moved or cancelled, issue 11), at most every RETRY_AFTER.
    assert api_requests(page) == ["/api/v2/scheduled-maintenances.json"]
    page.requests.clear()
    clock.advance(minutes=1)
    jobs.poll(app)
    assert api_requests(page) == []

    page.set("/history.atom", render("atom", PAGE, [WINDOW, SMS_RESOLVED]))
    serve(page, "/api/v2/components.json", {**CATALOGUE, "components": CATALOGUE["components"][:1]})
    clock.advance(minutes=30)
    (result,) = jobs.poll(app)
    assert result.outcome == "changes"
    assert api_requests(page) == [
        "/api/v2/components.json",
        "/api/v2/incidents.json",
        "/api/v2/scheduled-maintenances.json",
    ]
    # Components gone from the page are dropped from the cache.
    assert rows(db, "SELECT id FROM components") == [{"id": "grp0sms00001"}]
    assert rows(db, "SELECT enriched_at FROM incidents WHERE key = 'sms0000000a1'") == [
        {"enriched_at": ts(clock())}
    ]


GARBAGE = {
    "http_500": dict(body=b"oops", status=500),
    "not_json": dict(body=b"<html>maintenance</html>", headers=JSON),
    "json_array": dict(body=b"[1, 2, 3]", headers=JSON),
    "wrong_shapes": dict(
        body=json.dumps(
            {
                "components": [
                    "x",
                    {"id": 5},
                    {"name": "no id"},
                    {"id": "c1", "name": "Odd", "position": "first", "group": "yes"},
                ],
                "incidents": {"id": "sms0000000a1"},
                "scheduled_maintenances": [
                    {"id": "maint000000m", "components": "all", "incident_updates": [None, 3]}
                ],
            }
        ).encode(),
        headers=JSON,
    ),
}


@pytest.mark.parametrize("case", list(GARBAGE))
def test_a_broken_json_api_never_fails_the_poll(app, db, page, clock, caplog, case):
    for path in ("components", "incidents", "scheduled-maintenances"):
        page.set(f"/api/v2/{path}.json", **GARBAGE[case])
    with caplog.at_level(logging.INFO, logger="notifier"):
        (result,) = jobs.poll(app)
    assert (result.outcome, result.error) == ("baseline", None)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert rows(db, "SELECT count(*) AS n FROM incidents") == [{"n": 2}]
    if case == "wrong_shapes":  # the usable part of the page is still taken
        assert rows(db, "SELECT id, name, position, is_group FROM components") == [
            {"id": "c1", "name": "Odd", "position": 0, "is_group": 0}
        ]
        assert rows(db, "SELECT key, components, impact FROM incidents ORDER BY key") == [
            {"key": "maint000000m", "components": "[]", "impact": None},
            {"key": "sms0000000a1", "components": None, "impact": None},
        ]
    else:
        assert rows(db, "SELECT * FROM components") == []
        assert any(r.levelno == logging.WARNING for r in caplog.records)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_json_api_keeps_the_cached_catalogue(app, db, page, clock, caplog):
    jobs.poll(app)
    page.set("/history.atom", render("atom", PAGE, [WINDOW, SMS_RESOLVED]))
    # The API answers from a host that refuses connections (as if the API were down).
    nowhere = f"http://127.0.0.1:{closed_port()}"
    for path in ("components", "incidents", "scheduled-maintenances"):
        page.set(f"/api/v2/{path}.json", fault=f"redirect:{nowhere}/api/v2/{path}.json")
    clock.advance(hours=2)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="notifier"):
        (result,) = jobs.poll(app)
    assert result.outcome == "changes"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert [m.split(":")[0] for m in warnings] == [
        "component catalogue not refreshed",
        "incident enrichment skipped",
    ]
    assert rows(db, "SELECT count(*) AS n FROM components") == [{"n": 4}]
    assert rows(db, "SELECT type, status FROM changes") == [
        {"type": "new_update", "status": "resolved"}
    ]


def test_a_slow_json_api_does_not_hold_the_poll(app, db, page, clock, monkeypatch):
    monkeypatch.setattr(jobs, "ENRICH_TIMEOUT_SECONDS", 0.3)
    for path in ("components", "incidents", "scheduled-maintenances"):
        serve(page, f"/api/v2/{path}.json", {}, delay_seconds=10)
    started = time.monotonic()
    (result,) = jobs.poll(app)
    assert result.outcome == "baseline"
    # A poll that waited for any JSON answer took at least 10 s; the 0.3 s timeouts end it in
    # about 1 s, and a loaded machine may stretch that by seconds (the bound was 2.5 s).
    assert time.monotonic() - started < 10
    assert rows(db, "SELECT count(*) AS n FROM incidents WHERE enriched_at IS NULL") == [{"n": 2}]


def test_an_empty_catalogue_does_not_wipe_the_cache(app, db, page, clock, caplog):
    jobs.poll(app)
    serve(page, "/api/v2/components.json", {"components": []})
    clock.advance(hours=2)
    with caplog.at_level(logging.WARNING, logger="notifier"):
        jobs.poll(app)
    assert rows(db, "SELECT count(*) AS n FROM components") == [{"n": 4}]
    assert (
        f"component catalogue at {page.base_url}/api/v2/components.json is empty; kept the "
        "cached one" in caplog.messages
    )


def shared_json(name: str):
    path = SHARED_FIXTURES / "statuspage" / name
    return json.loads(path.read_text()) if path.exists() else None


def test_twilio_catalogue_keeps_every_group_and_member(app, db, page, clock):
    data = shared_json("twilio_api_v2_components_2021.json")
    if data is None:
        pytest.skip("../shared/fixtures/statuspage/twilio_api_v2_components_2021.json is absent")
    serve(page, "/api/v2/components.json", data)
    jobs.poll(app)
    stored = rows(db, "SELECT id, name, group_id, is_group, position, status FROM components")
    assert sorted(stored, key=lambda r: r["id"]) == sorted(
        (
            {
                "id": c["id"],
                "name": c["name"],
                "group_id": c["group_id"],
                "is_group": int(c["group"]),
                "position": c["position"],
                "status": c["status"],
            }
            for c in data["components"]
        ),
        key=lambda r: r["id"],
    )
    groups = {r["id"] for r in stored if r["is_group"]}
    assert len(stored) == 85 and len(groups) == 10
    assert {r["group_id"] for r in stored if r["group_id"]} <= groups
    assert {"id": "7d8w22hqrh6s", "name": "SMS Long Code, North America"} in [
        {"id": r["id"], "name": r["name"]} for r in stored
    ]


def test_real_incident_json_gives_components_and_impact():
    data = shared_json("githubstatus_api_v2_incidents_lc8s9rtyjmgq.json")
    if data is None:
        pytest.skip("../shared/fixtures is absent")
    assert parse_incident_components(data) == {"lc8s9rtyjmgq": (["br0l2tvcx85d"], "major")}
    listing = {"incidents": [data["incident"]]}
    assert parse_incident_components(listing) == {"lc8s9rtyjmgq": (["br0l2tvcx85d"], "major")}


def test_components_parser_skips_unusable_items():
    assert parse_components({"components": "all"}) == []
    assert parse_components({"components": [None, {"id": "a", "name": "A", "group": 1}]}) == [
        {
            "id": "a",
            "name": "A",
            "description": None,
            "group_id": None,
            "group": False,
            "position": 0,
            "status": None,
            "only_show_if_degraded": False,
            "showcase": True,
        }
    ]


def api_maintenance(key: str, status: str, start: str | None, end: str | None) -> dict:
    return {"id": key, "status": status, "impact": "maintenance", "components": [],
            "scheduled_for": start, "scheduled_until": end}  # fmt: skip


def window_changes(db) -> list[dict]:
    return rows(
        db,
        "SELECT c.type, c.status, c.window_start_at, c.window_end_at, c.previous_start_at, "
        "c.previous_end_at, c.window_sequence, n.kind AS notification FROM changes c "
        "LEFT JOIN notifications n ON n.change_id = c.id "
        "WHERE c.type IN ('rescheduled', 'cancelled') ORDER BY c.id",
    )


OLD_DONE = api_maintenance("old0000done1", "completed", "2026-11-01T04:00:00Z", None)


def test_a_window_the_json_api_moves_is_recorded_and_notified_once(app, db, page, clock):
    start, end = "2026-12-01T02:00:00.000Z", "2026-12-01T04:00:00.000Z"
    listing = [api_maintenance("maint000000m", "scheduled", start, end), OLD_DONE]
    serve(page, "/api/v2/scheduled-maintenances.json", {"scheduled_maintenances": listing})
    jobs.poll(app)
    moved = [api_maintenance("maint000000m", "scheduled", start, "2026-12-01T06:30:00Z"), OLD_DONE]
    serve(page, "/api/v2/scheduled-maintenances.json", {"scheduled_maintenances": moved})
    for _ in range(3):  # the move, then two more looks at the same answer
        clock.advance(minutes=6)
        jobs.poll(app)
    assert window_changes(db) == [
        {
            "type": "rescheduled",
            "status": "scheduled",
            "window_start_at": "2026-12-01T02:00:00.000000Z",
            "window_end_at": "2026-12-01T06:30:00.000000Z",
            "previous_start_at": "2026-12-01T02:00:00.000000Z",
            "previous_end_at": "2026-12-01T04:00:00.000000Z",
            "window_sequence": 1,
            "notification": "maintenance",
        }
    ]


def test_a_maintenance_the_api_stops_listing_is_cancelled_once_never_on_a_failed_fetch(
    app, db, page, clock
):
    jobs.poll(app)  # MAINTENANCES lists it
    clock.advance(minutes=6)
    page.set("/api/v2/scheduled-maintenances.json", body=b"oops", status=500)
    jobs.poll(app)
    clock.advance(minutes=6)
    serve(page, "/api/v2/scheduled-maintenances.json", {"scheduled_maintenances": []})
    jobs.poll(app)  # an empty listing is not believed either
    assert window_changes(db) == []

    serve(page, "/api/v2/scheduled-maintenances.json", {"scheduled_maintenances": [OLD_DONE]})
    for _ in range(3):
        clock.advance(minutes=61)  # past any backoff the failure left
        jobs.poll(app)
    assert window_changes(db) == [
        {
            "type": "cancelled",
            "status": "cancelled",
            "window_start_at": None,
            "window_end_at": None,
            "previous_start_at": "2026-12-01T02:00:00.000000Z",
            "previous_end_at": "2026-12-01T04:00:00.000000Z",
            "window_sequence": 1,
            "notification": "maintenance",
        }
    ]
    [incident] = rows(db, "SELECT window_sequence, cancelled_at FROM incidents WHERE key = ?",
                      "maint000000m")  # fmt: skip
    assert incident["window_sequence"] == 1 and incident["cancelled_at"] is not None
