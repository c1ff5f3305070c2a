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
