"""Group subscriptions follow the group (issue 16 item 7).

Choosing a Statuspage component group stores the group; its members are resolved when a
notification fans out, from every membership the catalogue syncs have recorded. So a component
added to the group later is covered, a component moved to another group stays covered for the
old group's subscribers, and a group gone from the page keeps its last known members.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

from notifier import jobs, subscriptions, tokens

from .feedgen import Incident, Page, Post, render, utc
from .helpers import add_subscriber, raw_rows
from .test_subscribe_helpers import confirm, form_tokens, link, signup, subscriber

JSON = {"Content-Type": "application/json; charset=utf-8"}
PAGE = Page()


def component(id_, name, position, group_id=None, group=False, **more):
    return {
        "id": id_,
        "name": name,
        "status": "operational",
        "position": position,
        "description": None,
        "showcase": True,
        "group_id": group_id,
        "page_id": "page0sinch01",
        "group": group,
        "only_show_if_degraded": False,
        **more,
    }


MESSAGING = component("grp-msg", "Messaging", 1, group=True, components=["sms", "rcs"])
SMS = component("sms", "SMS", 1, "grp-msg")
RCS = component("rcs", "RCS", 2, "grp-msg")
WHATSAPP = component("whatsapp", "WhatsApp", 3, "grp-msg")
VOICE = component("voice", "Voice", 2)
NUMBERS = component("grp-num", "Numbers", 3, group=True, components=["porting"])
PORTING = component("porting", "Number porting", 1, "grp-num")
CATALOGUE = [MESSAGING, SMS, RCS, VOICE, NUMBERS, PORTING]
OLD = Incident(
    key="old000000001",
    title="Slow number porting",
    posts=(Post("resolved", utc(2026, 11, 20, 9, 0), "Resolved."),),
)


def serve(server, path: str, data) -> None:
    server.set(path, json.dumps(data).encode(), headers=JSON)


def serve_catalogue(server, components) -> None:
    serve(
        server,
        "/api/v2/components.json",
        {"page": {"id": "page0sinch01"}, "components": components},
    )


def feed_ids(db) -> list[int]:
    return [f["id"] for f in db.list_feeds()]


def incident_deliveries(db) -> list[dict]:
    return raw_rows(
        db,
        "SELECT d.email, d.language, d.timezone, d.state, n.kind, n.audience FROM deliveries d "
        "JOIN notifications n ON n.id = d.notification_id WHERE n.kind = 'incident' "
        "ORDER BY d.email",
    )


def chosen(db, email: str) -> list[str]:
    return db.subscriber_component_ids(subscriber(db, email)["id"])


def join(client, settings, db, clock, email: str, components: list[str], ip: str) -> None:
    """Sign up through the form with these boxes ticked, and confirm."""
    response = signup(client, clock, email, ip=ip, scope="selected", components=components)
    assert response.status_code == 303
    assert confirm(client, settings, db, clock, email).status_code == 303


# --- the whole path ----------------------------------------------------------------------
def test_a_component_added_to_a_subscribed_group_after_sign_up_is_covered(
    app, client, settings, db, feed_server, clock
):
    url = feed_server.set("/history.atom", render("atom", PAGE, [OLD]))
    serve_catalogue(feed_server, CATALOGUE)
    serve(feed_server, "/api/v2/incidents.json", {"incidents": []})
    serve(feed_server, "/api/v2/scheduled-maintenances.json", {"scheduled_maintenances": []})
    app.extensions["settings"] = app.extensions["settings"].with_overrides(feed_urls=(url,))
    jobs.poll(app)  # baseline, catalogue cached
    # The group box ticked (the page's script ticks its members with it), and the same members
    # ticked one by one without the group box: a choice of components, not of the group.
    join(
        client, settings, db, clock, "group@example.com", ["grp-msg", "sms", "rcs"], "198.51.100.1"
    )
    join(client, settings, db, clock, "picked@example.com", ["sms", "rcs"], "198.51.100.2")
    assert chosen(db, "group@example.com") == ["grp-msg"]
    assert chosen(db, "picked@example.com") == ["rcs", "sms"]

    # The page adds WhatsApp to Messaging; an hour later the catalogue sync picks it up, and the
    # first incident on WhatsApp arrives in the same poll.
    clock.advance(hours=2)
    serve_catalogue(feed_server, [*CATALOGUE, WHATSAPP])
    new = Incident(
        key="wa0000000001",
        title="WhatsApp messages delayed",
        posts=(Post("investigating", clock() - timedelta(minutes=2), "We are investigating."),),
    )
    feed_server.set("/history.atom", render("atom", PAGE, [new, OLD]))
    serve(
        feed_server,
        "/api/v2/incidents.json",
        {"incidents": [{"id": new.key, "impact": "minor", "components": [{"id": "whatsapp"}]}]},
    )
    jobs.poll(app)

    assert incident_deliveries(db) == [
        {
            "email": "group@example.com",
            "language": "de",
            "timezone": "Europe/Berlin",
            "state": "pending",
            "kind": "incident",
            "audience": f'{{"components":["whatsapp"],"feed_id":{feed_ids(db)[0]}}}',
        }
    ]


# --- the forms -----------------------------------------------------------------------------
def test_the_form_stores_a_group_as_the_group_and_lone_components_as_components(
    client, settings, db, clock
):
    seed(db, clock)
    join(
        client, settings, db, clock, "ada@example.com", ["grp-msg", "sms", "voice"], "198.51.100.3"
    )
    assert chosen(db, "ada@example.com") == ["grp-msg", "voice"]


def test_the_group_box_alone_chooses_the_group(client, settings, db, clock):
    """Without the page's script, ticking the group box sends only the group."""
    seed(db, clock)
    join(client, settings, db, clock, "ada@example.com", ["grp-msg"], "198.51.100.4")
    assert chosen(db, "ada@example.com") == ["grp-msg"]


