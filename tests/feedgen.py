"""Statuspage-shaped Atom and RSS feeds built from small values (tests and bench/poll.py).

The markup copies what real pages emit (see ../shared/fixtures/statuspage): one entry per
incident, its updates as `<p><small>Mon <var data-var='date'>D</var>, <var data-var='time'>HH:MM
</var> TZ</small><br><strong>Status</strong> - text</p>`, newest first, times in the page's zone
with its abbreviation and no year. Two template variants exist in the wild: "old" (no spaces,
GitHub 2022) and "new" (`<p> <small>…<br> <strong>` with spaces, GitHub 2026). Upcoming
maintenance carries a "THIS IS A SCHEDULED EVENT" banner, and RSS a <maintenanceEndDate>.

Times in the model are aware datetimes (any zone); the generator prints them in the page's zone,
so a test states the truth in UTC and the parser has to find it again.
"""

from __future__ import annotations

import functools
import html
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from importlib import resources
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

VARIANTS = ("old", "new")
FORMATS = ("atom", "rss")
MAINTENANCE = frozenset({"scheduled", "in_progress", "verifying", "completed"})


@dataclass(frozen=True)
class Post:
    """One update paragraph. `status` is the contract's word ("in_progress") or, when it has
    capitals, printed as given ("Mitigated"); `text` is plain text unless `html` is set."""

    status: str
    at: datetime
    text: str
    html: bool = False
    expect: str | None = None  # the plain text inspect should print, when not `text` itself


@dataclass(frozen=True)
class Incident:
    key: str
    title: str
    posts: tuple[Post, ...]  # newest first, as the page prints them
    kind: str = "incident"  # what inspect should say; the markup does not carry it
    published: datetime | None = None  # default: window start, else newest post + 30 s
    updated: datetime | None = None  # default: newest post + 30 s (later = text edits)
    window: tuple[datetime, datetime] | None = None  # the "THIS IS A SCHEDULED EVENT" banner
    maintenance_end: datetime | None = None  # RSS <maintenanceEndDate>
    link: str | None = None  # default: page url + /incidents/<key>; "" = no link at all
    number: int | None = None  # Atom "Incident/<n>" id; default derived from the key
    # "html": the title is HTML markup (Atom type="html"; RSS has no type, feedparser guesses).
    title_type: str = "text"

    def with_posts(self, *posts: Post, **changes) -> Incident:
        """The same incident with `posts` added on top (newest first)."""
        return replace(self, posts=(*posts, *self.posts), **changes)

    def moved_to(self, start: datetime, end: datetime) -> Incident:
        """The same upcoming maintenance with its window edited and no new post: what a page
        shows after its owner moves the window (banner, RSS <maintenanceEndDate>, and the
        published date Statuspage sets to the start)."""
        return replace(self, window=(start, end), maintenance_end=end, published=None)

    def started(self, *posts: Post, end: datetime | None = None) -> Incident:
        """The maintenance once it started: `posts` on top, the banner gone (Statuspage drops
        it, see ../shared/fixtures/statuspage/*maintenance-completed.atom), published at the
        newest post; RSS keeps <maintenanceEndDate> (`end`, default the window's end)."""
        end = end or self.maintenance_end or (self.window[1] if self.window else None)
        return replace(self.with_posts(*posts), window=None, maintenance_end=end, published=None)


def maintenance(
    key: str, title: str, window: tuple[datetime, datetime], scheduled_at: datetime, text: str
) -> Incident:
    """An upcoming maintenance as Statuspage shows it: the banner, one "Scheduled" post, the
    RSS <maintenanceEndDate>, published at the window's start."""
    return Incident(
        key=key,
        title=title,
        posts=(Post("scheduled", scheduled_at, text),),
        kind="maintenance",
        window=window,
        maintenance_end=window[1],
    )


def _api_time(at: datetime | None) -> str | None:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z") if at else None


def scheduled_maintenances_json(
    page: Page,
    items: tuple[tuple[Incident, tuple[datetime, datetime], str], ...],
    updated: datetime | None = None,
) -> bytes:
    """A /api/v2/scheduled-maintenances.json body: one item per (incident, its window, its
    status), as Statuspage's public API writes them (scheduled_for / scheduled_until);
    `updated` is the page's updated_at (left out when None)."""
    meta = {"id": "page0001", "name": page.name, "url": page.url}
    if updated is not None:
        meta["updated_at"] = _api_time(updated)
    return json.dumps(
        {
            "page": meta,
            "scheduled_maintenances": [
                {
                    "id": incident.key,
                    "name": incident.title,
                    "status": status,
                    "impact": "maintenance",
                    "shortlink": f"{page.url}/incidents/{incident.key}",
                    "scheduled_for": _api_time(window[0]),
                    "scheduled_until": _api_time(window[1]),
                    "incident_updates": [
                        {"status": p.status, "body": p.text, "display_at": _api_time(p.at)}
                        for p in incident.posts
                    ],
                    "components": [],
                }
                for incident, window, status in items
            ],
        },
        indent=1,
    ).encode()


