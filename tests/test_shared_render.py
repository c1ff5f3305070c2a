"""One rendering for readers of every zone (issue 14, item 2): SharedEmail.

The mail a reader gets from the shared rendering, after SendGrid's substitutions (the zone's
and the links'), must be byte-identical to render_email for the reader's zone: every kind, both
languages, both "mailed before" wordings, many zones (half-hour and 45-minute offsets, the date
line, no DST, numeric abbreviations, 12- and 24-hour countries, an alias). Long timelines whose
substitutions would pass SendGrid's 10,000 bytes fall back to classes of zones.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from notifier.delivery.mailer import apply_substitutions
from notifier.emails.message import WORD_JOINER
from notifier.render import (
    HTML_TARGET_BYTES,
    PLACEHOLDERS,
    ZONE_SUBSTITUTIONS_BYTES,
    SharedEmail,
    incident_content,
    render_email,
)

from .test_mail_size import _content as long_incident
from .test_render_golden import CASES, READERS, load_content

GOLDEN_ZONES = sorted({tz for _, tz in READERS})
ZONES = [
    *GOLDEN_ZONES,
    "America/St_Johns",  # -03:30 / -02:30
    "Asia/Kolkata",  # +05:30, en_IN: 12-hour clock
    "Asia/Calcutta",  # an alias of Asia/Kolkata
    "Asia/Kathmandu",  # +05:45
    "Australia/Lord_Howe",  # a half-hour DST shift
    "Pacific/Chatham",  # +12:45 / +13:45
    "Pacific/Kiritimati",  # +14: the other side of the date line
    "Etc/GMT+12",  # -12, no country: 24-hour clock
    "America/Phoenix",  # no DST
    "America/New_York",
    "America/Los_Angeles",
    "Europe/London",
    "Asia/Dubai",  # tz abbreviation "+04": written UTC+4
    "Asia/Tokyo",
    "America/Sao_Paulo",
]
LINKS = {key: f"https://status.example.com/{name}/t0k3n" for name, key in PLACEHOLDERS.items()}


def as_received(shared: SharedEmail, zone: str) -> tuple[str, str, str]:
    """(subject, text, html) as a reader in `zone` gets them: SendGrid's substitutions."""
    mail = shared.for_zone(zone)
    subs = {**LINKS, **mail.substitutions}
    email = mail.email
    return tuple(
        apply_substitutions(part, subs) for part in (email.subject, email.text, email.html)
    )


def direct(content: dict, lang: str, zone: str, mailed_before: bool) -> tuple[str, str, str]:
    email = render_email(content, lang, zone, mailed_before=mailed_before)
    return tuple(apply_substitutions(p, LINKS) for p in (email.subject, email.text, email.html))


def filled_as_received(shared: SharedEmail, zone: str) -> tuple[str, str, str]:
    """(subject, text, html) of `shared.filled(zone)` (a one-zone request: no zone
    substitutions), after SendGrid's link substitutions."""
    email = shared.filled(zone)
    return tuple(apply_substitutions(p, LINKS) for p in (email.subject, email.text, email.html))


def assert_identical(content: dict, lang: str, mailed_before: bool, zones=ZONES) -> SharedEmail:
    shared = SharedEmail(content, lang, mailed_before=mailed_before)
    for zone in zones:
        expected = direct(content, lang, zone, mailed_before)
        assert as_received(shared, zone) == expected, zone
        assert filled_as_received(shared, zone) == expected, zone
        assert shared.filled(zone).attachments == shared.for_zone(zone).email.attachments
    return shared


def _maintenance(title: str, text: str, start: str, end: str, status: str = "scheduled") -> dict:
    return incident_content(
        kind="maintenance",
        page_name="Sinch",
        page_url="https://status.sinch.com",
        key="m41nt",
        title=title,
        link="https://status.sinch.com/incidents/m41nt",
        impact="maintenance",
        components=[{"id": "sms", "name": "SMS & MMS <EU>"}],
        scheduled_start=datetime.fromisoformat(start),
        scheduled_end=datetime.fromisoformat(end),
        status=status,
        change="new_incident",
        new_updates=1,
        updates=[(status, datetime(2026, 3, 27, 22, 5, tzinfo=UTC), text)],
    )