def test_preferences_show_the_group_choice_as_the_group(client, settings, db, clock):
    seed(db, clock)
    join(client, settings, db, clock, "ada@example.com", ["grp-msg", "voice"], "198.51.100.5")
    clock.advance(hours=2)
    db.replace_components(feed_ids(db)[0], [*CATALOGUE, WHATSAPP], clock())
    path = link(settings, tokens.MANAGE, subscriber(db, "ada@example.com"), clock())
    html = client.get(path).get_data(as_text=True)
    boxes = re.findall(r'name="components" value="([^"]+)"[^>]*checked', html)
    # The member added since sign-up is ticked too: the group covers it.
    assert boxes == ["grp-msg", "sms", "rcs", "whatsapp", "voice"]
    assert (
        '<input type="checkbox" name="components" value="grp-msg" id="component-grp-msg" '
        'data-group="grp-msg" checked> <span>Messaging <span class="group-scope">'
        "(alle Komponenten, auch später hinzugefügte)</span></span></label>"
    ) in html
    # The sign-up form says the same in English.
    english = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert (
        'data-group="grp-msg"> <span>Messaging <span class="group-scope">'
        "(all components, including ones added later)</span></span></label>"
    ) in english


def test_members_chosen_one_by_one_show_as_members_not_as_the_group(client, settings, db, clock):
    seed(db, clock)
    join(client, settings, db, clock, "ada@example.com", ["sms", "rcs"], "198.51.100.6")
    path = link(settings, tokens.MANAGE, subscriber(db, "ada@example.com"), clock())
    html = client.get(path).get_data(as_text=True)
    assert re.findall(r'name="components" value="([^"]+)"[^>]*checked', html) == ["sms", "rcs"]


def test_saving_preferences_unchanged_keeps_the_group(client, settings, db, clock):
    seed(db, clock)
    join(client, settings, db, clock, "ada@example.com", ["grp-msg"], "198.51.100.7")
    path = link(settings, tokens.MANAGE, subscriber(db, "ada@example.com"), clock())
    html = client.get(path).get_data(as_text=True)
    ticked = re.findall(r'name="components" value="([^"]+)"[^>]*checked', html)
    found = form_tokens(client, path)
    response = client.post(
        path,
        data={**found, "language": "de", "timezone": "Europe/Berlin", "scope": "selected",
              "components": ticked, "notify_incidents": "y", "notify_maintenance": "y"},
    )  # fmt: skip
    assert response.status_code == 303
    assert chosen(db, "ada@example.com") == ["grp-msg"]


