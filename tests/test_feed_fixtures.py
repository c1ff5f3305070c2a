"""The CLI contract on real Statuspage captures (../shared/fixtures/statuspage; skipped without it).

Expected values are counted or read from the raw files here, never by calling our parser.
"""

from __future__ import annotations

import html
import json
import re

import pytest

from notifier.feed import parse_feed

from .conftest import SHARED_FIXTURES, shared_fixture

LIVESUP = "githubstatus_history_2022-03-16_livesup-fixture.rss"
ONGOING = "githubstatus_history_2022-07-28_ongoing-incident.atom"
RESOLVED = "githubstatus_history_2022-07-29_same-incident-resolved.atom"
SCHEDULED = "githubstatus_history_2022-09-30_maintenance-scheduled.atom"
COMPLETED = "githubstatus_history_2022-10-05_maintenance-completed.atom"
LATEST = "githubstatus_history_2026-08-22_latest.atom"
GOVUK = "govuk-publishing_history_2024-01-08_alphagov-js-excerpt.rss"
REDIS = "redis_history_2021-12-26_business-news-test-excerpt.atom"
STAFFBASE = "staffbase_history_2021-12-24_kobs-test-excerpt.rss"
FEEDS = (LIVESUP, ONGOING, RESOLVED, SCHEDULED, COMPLETED, LATEST, GOVUK, REDIS, STAFFBASE)
STATUSES = {
    "investigating",
    "identified",
    "monitoring",
    "update",
    "resolved",
    "postmortem",
    "scheduled",
    "in_progress",
    "verifying",
    "completed",
}
# Read off the raw files: entries with a Scheduled/In progress/Completed post or a banner.
# (33gh4sqgw547 also has a plain "Update" post; the redis "Scheduled Maintenance" is an incident.)
MAINTENANCE_KEYS = {
    ONGOING: {"33gh4sqgw547", "rw3k5dz04rqj"},
    RESOLVED: {"33gh4sqgw547", "rw3k5dz04rqj"},
    SCHEDULED: {"6w7lf30qkgqq"},
    COMPLETED: {"6w7lf30qkgqq"},
    GOVUK: {"cnntrg2j816c"},
}
_ENTRY = re.compile(r"<entry>(.*?)</entry>|<item>(.*?)</item>", re.S)
_ENTRY_LINK = re.compile(
    r'<link rel="alternate" type="text/html" href="([^"]+)"/>|<link>([^<]+)</link>'
)
_TITLE = re.compile(r"<title>(.*?)</title>", re.S)
_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:00Z$")