# Windows across midnight and across a DST change (Europe: 29 March 2026, US: 8 March 2026),
# a title with HTML's special characters in the subject, feed text that looks like keys.
ACROSS_MIDNIGHT = _maintenance(
    "Carrier <gateway> swap & \"reroute\" 'now'",
    "Window -zt0- and -zw1- and -zs2- and -preferences_url- are just text.",
    "2026-03-28T23:30:00+00:00",
    "2026-03-29T01:30:00+00:00",
)
EXTRA = {
    "maintenance_across_midnight": ACROSS_MIDNIGHT,
    "maintenance_across_dst_in_progress": _maintenance(
        "DB upgrade",
        "Started.",
        "2026-03-08T06:00:00+00:00",
        "2026-03-08T12:00:00+00:00",
        status="in_progress",
    ),
    # Window changes (issue 11): old and new times, the reminder offset, no posts at all.
    "maintenance_rescheduled_across_dst_in_progress": {
        **_maintenance(
            "DB upgrade",
            "Started. -zt0- -zs1- are text.",
            "2026-03-08T06:00:00+00:00",
            "2026-03-08T14:30:00+00:00",
            status="in_progress",
        ),
        "change": "rescheduled",
        "new_updates": 0,
        "previous_window": {"start": None, "end": "2026-03-08T12:00:00Z"},
    },
    "maintenance_rescheduled_across_midnight": {
        **ACROSS_MIDNIGHT,
        "change": "rescheduled",
        "new_updates": 0,
        "previous_window": {"start": "2026-03-27T23:30:00Z", "end": "2026-03-28T01:30:00Z"},
    },
    "maintenance_reminder_across_midnight": {
        **ACROSS_MIDNIGHT,
        "change": "reminder",
        "new_updates": 0,
        "reminder": {"offset_minutes": 90},
    },
    "maintenance_cancelled_without_posts": {
        **ACROSS_MIDNIGHT,
        "change": "cancelled",
        "status": "cancelled",
        "new_updates": 0,
        "updates": [],
    },
    "announcement_open_window": {
        **load_content("announcement"),
        "window": {"start": "2026-12-31T23:00:00Z"},
    },
}


@pytest.mark.parametrize("mailed_before", [False, True])
@pytest.mark.parametrize("lang", ["de", "en"])
@pytest.mark.parametrize("case", CASES)
def test_every_golden_case_reads_the_same_in_every_zone(case, lang, mailed_before):
    assert_identical(load_content(case), lang, mailed_before)


@pytest.mark.parametrize("mailed_before", [False, True])
@pytest.mark.parametrize("lang", ["de", "en"])
@pytest.mark.parametrize("case", sorted(EXTRA))
def test_windows_across_midnight_and_dst_read_the_same_in_every_zone(case, lang, mailed_before):
    assert_identical(EXTRA[case], lang, mailed_before)


def test_one_rendering_serves_every_zone_with_small_html_safe_substitutions():
    content = load_content("incident_resolved_june")
    shared = SharedEmail(content, "en")
    mails = [shared.for_zone(zone) for zone in ZONES]
    assert {m.group for m in mails} == {("shared", 0)}
    assert len({id(m.email) for m in mails}) == 1
    email = mails[0].email
    # The shared parts carry placeholders only where readers differ: no time, no zone name.
    for zone in ZONES:
        assert zone not in email.text + email.html
    # "All times are shown in the -zt0- time zone.": as is in the HTML part, in the text part
    # inside a wrapped paragraph, which is one placeholder.
    assert "-zt0-" in email.html and "-zt0-" not in email.text and "\n-zw" in email.text
    new_york = shared.for_zone("America/New_York").substitutions
    assert all(len(json.dumps(m.substitutions)) < ZONE_SUBSTITUTIONS_BYTES for m in mails)
    keys = set(new_york)
    assert {k[:3] for k in keys} == {"-zt", "-zw"}
    assert not keys & set(PLACEHOLDERS.values())
    html_keys = {k for k in keys if k in email.html}
    assert html_keys and all(k.startswith("-zt") for k in html_keys)
    assert all("<" not in new_york[k] and "&" not in new_york[k] for k in html_keys)
    assert "June 27, 2023" in " ".join(new_york[k] for k in html_keys)