# --- fan-out -------------------------------------------------------------------------------
def seed(db, clock, components=CATALOGUE) -> int:
    feed = db.ensure_feed("https://status.sinch.com/history.atom", clock())
    db.record_poll_success(feed["id"], clock(), title="Sinch Status - Incident History")
    db.replace_components(feed["id"], components, clock())
    return feed["id"]


def fan_out(db, clock, feed_id: int, components: list[str]) -> list[str]:
    """Fan out an incident on `components`; the addresses that got a delivery."""
    nid = db.create_notification(
        "incident",
        {},
        clock(),
        clock() + timedelta(hours=24),
        feed_id=feed_id,
        audience={"components": components, "feed_id": feed_id},
    )
    db.fan_out(nid, clock())
    rows = db._query("SELECT email FROM deliveries WHERE notification_id = ? ORDER BY email", [nid])
    return [r["email"] for r in rows]


def test_an_individual_component_choice_is_not_widened(db, clock):
    feed_id = seed(db, clock)
    add_subscriber(db, "picked@example.com", now=clock(), components=["sms", "rcs"])
    add_subscriber(db, "group@example.com", now=clock(), components=["grp-msg"])
    clock.advance(hours=1)
    seed(db, clock, [*CATALOGUE, WHATSAPP])
    assert fan_out(db, clock, feed_id, ["whatsapp"]) == ["group@example.com"]
    assert fan_out(db, clock, feed_id, ["sms"]) == ["group@example.com", "picked@example.com"]
    assert fan_out(db, clock, feed_id, ["voice", "porting"]) == []


def test_a_component_moved_to_another_group_stays_covered_for_both_groups(db, clock):
    """The rule: subscribers never silently lose a component. WhatsApp moved from Messaging to
    Numbers reaches the subscribers of both; Messaging's subscribers can narrow it down."""
    feed_id = seed(db, clock, [*CATALOGUE, WHATSAPP])
    add_subscriber(db, "messaging@example.com", now=clock(), components=["grp-msg"])
    add_subscriber(db, "numbers@example.com", now=clock(), components=["grp-num"])
    clock.advance(hours=1)
    seed(db, clock, [*CATALOGUE, {**WHATSAPP, "group_id": "grp-num"}])
    assert fan_out(db, clock, feed_id, ["whatsapp"]) == [
        "messaging@example.com",
        "numbers@example.com",
    ]
    assert fan_out(db, clock, feed_id, ["sms"]) == ["messaging@example.com"]


def test_a_group_gone_from_the_page_keeps_its_last_known_members(client, settings, db, clock):
    feed_id = seed(db, clock)
    sid = add_subscriber(db, "ada@example.com", now=clock(), language="de", components=["grp-msg"])
    db.update_subscriber(sid, all_components=False)
    clock.advance(hours=1)
    # Messaging is dissolved: SMS stays on the page without a group, RCS is gone.
    seed(db, clock, [{**SMS, "group_id": None}, VOICE, NUMBERS, PORTING])
    assert fan_out(db, clock, feed_id, ["sms"]) == ["ada@example.com"]
    assert fan_out(db, clock, feed_id, ["rcs"]) == ["ada@example.com"]
    # The data export names it, too.
    assert subscriptions.export_data(db, sid, clock())["components"] == [
        {"id": "grp-msg", "name": "Messaging"}
    ]
    # The subscriber still sees the group and what it covers, and can untick it.
    path = link(settings, tokens.MANAGE, subscriber(db, "ada@example.com"), clock())
    html = client.get(path).get_data(as_text=True)
    assert re.findall(r'name="components" value="([^"]+)"[^>]*checked', html) == ["grp-msg"]
    assert "Messaging (nicht mehr auf der Statusseite; umfasst zuletzt: RCS, SMS)" in html
    found = form_tokens(client, path)
    form = {**found, "language": "de", "timezone": "Europe/Berlin", "scope": "selected",
            "notify_incidents": "y", "notify_maintenance": "y"}  # fmt: skip
    assert client.post(path, data={**form, "components": ["grp-msg"]}).status_code == 303
    assert chosen(db, "ada@example.com") == ["grp-msg"]
    assert client.post(path, data={**form, "components": ["voice"]}).status_code == 303
    assert chosen(db, "ada@example.com") == ["voice"]


