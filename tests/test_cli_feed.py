"""The `feed inspect` / `feed replay` CLI contract (DESIGN.md) on generated feeds."""

from __future__ import annotations

import json

import pytest

from .feedgen import Incident, Page, Post, render, utc

PAGE = Page(zone="Europe/Berlin")
SMS = Incident(
    key="sms0000000a1",
    title="Delayed SMS delivery (EU)",
    posts=(
        Post("monitoring", utc(2026, 11, 26, 11, 20), "A fix is in place; we are monitoring."),
        Post("investigating", utc(2026, 11, 26, 11, 2), "We are investigating delays."),
    ),
)
MAINTENANCE = Incident(
    key="maint000000m",
    title="SMS platform maintenance",
    kind="maintenance",
    posts=(Post("in_progress", utc(2026, 11, 25, 2, 0), "The maintenance has started."),),
)
RESOLVED = SMS.with_posts(Post("resolved", utc(2026, 11, 26, 12, 1), "This is resolved."))


def write(tmp_path, name: str, body: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(body)
    return str(path)


@pytest.mark.parametrize("fmt", ["atom", "rss"])
def test_inspect_json_prints_exactly_the_contract(runner, tmp_path, fmt):
    path = write(tmp_path, f"feed.{fmt}", render(fmt, PAGE, [SMS, MAINTENANCE]))
    result = runner.invoke(args=["feed", "inspect", path, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "format": fmt,
        "entries": [
            {
                "key": "sms0000000a1",
                "kind": "incident",
                "title": "Delayed SMS delivery (EU)",
                "link": "https://status.sinch.com/incidents/sms0000000a1",
                "updates": [
                    {
                        "status": "monitoring",
                        "at": "2026-11-26T11:20:00Z",
                        "text": "A fix is in place; we are monitoring.",
                    },
                    {
                        "status": "investigating",
                        "at": "2026-11-26T11:02:00Z",
                        "text": "We are investigating delays.",
                    },
                ],
            },
            {
                "key": "maint000000m",
                "kind": "maintenance",
                "title": "SMS platform maintenance",
                "link": "https://status.sinch.com/incidents/maint000000m",
                "updates": [
                    {
                        "status": "in_progress",
                        "at": "2026-11-25T02:00:00Z",
                        "text": "The maintenance has started.",
                    }
                ],
            },
        ],
    }


def test_inspect_reads_a_url(runner, feed_server):
    url = feed_server.set("/history.atom", render("atom", PAGE, [SMS]))
    result = runner.invoke(args=["feed", "inspect", url, "--json"])
    assert result.exit_code == 0, result.output
    assert [e["key"] for e in json.loads(result.stdout)["entries"]] == ["sms0000000a1"]


def test_inspect_text_lists_entries_and_warns_on_stderr(runner, tmp_path):
    odd = SMS.with_posts(Post("Mitigated", utc(2026, 11, 26, 11, 30), "?"))
    path = write(tmp_path, "feed.atom", render("atom", PAGE, [odd]))
    result = runner.invoke(args=["feed", "inspect", path])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "atom feed, 1 entries",
        "",
        "sms0000000a1  incident     Delayed SMS delivery (EU)",
        "  2026-11-26T11:20:00Z  monitoring     A fix is in place; we are monitoring.",
        "  2026-11-26T11:02:00Z  investigating  We are investigating delays.",
    ]
    assert result.stderr.splitlines()[-1] == (
        "warning: entry sms0000000a1: unknown status mitigated; those updates ignored"
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "the body is empty"),
        (b"<html><body>502</body></html>", "not an Atom or RSS feed: the body is an HTML page"),
    ],
)
def test_inspect_refuses_what_is_not_a_feed_with_one_clear_line(runner, tmp_path, body, reason):
    path = write(tmp_path, "bad.atom", body)
    result = runner.invoke(args=["feed", "inspect", path, "--json"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.splitlines()[-1] == f"Error: {path}: {reason}"


def test_inspect_refuses_truncated_xml(runner, tmp_path):
    body = render("rss", PAGE, [SMS])
    path = write(tmp_path, "cut.rss", body[: len(body) // 2])
    result = runner.invoke(args=["feed", "inspect", path, "--json"])
    assert result.exit_code == 1
    assert "not well-formed XML, truncated or corrupt" in result.stderr


def test_replay_json_reports_events_per_snapshot(runner, tmp_path):
    paths = [
        write(tmp_path, "0.atom", render("atom", PAGE, [SMS])),
        write(tmp_path, "1.atom", render("atom", PAGE, [MAINTENANCE, RESOLVED])),
        write(tmp_path, "2.atom", render("atom", PAGE, [MAINTENANCE, RESOLVED], variant="new")),
    ]
    result = runner.invoke(args=["feed", "replay", *paths, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "events": [
            {
                "snapshot": 1,
                "key": "maint000000m",
                "type": "new_incident",
                "status": "in_progress",
                "at": "2026-11-25T02:00:00Z",
                "count": 1,
            },
            {
                "snapshot": 1,
                "key": "sms0000000a1",
                "type": "new_update",
                "status": "resolved",
                "at": "2026-11-26T12:01:00Z",
                "count": 1,
            },
        ]
    }


def test_replay_text_output(runner, tmp_path):
    first = write(tmp_path, "0.rss", render("rss", PAGE, [SMS]))
    second = write(tmp_path, "1.rss", render("rss", PAGE, [RESOLVED]))
    result = runner.invoke(args=["feed", "replay", first, first])
    assert result.stdout == "no events\n"
    result = runner.invoke(args=["feed", "replay", first, second])
    assert result.stdout.split() == (
        ["snapshot", "1", "sms0000000a1", "new_update", "resolved", "2026-11-26T12:01:00Z", "x1"]
    )


def test_replay_refuses_an_emptied_snapshot_like_the_poller(runner, tmp_path):
    # Issue 16: an empty first snapshot is a valid baseline; dropping to none after entries is not.
    paths = [
        write(tmp_path, "0.atom", render("atom", PAGE, [SMS])),
        write(tmp_path, "1.atom", render("atom", PAGE, [])),
        write(tmp_path, "2.atom", render("atom", PAGE, [RESOLVED])),
    ]
    result = runner.invoke(args=["feed", "replay", *paths, "--json"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.splitlines()[-1] == (
        "Error: snapshot 1: the feed lists no entries, but earlier polls stored incidents from "
        "it; kept the previous state"
    )


def test_replay_of_a_missing_file_is_a_clear_error(runner, tmp_path):
    result = runner.invoke(args=["feed", "replay", str(tmp_path / "nope.atom"), "--json"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == f"Error: no such file: {tmp_path / 'nope.atom'}"


def test_replay_reports_window_events_and_reads_json_api_snapshots(runner, tmp_path):
    from .feedgen import maintenance, scheduled_maintenances_json

    window = (utc(2031, 3, 3, 4), utc(2031, 3, 3, 6))
    moved = (utc(2031, 3, 4, 4), utc(2031, 3, 4, 6))
    upgrade = maintenance("voice0000up1", "Voice upgrade", window, utc(2031, 3, 1, 9), "Planned.")
    other = maintenance("db000000up02", "DB upgrade", moved, utc(2031, 3, 1, 9, 5), "Planned.")
    listed = ((upgrade.moved_to(*moved), moved, "scheduled"), (other, moved, "scheduled"))
    paths = [
        write(tmp_path, "0.rss", render("rss", PAGE, [upgrade, other])),
        write(tmp_path, "1.rss", render("rss", PAGE, [upgrade.moved_to(*moved), other])),
        write(tmp_path, "2.json", scheduled_maintenances_json(PAGE, listed)),  # the same move
        write(tmp_path, "3.json", scheduled_maintenances_json(PAGE, listed[1:])),
    ]
    result = runner.invoke(args=["feed", "replay", *paths, "--json"])
    assert result.exit_code == 0, result.output
    old = ["2031-03-03T04:00:00Z", "2031-03-03T06:00:00Z"]
    new = ["2031-03-04T04:00:00Z", "2031-03-04T06:00:00Z"]
    assert json.loads(result.stdout) == {
        "events": [
            {
                "snapshot": 1,
                "key": "voice0000up1",
                "type": "rescheduled",
                "window": new,
                "previous_window": old,
            },
            {
                "snapshot": 3,
                "key": "voice0000up1",
                "type": "cancelled",
                "window": None,
                "previous_window": new,
            },
        ]
    }
    text = runner.invoke(args=["feed", "replay", *paths])
    assert [line.split() for line in text.stdout.splitlines()] == [
        ["snapshot", "1", "voice0000up1", "rescheduled", old[0], "-", old[1], "->", new[0], "-",
         new[1]],
        ["snapshot", "3", "voice0000up1", "cancelled", new[0], "-", new[1], "->", "none"],
    ]  # fmt: skip


def test_replay_refuses_json_that_is_no_statuspage_answer(runner, tmp_path):
    paths = [
        write(tmp_path, "0.atom", render("atom", PAGE, [SMS])),
        write(tmp_path, "1.json", b'{"events": []}'),
    ]
    result = runner.invoke(args=["feed", "replay", *paths, "--json"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.splitlines()[-1] == (
        "Error: snapshot 1: JSON, but not a Statuspage scheduled-maintenances.json or "
        "incidents.json answer"
    )


def test_replay_help_says_json_api_snapshots_are_read(runner):
    result = runner.invoke(args=["feed", "replay", "--help"])
    assert "scheduled-maintenances.json" in result.output
