"""Property: replay reports exactly the updates that became visible between two snapshots.

A small model of a status page evolves between polls: incidents open, posts are added (often
in the same minute, sometimes with the same status), a post is added and deleted again before
anyone polls, texts are edited, titles renamed, entries leave the feed and come back, entries
are reordered and the template flips between its two variants. Every snapshot is rendered with
tests/feedgen.py and the whole sequence replayed through the poller's own ingest path.

The oracle follows update identity in the model: a post is reported once, in the first snapshot
where it is visible; a post that was added and removed between two polls is never reported.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifier.feed import parse_feed
from notifier.poller import replay

from .feedgen import VARIANTS, Incident, Page, Post, render, utc

STATUSES = (
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
)
ZONES = ("UTC", "Europe/Berlin", "America/Los_Angeles")
# Starts from five days before New Year's Eve, so many sequences cross a year boundary.
EPOCH = utc(2026, 12, 27, 0, 0)


@dataclass
class ModelPost:
    uid: int
    status: str
    at: datetime
    text: str


@dataclass
class ModelIncident:
    key: str
    title: str
    posts: list[ModelPost] = field(default_factory=list)  # newest first
    visible: bool = True
    edited_at: datetime | None = None

    def to_incident(self) -> Incident:
        newest = max(p.at for p in self.posts) + timedelta(seconds=30)
        updated = max(newest, self.edited_at) if self.edited_at else newest
        posts = tuple(Post(p.status, p.at, p.text) for p in self.posts)
        return Incident(key=self.key, title=self.title, posts=posts, updated=updated)


class World:
    """The page as its operators see it; `snapshot()` is what a poll would fetch."""

    def __init__(self, start: datetime):
        self.clock = start
        self.incidents: list[ModelIncident] = []
        self.uids = 0

    def _post(self, incident: ModelIncident, status: str, at: datetime, text: str) -> ModelPost:
        self.uids += 1
        post = ModelPost(self.uids, status, at, text)
        incident.posts.insert(0, post)
        return post

    def open(self, status: int, minutes: int, text: str) -> None:
        self.clock += timedelta(minutes=minutes)
        incident = ModelIncident(key=f"k{len(self.incidents):03d}prop", title=f"T{text}")
        self.incidents.append(incident)
        self._post(incident, STATUSES[status], self.clock, text)

    def apply(self, op: tuple) -> list[tuple[ModelIncident, ModelPost]]:
        """Run one operation; returns the posts to delete again before the next poll."""
        kind, *args = op
        if kind == "open":
            self.open(*args)
            return []
        target = self.incidents[args[0] % len(self.incidents)]
        if kind in ("post", "ghost"):
            _, status, minutes, text = args
            self.clock += timedelta(minutes=minutes)
            post = self._post(target, STATUSES[status], self.clock, text)
            return [(target, post)] if kind == "ghost" else []
        if kind == "again":  # same minute and status as the incident's newest post
            top = target.posts[0]
            self._post(target, top.status, top.at, args[1])
        elif kind == "edit":
            target.posts[args[1] % len(target.posts)].text = args[2]
            target.edited_at = self.clock + timedelta(seconds=45)
        elif kind == "rename":
            target.title = f"T{args[1]}"
        elif kind == "hide":
            target.visible = False
        elif kind == "show":
            target.visible = True
        return []

    def snapshot(self, shuffle_seed: int) -> list[ModelIncident]:
        shown = [i for i in self.incidents if i.visible]
        if not shown:  # a real history feed is never empty (the poller refuses empty ones)
            self.incidents[0].visible = True
            shown = [self.incidents[0]]
        ordered = sorted(shown, key=lambda i: i.posts[0].at, reverse=True)
        random.Random(shuffle_seed).shuffle(ordered)
        return ordered


index = st.integers(0, 30)
status = st.integers(0, len(STATUSES) - 1)
minutes = st.sampled_from([0, 0, 1, 7, 45, 180, 600])
text = st.text(alphabet="ab &<>\"'-", min_size=1, max_size=10).filter(lambda t: t.strip())
ops = st.one_of(
    st.tuples(st.just("open"), status, minutes, text),
    st.tuples(st.just("post"), index, status, minutes, text),
    st.tuples(st.just("ghost"), index, status, minutes, text),
    st.tuples(st.just("again"), index, text),
    st.tuples(st.just("edit"), index, index, text),
    st.tuples(st.just("rename"), index, text),
    st.tuples(st.just("hide"), index),
    st.tuples(st.just("show"), index),
)
steps = st.lists(
    st.tuples(st.lists(ops, max_size=6), st.sampled_from(VARIANTS), st.integers(0, 2**16)),
    min_size=2,
    max_size=6,
)


def expected_events(snapshots: list[list[tuple[str, list[ModelPost]]]]) -> list[dict]:
    seen_keys: set[str] = set()
    seen_posts: set[int] = set()
    events = []
    for n, entries in enumerate(snapshots):
        for key, posts in entries:
            new = [p for p in posts if p.uid not in seen_posts]
            if n > 0 and new:
                events.append(
                    {
                        "snapshot": n,
                        "key": key,
                        "type": "new_update" if key in seen_keys else "new_incident",
                        "status": new[0].status,
                        "posted_at": new[0].at,
                        "count": len(new),
                    }
                )
            seen_keys.add(key)
            seen_posts.update(p.uid for p in posts)
    return events


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=steps,
    fmt=st.sampled_from(["atom", "rss"]),
    zone=st.sampled_from(ZONES),
    start_minutes=st.integers(0, 5 * 24 * 60),
)
def test_replay_reports_each_visible_update_exactly_once(steps, fmt, zone, start_minutes):
    world = World(EPOCH + timedelta(minutes=start_minutes))
    world.open(0, 0, "first")
    page = Page(zone=zone)
    bodies, seen_by_model = [], []
    for operations, variant, shuffle_seed in steps:
        ghosts = []
        for op in operations:
            ghosts += world.apply(op)
        for incident, post in ghosts:  # added and deleted again before this poll
            incident.posts.remove(post)
        shown = world.snapshot(shuffle_seed)
        body = render(fmt, page, [i.to_incident() for i in shown], variant=variant)
        # What the parser reads back is exactly the model (times with inferred years).
        assert [
            (e.key, [(u.status, u.at) for u in e.updates]) for e in parse_feed(body).entries
        ] == [(i.key, [(p.status, p.at) for p in i.posts]) for i in shown]
        bodies.append(body)
        seen_by_model.append([(i.key, list(i.posts)) for i in shown])
    got = [
        {k: c[k] for k in ("snapshot", "key", "type", "status", "posted_at", "count")}
        for c in replay(bodies)
    ]
    assert got == expected_events(seen_by_model)