@dataclass(frozen=True)
class Page:
    name: str = "Sinch"
    url: str = "https://status.sinch.com"
    zone: str = "UTC"
    # Printed instead of the zone's own abbreviation: a page on an older tz database prints
    # names the database has since retired ("UZT" for Asia/Tashkent, now "+05").
    abbreviation: str | None = None
    # How the feed writes its dates: "local" in the page's own offset (Statuspage's RSS, e.g.
    # staffbase's "+0100"), "utc" in UTC (Statuspage's Atom writes "…Z" whatever the page's zone,
    # see ../shared/fixtures/statuspage/*.atom; RSS then says "+0000").
    dates: str = "local"

    @property
    def title(self) -> str:
        return f"{self.name} Status - Incident History"

    def link_for(self, incident: Incident) -> str:
        if incident.link is not None:
            return incident.link
        return f"{self.url}/incidents/{incident.key}"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def display_status(status: str) -> str:
    if status != status.lower():
        return status
    return status.replace("_", " ").capitalize()


@functools.cache
def zone_of(name: str) -> ZoneInfo:
    """The zone from the pinned tzdata package (requirements.txt), as the parser reads it, so a
    generated page and the parser never disagree because the system's tz database is older."""
    path = resources.files("tzdata").joinpath("zoneinfo", *name.split("/"))
    with path.open("rb") as f:
        return ZoneInfo.from_file(f, key=name)


def _abbr(local: datetime, page: Page) -> str:
    return page.abbreviation or local.tzname()


def _stamp(at: datetime, page: Page) -> str:
    local = at.astimezone(zone_of(page.zone))
    # Rails' %e: the day is space-padded (`> 8<`), as in the real stamps.
    return (
        f"{local:%b} <var data-var='date'>{local.day:>2}</var>, "
        f"<var data-var='time'>{local:%H:%M}</var> {_abbr(local, page)}"
    )


def _date_zone(page: Page):
    return UTC if page.dates == "utc" else zone_of(page.zone)


def _iso(at: datetime, page: Page) -> str:
    if page.dates == "utc":
        return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return at.astimezone(zone_of(page.zone)).isoformat()


def _banner(window: tuple[datetime, datetime], page: Page) -> str:
    start, end = (t.astimezone(zone_of(page.zone)) for t in window)
    first = f"{start:%b} <var data-var='date'>{start.day}</var>, "
    first += f"<var data-var='time'>{start:%H:%M}</var>"
    if start.date() == end.date():
        rest = f" - <var data-var='time'>{end:%H:%M}</var> {_abbr(end, page)}"
    else:
        rest = (
            f" {_abbr(start, page)} - {end:%b} <var data-var='date'>{end.day}</var>, "
            f"<var data-var='time'>{end:%H:%M}</var> {_abbr(end, page)}"
        )
    return f"<strong>THIS IS A SCHEDULED EVENT {first}{rest}</strong>"


def content_html(page: Page, incident: Incident, variant: str = "old") -> str:
    """The entry's HTML (before XML escaping)."""
    paragraphs = []
    if incident.window:
        paragraphs.append(_banner(incident.window, page))
    for post in incident.posts:
        text = post.text if post.html else html.escape(post.text)
        status = display_status(post.status)
        if variant == "new":
            paragraphs.append(
                f" <small>{_stamp(post.at, page)}</small><br> <strong>{status}</strong> - {text} "
            )
        else:
            paragraphs.append(
                f"<small>{_stamp(post.at, page)}</small><br><strong>{status}</strong> - {text}"
            )
    joiner = " " if variant == "new" else ""
    return joiner.join(f"<p>{p}</p>" for p in paragraphs)


def _newest(incident: Incident) -> datetime:
    return max(p.at for p in incident.posts) + timedelta(seconds=30)


def published_of(incident: Incident) -> datetime:
    if incident.published:
        return incident.published
    return incident.window[0] if incident.window else _newest(incident)


def updated_of(incident: Incident) -> datetime:
    return incident.updated or _newest(incident)


def _feed_updated(incidents, updated: datetime | None) -> datetime:
    if updated:
        return updated
    return max((updated_of(i) for i in incidents), default=utc(2026, 1, 1))


def _number(incident: Incident) -> int:
    if incident.number is not None:
        return incident.number
    return 10_000_000 + int.from_bytes(incident.key.encode()[:6].ljust(6, b"0"), "big") % 9_000_000