def inspect(runner, path) -> dict:
    result = runner.invoke(args=["feed", "inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def replay(runner, *paths) -> list[dict]:
    result = runner.invoke(args=["feed", "replay", *map(str, paths), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["events"]


def raw_entries(path) -> list[tuple[str, str, str, int]]:
    """(key, link, title, number of <small> stamps) per entry, straight from the raw XML."""
    found = []
    for match in _ENTRY.finditer(path.read_text(encoding="utf-8")):
        chunk = match.group(1) or match.group(2)
        link_match = _ENTRY_LINK.search(chunk)
        link = link_match.group(1) or link_match.group(2)
        title = html.unescape(_TITLE.search(chunk).group(1))
        stamps = html.unescape(chunk).count("<small>")
        found.append((link.rsplit("/incidents/", 1)[1], link, title, stamps))
    return found


def test_the_fixture_list_matches_the_folder():
    folder = shared_fixture("statuspage")
    on_disk = sorted(p.name for p in folder.iterdir() if p.suffix in {".atom", ".rss"})
    assert on_disk == sorted(FEEDS)


@pytest.mark.parametrize("name", FEEDS)
def test_inspect_returns_every_update_paragraph_with_the_contract_shape(runner, name):
    path = shared_fixture("statuspage", name)
    payload = inspect(runner, path)
    assert list(payload) == ["format", "entries"]
    assert payload["format"] == path.suffix.lstrip(".")
    expected = raw_entries(path)
    got = [(e["key"], e["link"], e["title"], len(e["updates"])) for e in payload["entries"]]
    assert got == expected
    assert sum(n for *_, n in expected) == html.unescape(path.read_text()).count("<small>")
    for entry in payload["entries"]:
        assert list(entry) == ["key", "kind", "title", "link", "updates"]
        assert entry["kind"] in {"incident", "maintenance"}
        ats = [u["at"] for u in entry["updates"]]
        assert ats == sorted(ats, reverse=True), f"{entry['key']} updates are not newest first"
        for update in entry["updates"]:
            assert list(update) == ["status", "at", "text"]
            assert update["status"] in STATUSES
            assert _AT.match(update["at"]), update["at"]
            text = update["text"]
            assert text == " ".join(text.split()) and text
            assert not re.search(r"</?(p|small|strong|var|br)\b", text), text


@pytest.mark.parametrize("name", FEEDS)
def test_inspect_tells_maintenance_from_incidents(runner, name):
    payload = inspect(runner, shared_fixture("statuspage", name))
    kinds = {e["key"] for e in payload["entries"] if e["kind"] == "maintenance"}
    assert kinds == MAINTENANCE_KEYS.get(name, set())


def test_staffbase_cet_rss_is_converted_to_utc(runner):
    payload = inspect(runner, shared_fixture("statuspage", STAFFBASE))
    assert payload == {
        "format": "rss",
        "entries": [
            {
                "key": "77004ltfxlkv",
                "kind": "incident",
                "title": "Blank content",
                "link": "https://status.staffbase.com/incidents/77004ltfxlkv",
                "updates": [
                    {
                        "status": "resolved",
                        "at": "2021-12-23T09:30:00Z",  # "Dec 23, 10:30 CET"
                        "text": "The issue is resolved. We apologize for the inconvenience this "
                        "has caused. Please get in touch with us at support@staffbase.com in "
                        "case you still find pages without content. We're happy to help! We "
                        "wish everyone a nice and relaxing Christmas!!",
                    },
                    {
                        "status": "update",
                        "at": "2021-12-22T15:16:00Z",
                        "text": "We are continuing to monitor for any further issues.",
                    },
                    {
                        "status": "monitoring",
                        "at": "2021-12-22T11:58:00Z",
                        "text": "We have just implemented a fix which gradually should recover "
                        "all pages. We will continue to monitor the systems until we are sure "
                        "the issue is fully resolved.",
                    },
                    {
                        "status": "update",
                        "at": "2021-12-22T10:58:00Z",
                        "text": "We have found the cause for the behaviour causing blank pages, "
                        "and are preparing a fix that should be in place soon.",
                    },
                    {
                        "status": "investigating",
                        "at": "2021-12-22T10:12:00Z",
                        "text": "Customers may be experiencing blanked out content pages within "
                        "their applications. This behaviour can affect customers on our German "
                        "as well as international server. Our teams are investigating and will "
                        "work to resolve this as fast as we can. We will share more information "
                        "soon. We apologize for the inconvenience. If you have any questions "
                        "regarding this topic, please reach out to our support at "
                        "support@staffbase.com.",
                    },
                ],
            },
            {
                "key": "p3mdb34gmrx6",
                "kind": "incident",
                "title": "Service disruption with the German media server",
                "link": "https://status.staffbase.com/incidents/p3mdb34gmrx6",
                "updates": [
                    {
                        "status": "resolved",
                        "at": "2021-12-20T08:42:00Z",
                        "text": "This incident has been resolved. We are sorry for the trouble "
                        "this has caused. Please contact us at support@staffbase.com should you "
                        "experience any further issues. We're happy to help!",
                    },
                    {
                        "status": "monitoring",
                        "at": "2021-12-17T16:14:00Z",
                        "text": "We have identified the root cause and the Video Upload should be "
                        "working again. We will continue to monitor the systems during the next "
                        "hours. We apologize for the inconvenience. If you have any questions "
                        "regarding this topic, please reach out to our support at "
                        "support@staffbase.com.",
                    },
                    {
                        "status": "investigating",
                        "at": "2021-12-17T12:38:00Z",
                        "text": "We have received reports that some customers may be experiencing "
                        "long loading times or error while uploading videos. Our teams are "
                        "investigating and will work to resolve this as fast as we can. We will "
                        "share more information soon. We apologize for the inconvenience. If you "
                        "have any questions regarding this topic, please reach out to our "
                        "support at support@staffbase.com.",
                    },
                ],
            },
        ],
    }


def test_redis_scheduled_maintenance_title_is_an_incident(runner):
    payload = inspect(runner, shared_fixture("statuspage", REDIS))
    assert payload == {
        "format": "atom",
        "entries": [
            {
                "key": "q5bb6tbftgrm",
                "kind": "incident",
                "title": "Instance failure",
                "link": "https://status.redis.com/incidents/q5bb6tbftgrm",
                "updates": [
                    {
                        "status": "resolved",
                        "at": "2021-12-26T14:45:00Z",
                        "text": "This incident has been resolved.",
                    },
                    {
                        "status": "investigating",
                        "at": "2021-12-26T14:38:00Z",
                        "text": "We are experiencing instance failure on GCP/us-east1 , this may "
                        "affect resources that have the following pattern in their endpoint: "
                        "c16307.us-east1-mz",
                    },
                ],
            },
            {
                "key": "1t2rmcmnp7wd",
                "kind": "incident",
                "title": "Scheduled Maintenance",
                "link": "https://status.redis.com/incidents/1t2rmcmnp7wd",
                "updates": [
                    {
                        "status": "resolved",
                        "at": "2021-12-21T01:37:00Z",
                        "text": "This incident has been resolved.",
                    },
                    {
                        "status": "monitoring",
                        "at": "2021-12-21T01:01:00Z",
                        "text": "Service maintenance on AWS/us-west-2 applies to all resources "
                        "with the following pattern in their endpoint : c2638.us-west-2-mz",
                    },
                ],
            },
        ],
    }


def test_govuk_upcoming_maintenance_with_end_date(runner):
    path = shared_fixture("statuspage", GOVUK)
    payload = inspect(runner, path)
    text = (
        "Hello, We plan to do some maintenance work on the GOV.UK Publishing applications on "
        "Tue 16 January 2024 between 12:00 and 16:00 GMT. Everything should continue to work "
        "normally throughout. However, if we encounter unforeseen difficulties then there is a "
        "chance that publishing new content or changing URLs of existing content might be "
        "delayed in taking effect until the maintenance is finished. We're letting you know so "
        "that you can plan around these times if you so wish. If you have highly "
        "time-sensitive content to publish at the same time as the maintenance, contact "
        "govuk-platform-engineering@digital.cabinet-office.gov.uk in advance and we can "
        "reschedule. If emergency publishing is needed on the day, we’ll either roll back the "
        "changes or finish them if that will be faster. If you encounter problems during or "
        "after the maintenance, please contact GOV.UK support as normal. You can follow updates "
        "on the GOV.UK Status Page. Best wishes, Chris Banks, on behalf of the GOV.UK Platform "
        "Engineering team Background information for the curious: GOV.UK has a component "
        "called Router, which has a database that keeps track of all the pages on www.gov.uk "
        "and where to fetch them when users browse the website. We need to move this database "
        "to our new Kubernetes infrastructure so that we can finally switch off the old "
        "infrastructure. This reduces our engineering costs and helps us keep GOV.UK secure and "
        "reliable. We've designed and tested this change to be zero-impact to you as the user, "
        "but we still need to let you know about it because with these things there's always a "
        "chance of unforeseen circumstances arising in production that didn't come up during "
        "testing."
    )
    assert payload == {
        "format": "rss",
        "entries": [
            {
                "key": "cnntrg2j816c",
                "kind": "maintenance",
                "title": "[maintenanceFuture] GOV.UK Publishing maintenance Tue 16 Jan "
                "12:00-16:00 GMT (future planned maintenance)",
                "link": "https://status.publishing.service.gov.uk/incidents/cnntrg2j816c",
                "updates": [{"status": "scheduled", "at": "2024-01-08T16:20:00Z", "text": text}],
            }
        ],
    }
    (entry,) = parse_feed(path.read_bytes()).entries
    assert (entry.scheduled_start.isoformat(), entry.scheduled_end.isoformat()) == (
        "2024-01-16T12:00:00+00:00",
        "2024-01-16T16:00:00+00:00",
    )


def updates_of(payload: dict, key: str) -> list[tuple[str, str]]:
    (entry,) = [e for e in payload["entries"] if e["key"] == key]
    return [(u["status"], u["at"]) for u in entry["updates"]]


def test_github_times_across_midnight_and_years(runner):
    ongoing = inspect(runner, shared_fixture("statuspage", ONGOING))
    trail = updates_of(ongoing, "7rghmvv5crq0")
    assert (len(trail), trail[0], trail[-2:]) == (
        12,
        ("update", "2022-07-28T04:21:00Z"),
        [("update", "2022-07-27T22:33:00Z"), ("investigating", "2022-07-27T22:29:00Z")],
    )
    # The RSS capture is from March 2022; its oldest entry ("Nov  4") is from 2021.
    rss = inspect(runner, shared_fixture("statuspage", LIVESUP))
    assert updates_of(rss, "4cnqjxrv0vzg") == [
        ("resolved", "2021-11-04T18:54:00Z"),
        ("investigating", "2021-11-04T18:13:00Z"),
    ]
    # Newer template (`<p> <small>`), two posts in one minute with different statuses.
    latest = inspect(runner, shared_fixture("statuspage", LATEST))
    assert updates_of(latest, "bmpybhnrky3x") == [
        ("resolved", "2026-08-18T11:42:00Z"),
        ("update", "2026-08-18T11:24:00Z"),
        ("update", "2026-08-18T10:41:00Z"),
        ("monitoring", "2026-08-18T07:40:00Z"),
        ("investigating", "2026-08-18T07:40:00Z"),
    ]


def test_upcoming_maintenance_window_and_its_completion(runner):
    scheduled = shared_fixture("statuspage", SCHEDULED)
    (entry,) = [e for e in parse_feed(scheduled.read_bytes()).entries if e.key == "6w7lf30qkgqq"]
    assert (entry.kind, entry.scheduled_start.isoformat(), entry.scheduled_end.isoformat()) == (
        "maintenance",
        "2022-10-05T04:00:00+00:00",
        "2022-10-05T05:00:00+00:00",
    )
    completed = inspect(runner, shared_fixture("statuspage", COMPLETED))
    assert updates_of(completed, "6w7lf30qkgqq") == [
        ("completed", "2022-10-05T05:00:00Z"),
        ("in_progress", "2022-10-05T04:00:00Z"),
        ("scheduled", "2022-09-29T14:04:00Z"),
    ]


def test_replay_of_ongoing_then_resolved_reports_only_the_four_new_updates(runner):
    events = replay(
        runner, shared_fixture("statuspage", ONGOING), shared_fixture("statuspage", RESOLVED)
    )
    # 04:57, 05:32 and 06:08 "Update" and 06:24 "Resolved" were added to 7rghmvv5crq0; the
    # other 24 entries are byte-identical.
    assert events == [
        {
            "snapshot": 1,
            "key": "7rghmvv5crq0",
            "type": "new_update",
            "status": "resolved",
            "at": "2022-07-28T06:24:00Z",
            "count": 4,
        }
    ]


def test_replay_of_scheduled_then_completed_maintenance(runner):
    events = replay(
        runner, shared_fixture("statuspage", SCHEDULED), shared_fixture("statuspage", COMPLETED)
    )
    # In between: the maintenance went in progress and completed; two incidents were opened
    # and resolved (5 and 2 posts); two old entries left the feed (not events).
    assert events == [
        {
            "snapshot": 1,
            "key": "6w7lf30qkgqq",
            "type": "new_update",
            "status": "completed",
            "at": "2022-10-05T05:00:00Z",
            "count": 2,
        },
        {
            "snapshot": 1,
            "key": "pn4l6g1wlg3x",
            "type": "new_incident",
            "status": "resolved",
            "at": "2022-10-04T21:34:00Z",
            "count": 5,
        },
        {
            "snapshot": 1,
            "key": "znnw195p1vf9",
            "type": "new_incident",
            "status": "resolved",
            "at": "2022-10-04T15:54:00Z",
            "count": 2,
        },
    ]


def test_replay_backwards_and_repeated_reports_nothing(runner):
    ongoing, resolved = (shared_fixture("statuspage", n) for n in (ONGOING, RESOLVED))
    assert replay(runner, resolved, ongoing, resolved, resolved) == []


def test_all_real_fixtures_are_well_formed_so_strict_parsing_accepts_them():
    if not SHARED_FIXTURES.exists():
        pytest.skip("../shared/fixtures is absent")
    for name in FEEDS:
        parsed = parse_feed((SHARED_FIXTURES / "statuspage" / name).read_bytes())
        assert parsed.problems == (), name