def test_an_incident_without_known_components_reaches_group_subscribers_of_that_page(db, clock):
    feed_id = seed(db, clock)
    add_subscriber(db, "group@example.com", now=clock(), components=["grp-msg"])
    clock.advance(hours=1)
    seed(db, clock, [VOICE])  # the group itself is gone: still a subscriber of this page
    assert fan_out(db, clock, feed_id, []) == ["group@example.com"]


# --- the migration -------------------------------------------------------------------------
MIGRATION = "0010_group_subscriptions"


def test_the_migration_turns_a_whole_group_into_the_group_and_leaves_the_rest(db, clock):
    """Old rows hold members. A set holding every member of a group of two or more is what the
    old preferences page showed as that group ticked: it becomes the group. Anything else (part
    of a group, a group of one) stays a choice of components."""
    seed(db, clock)
    ids = {
        email: add_subscriber(db, email, now=clock(), components=components)
        for email, components in {
            "whole@example.com": ["sms", "rcs", "voice"],
            "part@example.com": ["sms", "voice"],
            "single@example.com": ["porting"],
            "both@example.com": ["sms", "rcs", "porting"],
            "all@example.com": None,
        }.items()
    }
    subscribers = db._query("SELECT * FROM subscribers ORDER BY id")
    # Back to the schema before the migration: the table gone and the step not recorded.
    db._execute("DROP TABLE group_memberships")
    applied = "schema_migrations" if type(db).__name__ == "PostgresStore" else "_sqlite_migrations"
    db._execute(f"DELETE FROM {applied} WHERE name = ?", [MIGRATION])

    assert db.upgrade() == [MIGRATION]
    assert db._query(
        "SELECT * FROM subscriber_components ORDER BY subscriber_id, component_id"
    ) == [
        {"subscriber_id": ids["whole@example.com"], "component_id": "grp-msg"},
        {"subscriber_id": ids["whole@example.com"], "component_id": "voice"},
        {"subscriber_id": ids["part@example.com"], "component_id": "sms"},
        {"subscriber_id": ids["part@example.com"], "component_id": "voice"},
        {"subscriber_id": ids["single@example.com"], "component_id": "porting"},
        {"subscriber_id": ids["both@example.com"], "component_id": "grp-msg"},
        {"subscriber_id": ids["both@example.com"], "component_id": "porting"},
    ]
    assert db._query("SELECT * FROM subscribers ORDER BY id") == subscribers
    # The memberships the catalogue holds now are the groups' first known members.
    synced = raw_rows(db, "SELECT synced_at FROM components WHERE id = 'sms'")[0]["synced_at"]
    assert raw_rows(
        db,
        "SELECT group_id, component_id, feed_id, group_name, component_name, first_seen_at, "
        "last_seen_at FROM group_memberships ORDER BY group_id, component_id",
    ) == [
        {"group_id": group, "component_id": member, "feed_id": feed_ids(db)[0],
         "group_name": group_name, "component_name": name, "first_seen_at": synced,
         "last_seen_at": synced}
        for group, member, group_name, name in [
            ("grp-msg", "rcs", "Messaging", "RCS"),
            ("grp-msg", "sms", "Messaging", "SMS"),
            ("grp-num", "porting", "Numbers", "Number porting"),
        ]
    ]  # fmt: skip
    # And the converted subscriber now hears about a member added later.
    clock.advance(hours=1)
    feed_id = seed(db, clock, [*CATALOGUE, WHATSAPP])
    assert fan_out(db, clock, feed_id, ["whatsapp"]) == ["all@example.com", "both@example.com",
                                                          "whole@example.com"]  # fmt: skip


def test_the_dashboard_counts_a_group_subscriber_for_every_member(db, clock):
    seed(db, clock)
    add_subscriber(db, "group@example.com", now=clock(), components=["grp-msg"])
    add_subscriber(db, "sms@example.com", now=clock(), components=["sms", "grp-msg"])
    add_subscriber(db, "voice@example.com", now=clock(), components=["voice"])
    clock.advance(hours=1)
    seed(db, clock, [*CATALOGUE, WHATSAPP])
    assert db.subscriber_counts()["by_component"] == [
        {"id": "porting", "name": "Number porting", "n": 0},
        {"id": "sms", "name": "SMS", "n": 2},
        {"id": "rcs", "name": "RCS", "n": 2},
        {"id": "voice", "name": "Voice", "n": 1},
        {"id": "whatsapp", "name": "WhatsApp", "n": 2},
    ]
