"""Generated Statuspage feeds for the kinds of time and title fault of issue 10 (see feedgen.py).

Each case is a page (its IANA zone decides the abbreviation in the stamps and the offset of the
entry dates, as on a real page) with a few incidents whose true times are given in UTC. The tests
in test_feed_zones.py hold the `feed inspect --json` output each must give, written out in full.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .feedgen import Incident, Page, Post, render, utc


@dataclass(frozen=True)
class Case:
    page: Page
    incidents: tuple[Incident, ...]
    updated: datetime | None = None  # the feed's own date; default: its newest entry's

    def body(self, fmt: str, variant: str = "old") -> bytes:
        return render(fmt, self.page, self.incidents, variant=variant, updated=self.updated)


def two_posts(key: str, title: str, resolved: datetime, investigating: datetime) -> Incident:
    """An incident resolved at `resolved`, published then (RSS pubDate = the resolution)."""
    return Incident(
        key=key,
        title=title,
        posts=(
            Post("resolved", resolved, "Delivery is back to normal."),
            Post("investigating", investigating, "We are investigating delays."),
        ),
        published=resolved,
    )


def zone_case(zone: str, key: str, resolved: datetime, investigating: datetime, **page) -> Case:
    return Case(Page(zone=zone, **page), (two_posts(key, "SMS delays", resolved, investigating),))


# Stamps print 10:00 and 09:15 local time (Jan 14 or Jul 14, 2026) in every zone case.
ZONES = {
    # CST: China (+08:00) and US Central (-06:00); the RSS example is the first one.
    "cst-china": zone_case(
        "Asia/Shanghai", "cstchina0001", utc(2026, 7, 14, 2, 0), utc(2026, 7, 14, 1, 15)
    ),
    "cst-us-central": zone_case(
        "America/Chicago", "cstusctr0001", utc(2026, 1, 14, 16, 0), utc(2026, 1, 14, 15, 15)
    ),
    # IST: India (+05:30), Ireland in summer (+01:00), Israel in winter (+02:00).
    "ist-india": zone_case(
        "Asia/Kolkata", "istindia0001", utc(2026, 7, 14, 4, 30), utc(2026, 7, 14, 3, 45)
    ),
    "ist-ireland": zone_case(
        "Europe/Dublin", "istirela0001", utc(2026, 7, 14, 9, 0), utc(2026, 7, 14, 8, 15)
    ),
    "ist-israel": zone_case(
        "Asia/Jerusalem", "istisrae0001", utc(2026, 1, 14, 8, 0), utc(2026, 1, 14, 7, 15)
    ),
    # PST: US Pacific (-08:00) and the Philippines (+08:00).
    "pst-pacific": zone_case(
        "America/Los_Angeles", "pstpacif0001", utc(2026, 1, 14, 18, 0), utc(2026, 1, 14, 17, 15)
    ),
    "pst-philippines": zone_case(
        "Asia/Manila", "pstphili0001", utc(2026, 1, 14, 2, 0), utc(2026, 1, 14, 1, 15)
    ),
    # EAT (East Africa, +03:00) was unknown to the old hand-kept table; the tz database knows it.
    "eat-nairobi": zone_case(
        "Africa/Nairobi", "eatnairo0001", utc(2026, 7, 14, 7, 0), utc(2026, 7, 14, 6, 15)
    ),
    # A name no table knows: Uzbekistan's "UZT", retired by the tz database in 2017 (now "+05").
    "unknown-uzt": zone_case(
        "Asia/Tashkent",
        "uztunkno0001",
        utc(2026, 7, 14, 5, 0),
        utc(2026, 7, 14, 4, 15),
        abbreviation="UZT",
    ),
}

PACIFIC = Page(zone="America/Los_Angeles")


def postmortem_case(key: str, postmortem: datetime) -> Case:
    """Resolved on Dec 24, 2025 11:21 PST (the RSS pubDate); a postmortem posted later."""
    resolved = utc(2025, 12, 24, 19, 21)
    incident = Incident(
        key=key,
        title="Delayed SMS delivery in North America",
        posts=(
            Post("postmortem", postmortem, "Root cause: a certificate expired on one gateway."),
            Post("resolved", resolved, "This incident has been resolved."),
            Post("identified", utc(2025, 12, 24, 18, 5), "A gateway certificate expired."),
            Post("investigating", utc(2025, 12, 24, 17, 40), "We are investigating delays."),
        ),
        published=resolved,
    )
    return Case(PACIFIC, (incident,))


BERLIN = Page(zone="Europe/Berlin")

YEARS = {
    # The example: "Dec 26, 10:22 PST" two days after the item date.
    "postmortem-two-days-later": postmortem_case("latepm000002", utc(2025, 12, 26, 18, 22)),
    "postmortem-three-weeks-later": postmortem_case("latepm000021", utc(2026, 1, 14, 18, 22)),
    # A December incident with its December postmortem, in a feed polled in February.
    "december-postmortem-seen-in-february": Case(
        BERLIN,
        (
            two_posts(
                "february0001",
                "Email delays",
                utc(2026, 2, 10, 9, 30),
                utc(2026, 2, 10, 8, 55),
            ),
            Incident(
                key="decpostm0001",
                title="SMS outage in the EU",
                posts=(
                    Post("postmortem", utc(2025, 12, 30, 13, 0), "Root cause: a full disk."),
                    Post("resolved", utc(2025, 12, 19, 15, 40), "This incident is resolved."),
                    Post("investigating", utc(2025, 12, 19, 14, 2), "SMS are not delivered."),
                ),
                published=utc(2025, 12, 19, 15, 40),
            ),
        ),
    ),
}


def window_case(key: str, scheduled: datetime, window: tuple[datetime, datetime]) -> Case:
    maintenance = Incident(
        key=key,
        title="Database maintenance",
        kind="maintenance",
        posts=(Post("scheduled", scheduled, "We will upgrade the database."),),
        window=window,
        maintenance_end=window[1],
    )
    return Case(BERLIN, (maintenance,))


WINDOWS = {
    # "Mar 28, 01:00 - 04:00 CEST": 01:00 is still CET (+01:00), 04:00 is CEST (+02:00).
    "cet-to-cest": window_case(
        "dstspring001", utc(2027, 3, 20, 9, 0), (utc(2027, 3, 28, 0, 0), utc(2027, 3, 28, 2, 0))
    ),
    # "Oct 31, 01:00 - 04:00 CET": 01:00 is still CEST (+02:00), 04:00 is CET (+01:00).
    "cest-to-cet": window_case(
        "dstautumn001",
        utc(2027, 10, 20, 8, 0),
        (utc(2027, 10, 30, 23, 0), utc(2027, 10, 31, 3, 0)),
    ),
}

TITLES = Case(
    Page(),
    (
        Incident(
            key="titlepost001",
            title="Errors on <POST /xms/v1/batches> in EU",
            posts=(
                Post(
                    "investigating",
                    utc(2026, 11, 3, 9, 2),
                    "Calls to <POST /xms/v1/batches> fail with 500 & are retried.",
                ),
            ),
        ),
        Incident(
            key="titlearrow01",
            title="Sinch <-> Meta: delayed WhatsApp messages",
            posts=(
                # Raw "<->" inside the HTML (browsers show it as text: "<" then "-" is no tag).
                Post("monitoring", utc(2026, 11, 2, 14, 30), "Traffic a <-> b back.", html=True),
            ),
        ),
        Incident(
            key="titleamp0001",
            title="SMS & MMS: delays for AT&T customers",
            posts=(Post("resolved", utc(2026, 11, 1, 8, 0), "Fixed for AT&T & T-Mobile."),),
        ),
    ),
)


# Pages as Statuspage serves them in Atom: entry and feed dates in UTC ("…Z"), which says
# nothing about the page's zone, and stamps in the page's own abbreviation. Several updates per
# incident over hours and days, DST switches, late postmortems. PST is also the Philippines' and
# CST also China's and Cuba's, CDT also Cuba's; EST/EDT are unambiguous (a control).
def incident(key: str, title: str, *posts: tuple[str, datetime, str], **extra) -> Incident:
    """An incident whose item date is its newest update that is not a postmortem."""
    made = tuple(Post(status, at, text) for status, at, text in posts)
    published = next(p.at for p in made if p.status != "postmortem")
    return Incident(key=key, title=title, posts=made, **{"published": published, **extra})


US_ATOM = {
    "pacific": Case(
        Page(zone="America/Los_Angeles", dates="utc"),
        (
            Incident(
                key="pacmaint0001",
                title="Database maintenance",
                kind="maintenance",
                # Jan 20, 09:00 PST; the window Jan 24, 06:00 - 09:00 PST.
                posts=(Post("scheduled", utc(2026, 1, 20, 17, 0), "We will upgrade it."),),
                window=(utc(2026, 1, 24, 14, 0), utc(2026, 1, 24, 17, 0)),
            ),
            incident(
                "pacspring001",
                "Voice outage on the US West Coast",
                ("resolved", utc(2026, 3, 8, 17, 20), "Calls connect again."),  # 10:20 PDT
                ("identified", utc(2026, 3, 8, 9, 50), "A carrier route failed."),  # 01:50 PST
                ("investigating", utc(2026, 3, 7, 22, 15), "Calls fail."),  # Mar 7, 14:15 PST
            ),
            incident(
                "pacwinter001",
                "SMS delays in North America",
                # 16 h after the resolution: read as Manila time it would be the item date.
                ("postmortem", utc(2026, 1, 15, 18, 10), "Root cause: a full queue."),
                ("resolved", utc(2026, 1, 15, 2, 10), "Delivery is back to normal."),
                ("monitoring", utc(2026, 1, 14, 23, 45), "A fix is in place."),
                ("identified", utc(2026, 1, 14, 19, 5), "A queue is full."),
                ("investigating", utc(2026, 1, 14, 9, 40), "SMS are delayed."),  # 01:40 PST
            ),
        ),
    ),
    "central": Case(
        Page(zone="America/Chicago", dates="utc"),
        (
            incident(
                "ctrautumn001",
                "Voice delays",
                ("resolved", utc(2026, 11, 2, 15, 0), "Fixed."),  # Nov 2, 09:00 CST
                ("update", utc(2026, 11, 1, 7, 30), "Still slow."),  # 01:30 CST, the 2nd 01:30
                ("identified", utc(2026, 11, 1, 6, 45), "Found it."),  # 01:45 CDT, the 1st
                ("investigating", utc(2026, 10, 31, 20, 0), "Looking."),  # Oct 31, 15:00 CDT
            ),
            incident(
                "ctrsummer001",
                "SMS delays to Cuba",
                # An hour after the resolution: read as Havana's CDT (-04:00), the item date.
                ("postmortem", utc(2026, 7, 21, 4, 10), "Root cause: a route flap."),
                ("resolved", utc(2026, 7, 21, 3, 10), "Delivery is back to normal."),
                ("monitoring", utc(2026, 7, 20, 23, 55), "A fix is in place."),
                ("investigating", utc(2026, 7, 20, 21, 30), "SMS are delayed."),
            ),
            incident(
                "ctrwinter001",
                "Email delivery delays",
                # 14 h after the resolution: read as China's CST it would be the item date.
                ("postmortem", utc(2026, 1, 15, 12, 30), "Root cause: a slow disk."),
                ("resolved", utc(2026, 1, 14, 22, 30), "Mail flows again."),
                ("update", utc(2026, 1, 14, 20, 5), "Queues are draining."),
                ("identified", utc(2026, 1, 14, 17, 15), "A disk is slow."),
                ("investigating", utc(2026, 1, 14, 15, 40), "Mail is delayed."),
            ),
        ),
    ),
    "eastern": Case(
        Page(zone="America/New_York", dates="utc"),
        (
            incident(
                "eastspring01",
                "API errors",
                ("resolved", utc(2026, 3, 9, 14, 0), "Errors stopped."),  # Mar 9, 10:00 EDT
                ("monitoring", utc(2026, 3, 8, 7, 30), "Errors are rare."),  # 03:30 EDT
                ("investigating", utc(2026, 3, 8, 6, 50), "Errors rise."),  # 01:50 EST
            ),
            incident(
                "eastwinter01",
                "Slow dashboard",
                ("resolved", utc(2026, 1, 14, 21, 0), "Fast again."),
                ("identified", utc(2026, 1, 14, 15, 20), "A cache is cold."),
                ("investigating", utc(2026, 1, 14, 13, 5), "Pages load slowly."),
            ),
        ),
    ),
}

# The other side of each ambiguity in Atom with UTC dates. In each, one older update lies exactly
# the difference of two meanings before the item date, so read in the other meaning it coincides
# with `published`; and the oldest is nearer to the item date in the other meaning.
ASIA_ATOM = {
    "cst-china": Case(
        Page(zone="Asia/Shanghai", dates="utc"),
        (
            incident(
                "cstchinautc1",
                "SMS delays",
                ("resolved", utc(2026, 1, 14, 10, 0), "Delivery is back to normal."),  # 18:00
                ("identified", utc(2026, 1, 13, 20, 0), "A route failed."),  # 04:00 = US 10:00Z
                ("investigating", utc(2026, 1, 13, 14, 0), "We are investigating."),  # 22:00
            ),
        ),
    ),
    "pst-philippines": Case(
        Page(zone="Asia/Manila", dates="utc"),
        (
            incident(
                "pstphilutc01",
                "SMS delays",
                ("resolved", utc(2026, 1, 14, 18, 0), "Delivery is back to normal."),
                ("identified", utc(2026, 1, 14, 2, 0), "A route failed."),  # US: 18:00Z
                ("investigating", utc(2026, 1, 13, 23, 15), "We are investigating."),
            ),
        ),
    ),
    "ist-india": Case(
        Page(zone="Asia/Kolkata", dates="utc"),
        (
            incident(
                "istindiautc1",
                "SMS delays",
                ("resolved", utc(2026, 7, 14, 9, 30), "Delivery is back to normal."),
                ("update", utc(2026, 7, 14, 5, 0), "Still delayed."),  # Dublin: 09:30Z
                ("investigating", utc(2026, 7, 14, 3, 15), "We are investigating."),
            ),
        ),
    ),
    "ist-ireland": Case(
        Page(zone="Europe/Dublin", dates="utc"),
        (
            incident(
                "istirelautc1",
                "SMS delays",
                ("resolved", utc(2026, 7, 14, 20, 0), "Delivery is back to normal."),
                ("investigating", utc(2026, 7, 14, 12, 40), "We are investigating."),
            ),
        ),
    ),
    "ist-israel": Case(
        Page(zone="Asia/Jerusalem", dates="utc"),
        (
            incident(
                "istisrautc01",
                "SMS delays",
                ("resolved", utc(2026, 1, 14, 8, 0), "Delivery is back to normal."),
                ("investigating", utc(2026, 1, 13, 23, 45), "We are investigating."),
            ),
        ),
    ),
}

# Titles that are text although they hold what looks like tags of HTML elements (head, video,
# data, link, search, select): text titles are never stripped (issue 10, "Titles are text").
BRACKET_TITLES = (
    "Errors on <HEAD /xms/v1/batches> in EU",
    "Delays on <Voice> and <Video> APIs",
    "Outage of <Data API>",
    "Issue with <Link Mobility> connector",
    "Errors in <Search> and <Select> endpoints",
)
BRACKETS = Case(
    Page(),
    tuple(
        Incident(
            key=f"bracket{n:05d}",
            title=title,
            posts=(Post("investigating", utc(2026, 11, 3, 9, n), f"Calls to {title} fail."),),
        )
        for n, title in enumerate(BRACKET_TITLES)
    ),
)
# Titles the feed marks as HTML (Atom type="html"; RSS titles feedparser takes for HTML): tags of
# inline formatting elements go, entities are decoded, anything else stays as written.
HTML_TITLES = Case(
    Page(),
    (
        Incident(
            key="htmltitle001",
            title="<b>Delays</b> on &lt;Voice&gt; and <Video> APIs for "
            '<span class="c">AT&amp;T</span>',
            title_type="html",
            posts=(Post("investigating", utc(2026, 11, 3, 9, 0), "Calls fail."),),
        ),
        Incident(
            key="htmltitle002",
            title="Errors on <HEAD /xms/v1/batches> in <em>EU</em> &amp; US<br/>",
            title_type="html",
            posts=(Post("investigating", utc(2026, 11, 3, 8, 0), "Calls fail."),),
        ),
        Incident(
            key="htmltitle003",
            title="<i>Outage</i> of <Data API> &amp; <b =x>the <a href=x>portal</a>",
            title_type="html",
            posts=(Post("investigating", utc(2026, 11, 3, 7, 0), "Calls fail."),),
        ),
    ),
)