def test_a_maintenance_subject_is_one_placeholder_with_its_own_html_copy():
    content = EXTRA["maintenance_across_midnight"]
    shared = SharedEmail(content, "en")
    mail = shared.for_zone("America/St_Johns")
    subject_key = mail.email.subject
    html_key = "-zh" + subject_key[3:]
    assert subject_key.startswith("-zs") and f"<title>{html_key}</title>" in mail.email.html
    assert mail.substitutions[subject_key] == (
        "[Scheduled] SMS & MMS: Carrier <gateway> swap & \"reroute\" 'now' "
        "(March 28, 2026, 9:00 PM – 11:00 PM NDT)"
    )
    assert mail.substitutions[html_key] == (
        '[Scheduled] SMS &amp; MMS: Carrier &lt;gateway&gt; swap &amp; "reroute" '
        "'now' (March 28, 2026, 9:00 PM – 11:00 PM NDT)"
    )


def test_feed_text_that_looks_like_a_zone_key_stays_text():
    content = EXTRA["maintenance_across_midnight"]
    shared = SharedEmail(content, "en")
    _, text, html = as_received(shared, "Asia/Kolkata")
    for key in ("-zt0-", "-zw1-", "-zs2-", "-preferences_url-"):
        broken = "-" + WORD_JOINER + key[1:]
        assert broken in text and broken in html and key not in text + html


@pytest.mark.parametrize("lang", ["de", "en"])
def test_long_timelines_fall_back_to_classes_of_zones_that_read_the_same(lang):
    """200 new posts, a time each: the substitutions would pass SendGrid's 10,000 bytes."""
    content = long_incident(200, set(range(200)), change="new_incident")
    few = ["UTC", "Asia/Kolkata", "Asia/Calcutta", "Pacific/Chatham", "America/New_York"]
    shared = assert_identical(content, lang, True, few)
    mails = {zone: shared.for_zone(zone) for zone in ZONES}
    assert all(m.group[0] == "class" for m in mails.values())
    # Zones whose times read the same in this mail share one class: one rendering, one request;
    # the zone's name, the subject and the paragraphs are still substituted per reader.
    kolkata, calcutta = mails["Asia/Kolkata"], mails["Asia/Calcutta"]
    assert kolkata.group == calcutta.group and kolkata.email is calcutta.email
    differ = {k for k, v in kolkata.substitutions.items() if v != calcutta.substitutions[k]}
    assert "-zt0-" in differ and all("Asia/Kolkata" in kolkata.substitutions[k] for k in differ)
    assert all(len(json.dumps(m.substitutions)) < ZONE_SUBSTITUTIONS_BYTES for m in mails.values())
    assert len({m.group for m in mails.values()}) == len(ZONES) - 1
    # A shorter timeline still fits: one shared rendering for every zone.
    shorter = SharedEmail(long_incident(30, {0}), lang)
    assert {shorter.for_zone(zone).group for zone in ZONES} == {("shared", 0)}


def test_the_size_ladder_is_stepped_on_the_substituted_size_and_groups_may_mix():
    """150 new posts: rung 1 for every zone (each zone's HTML size is computed from the
    placeholder counts, without rendering it); zones with short times still fit SendGrid's
    limit and share one request, zones with long ones fall back to their class."""
    content = long_incident(150, set(range(150)), change="new_incident")
    zones = ["UTC", "Asia/Kolkata", "Pacific/Chatham", "America/New_York", "Europe/Berlin"]
    shared = assert_identical(content, "de", False, zones)
    groups = {zone: shared.for_zone(zone).group for zone in zones}
    assert {g[1] for g in groups.values()} == {1}
    assert {g[0] for g in groups.values()} == {"shared", "class"}
    for zone in zones:
        html = as_received(shared, zone)[2].encode("utf-8")
        assert len(html) <= HTML_TARGET_BYTES


def test_an_unknown_zone_or_kind_is_a_value_error():
    shared = SharedEmail(load_content("incident_new_june"), "en")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        shared.for_zone("Mars/Olympus")
    with pytest.raises(ValueError, match="unknown email kind 'poem'"):
        SharedEmail({"kind": "poem"}, "en")
    with pytest.raises(ValueError, match="unsupported language 'fr'"):
        SharedEmail(copy.deepcopy(load_content("receipt")), "fr")