def atom(page: Page, incidents, *, variant: str = "old", updated: datetime | None = None) -> bytes:
    """A /history.atom body."""
    host = page.url.split("://", 1)[-1]
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<feed xml:lang="en-US" xmlns="http://www.w3.org/2005/Atom">\n'
        f"  <id>tag:{host},2005:/history</id>\n"
        f'  <link rel="alternate" type="text/html" href="{escape(page.url)}"/>\n'
        f'  <link rel="self" type="application/atom+xml" href="{escape(page.url)}/history.atom"/>\n'
        f"  <title>{escape(page.title)}</title>\n"
        f"  <updated>{_iso(_feed_updated(incidents, updated), page)}</updated>\n"
        f"  <author>\n    <name>{escape(page.name)}</name>\n  </author>\n"
    ]
    for incident in incidents:
        link = page.link_for(incident)
        link_line = (
            f'    <link rel="alternate" type="text/html" href="{escape(link)}"/>\n' if link else ""
        )
        parts.append(
            "  <entry>\n"
            f"    <id>tag:{host},2005:Incident/{_number(incident)}</id>\n"
            f"    <published>{_iso(published_of(incident), page)}</published>\n"
            f"    <updated>{_iso(updated_of(incident), page)}</updated>\n"
            f"{link_line}"
            f"    <title{_title_type(incident)}>{escape(incident.title)}</title>\n"
            f'    <content type="html">{escape(content_html(page, incident, variant))}</content>\n'
            "  </entry>\n"
        )
    parts.append("</feed>\n")
    return "".join(parts).encode()


def _title_type(incident: Incident) -> str:
    return ' type="html"' if incident.title_type == "html" else ""


def _rfc822(at: datetime, zone: ZoneInfo) -> str:
    return format_datetime(at.astimezone(zone).replace(microsecond=0))


def rss(page: Page, incidents, *, variant: str = "old", updated: datetime | None = None) -> bytes:
    """A /history.rss body."""
    zone = _date_zone(page)
    entities = {"'": "&apos;"}
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
        "  <channel>\n"
        f"    <title>{escape(page.title)}</title>\n"
        f"    <link>{escape(page.url)}</link>\n"
        "    <description>Statuspage</description>\n"
        f"    <pubDate>{_rfc822(_feed_updated(incidents, updated), zone)}</pubDate>\n"
    ]
    for incident in incidents:
        link = page.link_for(incident)
        body = escape(content_html(page, incident, variant), entities)
        end = (
            f"      <maintenanceEndDate>{_rfc822(incident.maintenance_end, zone)}"
            "</maintenanceEndDate>\n"
            if incident.maintenance_end
            else ""
        )
        links = (
            f"      <link>{escape(link)}</link>\n      <guid>{escape(link)}</guid>\n"
            if link
            else ""
        )
        parts.append(
            "    <item>\n"
            f"      <title>{escape(incident.title)}</title>\n"
            f"      <description>\n{body}      </description>\n"
            f"      <pubDate>{_rfc822(published_of(incident), zone)}</pubDate>\n"
            f"{end}{links}"
            "    </item>\n"
        )
    parts.append("  </channel>\n</rss>\n")
    return "".join(parts).encode()


def render(fmt: str, page: Page, incidents, *, variant: str = "old", **options) -> bytes:
    """atom() or rss() by name."""
    return {"atom": atom, "rss": rss}[fmt](page, incidents, variant=variant, **options)


def iso_minute(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:00Z")


def _plain(post: Post) -> str:
    return post.expect if post.expect is not None else " ".join(post.text.split())


def expected_inspect(fmt: str, page: Page, incidents) -> dict:
    """The `feed inspect --json` payload the model stands for (the contract in DESIGN.md)."""
    return {
        "format": fmt,
        "entries": [
            {
                "key": i.key,
                "kind": i.kind,
                "title": " ".join(i.title.split()),
                "link": page.link_for(i),
                "updates": [
                    {"status": p.status, "at": iso_minute(p.at), "text": _plain(p)} for p in i.posts
                ],
            }
            for i in incidents
        ],
    }


@dataclass
class Timeline:
    """Successive feed bodies of one page, for `feed replay` and polling tests."""

    page: Page = field(default_factory=Page)
    fmt: str = "atom"
    snapshots: list[bytes] = field(default_factory=list)

    def add(self, *incidents: Incident, variant: str = "old", **options) -> bytes:
        body = render(self.fmt, self.page, incidents, variant=variant, **options)
        self.snapshots.append(body)
        return body


def big_feed(entries: int = 25, posts_per_entry: int = 7, zone: str = "UTC") -> tuple:
    """A realistic-size feed model (≈ 100 KB as Atom, like githubstatus' history.atom)."""
    start = utc(2026, 8, 21, 0, 37)
    statuses = ("resolved", "update", "update", "monitoring", "update", "identified")
    words = (
        "We are continuing to observe gradual recovery for message delivery in the EU region, "
        "with some requests delayed by approximately one hour while remediation continues."
    )
    incidents = []
    for n in range(entries):
        newest = start - timedelta(days=n, minutes=7 * n)
        posts = [
            Post(statuses[k % len(statuses)], newest - timedelta(minutes=37 * k), f"{words} ({k})")
            for k in range(posts_per_entry - 1)
        ]
        posts.append(Post("investigating", newest - timedelta(minutes=37 * posts_per_entry), words))
        incidents.append(
            Incident(
                key=f"gen{n:04d}bench", title=f"Delays for SMS in region {n}", posts=tuple(posts)
            )
        )
    return Page(zone=zone), tuple(incidents)
