"""Slack, Teams and webhook messages of every notification kind, in German and English (issue 12).

Inputs are the mail golden tests' content snapshots (tests/golden/content/); outputs are
tests/golden/channels/<channel>/<lang>/<case>.json, the whole payload as sent. German readers
are in Europe/Berlin, English ones in America/New_York (a 12-hour clock, EST/EDT). Any
difference fails; after an intended change regenerate with
`UPDATE_GOLDEN=1 pytest tests/test_channel_payloads.py` and read the diff: it is what a team's
channel will show. Every webhook payload is validated against docs/webhooks/event.v1.schema.json.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from notifier.delivery import payloads
from notifier.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "channels"
CONTENT = ROOT / "tests" / "golden" / "content"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

# case -> the mail golden content it reuses (None: the channel's test message)
CASES = {
    "incident_new": "incident_new_june",
    "incident_updated": "incident_updated_june",
    "incident_resolved": "incident_resolved_january",
    "maintenance_scheduled": "maintenance_scheduled",
    "maintenance_in_progress": "maintenance_in_progress",
    "maintenance_completed": "maintenance_completed",
    "maintenance_rescheduled": "maintenance_rescheduled_june",
    "maintenance_cancelled": "maintenance_cancelled_january",
    "maintenance_reminder": "maintenance_reminder_january",
    "announcement": "announcement",
    "verification": None,
}
CHANNELS = ("slack", "teams", "webhook")
READERS = {"de": "Europe/Berlin", "en": "America/New_York"}
SETTINGS = load_settings({})


def content_of(case: str) -> dict:
    source = CASES[case]
    if source is None:
        return {"kind": "channel_verification"}
    return json.loads((CONTENT / f"{source}.json").read_text(encoding="utf-8"))


def notification(content: dict, **extra) -> dict:
    """A notifications row as the store returns it (content as stored: JSON text)."""
    row = {
        "id": 4711,
        "kind": content["kind"],
        "content": json.dumps(content),
        "created_at": "2026-03-01T08:15:30.123456Z",
        "expires_at": "2026-03-02T08:15:30.123456Z",
        "resend_of": None,
        "incident_id": 3,
    }
    return {**row, **extra}


def build(channel: str, content: dict, lang: str, tz: str | None = None, **extra) -> dict:
    row = notification(content, **extra)
    tz = tz or READERS[lang]
    return payloads.build(channel, row, lang, tz, settings=SETTINGS)


def dump(payload: dict) -> str:
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


# --- golden files -------------------------------------------------------------------------
RENDERS = [(ch, lang, case) for ch in CHANNELS for lang in READERS for case in CASES]


@pytest.mark.parametrize(("channel", "lang", "case"), RENDERS, ids=lambda v: str(v))
def test_payload_matches_golden(channel, lang, case):
    actual = dump(build(channel, content_of(case), lang))
    path = GOLDEN / channel / lang / f"{case}.json"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing; run with UPDATE_GOLDEN=1 and review it"
    assert actual == path.read_text(encoding="utf-8"), f"{path} differs; UPDATE_GOLDEN=1"


def test_no_stale_channel_golden_files():
    expected = {GOLDEN / ch / lang / f"{case}.json" for ch, lang, case in RENDERS}
    present = set(GOLDEN.rglob("*.json"))
    if UPDATE:
        for path in present - expected:
            path.unlink()
        return
    assert present == expected


def test_content_as_dict_builds_the_same_payload():
    content = content_of("incident_updated")
    for channel in CHANNELS:
        row = {**notification(content), "content": content}
        as_dict = payloads.build(channel, row, "de", "Europe/Berlin", settings=SETTINGS)
        assert as_dict == build(channel, content, "de")


# --- event types and the schema -----------------------------------------------------------
def test_event_type_of_every_case():
    types = {case: payloads.event_type(notification(content_of(case))) for case in CASES}
    assert types == {
        "incident_new": "incident.created",
        "incident_updated": "incident.updated",
        "incident_resolved": "incident.resolved",
        "maintenance_scheduled": "maintenance.scheduled",
        "maintenance_in_progress": "maintenance.started",
        "maintenance_completed": "maintenance.completed",
        "maintenance_rescheduled": "maintenance.rescheduled",
        "maintenance_cancelled": "maintenance.cancelled",
        "maintenance_reminder": "maintenance.reminder",
        "announcement": "announcement.published",
        "verification": "ping",
    }


def test_event_type_postmortem_is_an_update_and_other_kinds_are_refused():
    content = {**content_of("incident_resolved"), "status": "postmortem"}
    assert payloads.event_type(notification(content)) == "incident.updated"
    with pytest.raises(ValueError, match="confirmation"):
        payloads.event_type({"kind": "confirmation", "content": "{}"})


def format_checker() -> FormatChecker:
    """date-time (RFC 3339) and uri checked here: jsonschema only checks them with optional
    packages (rfc3339-validator, rfc3987) that the project does not install."""
    checker = FormatChecker(formats=())
    rfc3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

    @checker.checks("date-time", raises=ValueError)
    def is_date_time(value) -> bool:
        if not isinstance(value, str):
            return True
        if not rfc3339.match(value):
            raise ValueError(f"not RFC 3339: {value!r}")
        return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None

    @checker.checks("uri")
    def is_uri(value) -> bool:
        if not isinstance(value, str):
            return True
        parts = urlsplit(value)
        return bool(parts.scheme and parts.netloc) and " " not in value

    return checker


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads((ROOT / payloads.WEBHOOK_SCHEMA).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=format_checker())


def errors(validator, payload) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(payload)]


@pytest.mark.parametrize("lang", READERS)
@pytest.mark.parametrize("case", CASES)
def test_every_webhook_payload_validates_against_the_schema(validator, case, lang):
    assert errors(validator, build("webhook", content_of(case), lang)) == []


def test_schema_refuses_missing_keys_bad_times_and_wrong_shapes(validator):
    good = build("webhook", content_of("maintenance_rescheduled"), "en")
    assert errors(validator, good) == []
    missing = json.loads(json.dumps(good))
    del missing["data"]["update"]
    local_utc = json.loads(json.dumps(good))
    local_utc["data"]["maintenance"]["starts_at_utc"] = "2026-06-12T04:00:00+02:00"
    not_a_date = json.loads(json.dumps(good))
    not_a_date["data"]["maintenance"]["ends_at_local"] = "2026-13-40T25:00:00+02:00"
    no_incident = json.loads(json.dumps(good))
    no_incident["data"]["incident"] = None
    unknown = {**good, "type": "incident.exploded"}
    extra = {**good, "surprise": 1}
    for bad in (missing, local_utc, not_a_date, no_incident, unknown, extra):
        assert errors(validator, bad) != [], bad


def test_webhook_ids_and_times_are_stable_for_retries_and_resends():
    content = content_of("incident_new")
    first = build("webhook", content, "de")
    again = build("webhook", content, "de")
    resent = build("webhook", content, "de", id=4800, resend_of=4711)
    assert first == again
    assert (first["id"], first["timestamp"], first["resend_of"]) == (
        "evt_4711",
        "2026-03-01T08:15:30Z",
        None,
    )
    assert (resent["id"], resent["resend_of"]) == ("evt_4800", "evt_4711")


# --- Slack limits -------------------------------------------------------------------------
def walk(value):
    """Every dict inside a payload, depth first."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def long_incident() -> dict:
    content = content_of("incident_resolved")
    long_title = "Elevated & <delayed> API error rates " * 40  # ~1500 characters
    content["incident"]["title"] = long_title
    content["incident"]["components"] = [
        {"id": f"c{i}", "name": f"Component & <{i}> " * 30} for i in range(40)
    ]
    body = "\n".join(f"Line {i}: errors & <timeouts> & retries & more." for i in range(900))
    content["updates"][0]["text"] = body
    content["overrides"] = {"de": {"title": long_title, "text": body}, "en": {"text": body}}
    content["text_format"] = "plain"  # the parser's plain text: '<' is the text's own
    return content


@pytest.mark.parametrize("lang", READERS)
def test_slack_limits_hold_for_a_very_long_title_and_body(lang):
    payload = build("slack", long_incident(), lang)
    blocks = payload["blocks"]
    assert len(blocks) <= 50
    assert len(payload["text"]) <= 3000
    header = blocks[0]
    assert header["type"] == "header"
    assert len(header["text"]["text"]) <= 150
    assert header["text"]["text"].endswith("…")
    for block in blocks:
        if block["type"] == "section":
            if "text" in block:
                assert 1 <= len(block["text"]["text"]) <= 3000
            fields = block.get("fields", [])
            assert len(fields) <= 10
            assert all(1 <= len(f["text"]) <= 2000 for f in fields)
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
            assert all(len(e["text"]) <= 3000 for e in block["elements"])
    shortened = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    latest = next(t for t in shortened if "Line 0:" in t)
    assert latest.rstrip().endswith("…")
    assert "&amp; &lt;timeouts&gt;" in latest  # escaped after shortening, never cut mid-entity
    assert not re.search(r"&(?!amp;|lt;|gt;)", latest)


# --- Teams: the Adaptive Card 1.4 structure -----------------------------------------------
ELEMENTS = {"TextBlock", "FactSet", "ActionSet"}
TEXT_PROPS = {"type", "text", "wrap", "size", "weight", "isSubtle", "spacing", "color"}


def check_adaptive_card(message: dict) -> None:
    """A minimal structural check of what Teams Workflows take: the `message` envelope with
    one Adaptive Card 1.4 attachment whose body uses only elements of the 1.4 schema with
    their required properties (adaptivecards.io/explorer: TextBlock.text, FactSet.facts of
    title/value, ActionSet.actions of Action.OpenUrl with title and an absolute url)."""
    assert set(message) == {"type", "attachments"}
    assert message["type"] == "message"
    (attachment,) = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert isinstance(card["body"], list) and card["body"]
    for element in card["body"]:
        kind = element["type"]
        assert kind in ELEMENTS, kind
        if kind == "TextBlock":
            assert set(element) <= TEXT_PROPS, element
            assert isinstance(element["text"], str) and element["text"]
            assert element.get("size", "Default") in {"Small", "Default", "Medium", "Large"}
            assert element.get("weight", "Default") in {"Default", "Lighter", "Bolder"}
            assert element.get("spacing", "Default") in {"None", "Small", "Default", "Medium"}
        elif kind == "FactSet":
            assert set(element) == {"type", "facts"}
            assert element["facts"]
            for fact in element["facts"]:
                assert set(fact) == {"title", "value"}
                assert all(isinstance(v, str) and v for v in fact.values())
        else:
            assert set(element) == {"type", "actions"}
            for action in element["actions"]:
                assert set(action) == {"type", "title", "url"}
                assert action["type"] == "Action.OpenUrl"
                assert action["title"]
                assert urlsplit(action["url"]).scheme in ("https", "http")


@pytest.mark.parametrize("lang", READERS)
@pytest.mark.parametrize("case", CASES)
def test_teams_card_is_a_valid_adaptive_card_1_4(case, lang):
    check_adaptive_card(build("teams", content_of(case), lang))


def test_teams_card_with_a_very_long_body_stays_a_valid_card():
    card = build("teams", long_incident(), "en")
    check_adaptive_card(card)
    assert len(json.dumps(card).encode()) < 28_000  # Teams webhooks take about 28 KB


def test_structural_check_refuses_what_teams_would_not_render():
    good = build("teams", content_of("incident_new"), "en")
    old = json.loads(json.dumps(good))
    old["attachments"][0]["content"]["version"] = "1.6"
    unknown = json.loads(json.dumps(good))
    unknown["attachments"][0]["content"]["body"].append({"type": "Table", "rows": []})
    submit = json.loads(json.dumps(good))
    body = submit["attachments"][0]["content"]["body"]
    next(e for e in body if e["type"] == "ActionSet")["actions"][0]["type"] = "Action.Submit"
    for bad in (old, unknown, submit):
        with pytest.raises(AssertionError):
            check_adaptive_card(bad)


# --- hostile feed text --------------------------------------------------------------------
HOSTILE = (
    "Heads up <!channel> & <!here>: see <https://evil.example|click> or "
    "[click](https://evil.example) *now* `code` {{DATE(2017-02-14T06:00:00Z, SHORT)}}"
)


def hostile_incident() -> dict:
    """Feed text as the parser leaves it: plain text that may hold '<' (text_format plain)."""
    content = content_of("incident_new")
    content["incident"]["title"] = "Outage <!channel> & [more](https://evil.example)"
    content["incident"]["components"] = [{"id": "sms-eu", "name": "SMS <@U123> & co"}]
    content["updates"][0]["text"] = HOSTILE
    content["text_format"] = "plain"
    return content


OUR_LINK = re.compile(r"<https://(?:status\.sinch\.com|notify\.example\.com)/[^<>|]*\|[^<>]*>")


def test_slack_neutralizes_mentions_and_links_in_feed_text():
    payload = build("slack", hostile_incident(), "en")
    blocks = payload["blocks"]
    assert payload["text"] == (
        "[Investigating] SMS &lt;@U123&gt; &amp; co: Outage &lt;!channel&gt; &amp; "
        "[more](https://evil.example)"
    )
    # plain_text is never parsed for mentions or links: the title shows as written.
    assert blocks[0] == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": "SMS <@U123> & co: Outage <!channel> & [more](https://evil.example)",
        },
    }
    latest = next(b for b in blocks if "Latest update" in b.get("text", {}).get("text", ""))
    assert latest == {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": "*Latest update*\nInvestigating · posted June 27, 2023, 12:30 PM EDT\n"
            "_Text from the status page:_\n"
            ">Heads up &lt;!channel&gt; &amp; &lt;!here&gt;: see "
            "&lt;https://evil.example|click&gt; or [click](https://evil.example) *now* `code` "
            "{{DATE(2017-02-14T06:00:00Z, SHORT)}}",
            "verbatim": True,
        },
    }
    for node in walk(payload):
        if node.get("type") == "mrkdwn":
            assert node["verbatim"] is True
            rest = OUR_LINK.sub("", node["text"])
            assert "<" not in rest and ">" not in rest.replace("\n>", "\n"), node["text"]
            assert not re.search(r"&(?!amp;|lt;|gt;)", rest), node["text"]


UNESCAPED_LINK = re.compile(r"(?<!\\)\[[^\]]*(?<!\\)\]\(")


def test_teams_neutralizes_markdown_links_and_entities_in_feed_text():
    payload = build("teams", hostile_incident(), "en")
    body = payload["attachments"][0]["content"]["body"]
    assert body[0] == {
        "type": "TextBlock",
        "text": r"SMS \<@U123\> \& co: Outage \<!channel\> \& \[more\](https://evil.example)",
        "wrap": True,
        "size": "Large",
        "weight": "Bolder",
    }
    quote = next(b for b in body if b["type"] == "TextBlock" and "Heads up" in b["text"])
    assert quote == {
        "type": "TextBlock",
        "text": r"Heads up \<!channel\> \& \<!here\>: see \<https://evil.example|click\> or "
        r"\[click\](https://evil.example) \*now\* \`code\` \{\{DATE(2017-02-14T06:00:00Z, "
        r"SHORT)}}",
        "wrap": True,
        "spacing": "None",
    }
    facts = next(b for b in body if b["type"] == "FactSet")["facts"]
    assert {"title": "Affected", "value": r"SMS \<@U123\> \& co"} in facts
    for node in walk(payload):
        for key in ("text", "value", "title"):
            value = node.get(key)
            if isinstance(value, str) and node.get("type") != "Action.OpenUrl":
                assert not UNESCAPED_LINK.search(value), value
                assert not re.search(r"(?<!\\)[<&]", value), value


def test_teams_escapes_list_markers_at_line_starts():
    assert payloads.teams_escape("- one\n2. two\n+ three\nnot - a list") == (
        "\\- one\n2\\. two\n\\+ three\nnot - a list"
    )


def test_webhook_keeps_feed_text_as_written():
    data = build("webhook", hostile_incident(), "en")["data"]
    assert data["update"]["body"] == HOSTILE
    assert data["incident"]["name"] == "Outage <!channel> & [more](https://evil.example)"
    assert data["incident"]["components"] == [{"id": "sms-eu", "name": "SMS <@U123> & co"}]


# --- times in the reader's zone -----------------------------------------------------------
def fields(payload: dict) -> list[str]:
    block = next(b for b in payload["blocks"] if "fields" in b)
    return [f["text"] for f in block["fields"]]


@pytest.mark.parametrize(
    ("case", "lang", "tz", "start", "posted_local"),
    [
        ("incident_new_january", "de", "Europe/Berlin", "15. Januar 2024, 10:05 MEZ",
         "2024-01-15T10:05:00+01:00"),
        ("incident_new_june", "de", "Europe/Berlin", "27. Juni 2023, 18:30 MESZ",
         "2023-06-27T18:30:00+02:00"),
        ("incident_new_january", "en", "America/New_York", "January 15, 2024, 4:05 AM EST",
         "2024-01-15T04:05:00-05:00"),
        ("incident_new_june", "en", "America/New_York", "June 27, 2023, 12:30 PM EDT",
         "2023-06-27T12:30:00-04:00"),
        ("incident_new_january", "de", "America/New_York", "15. Januar 2024, 04:05 EST",
         "2024-01-15T04:05:00-05:00"),
        ("incident_new_june", "en", "Europe/Berlin", "June 27, 2023, 18:30 CEST",
         "2023-06-27T18:30:00+02:00"),
    ],
)  # fmt: skip
def test_times_are_in_the_readers_zone_and_language(case, lang, tz, start, posted_local):
    content = json.loads((CONTENT / f"{case}.json").read_text(encoding="utf-8"))
    words = {"de": ("Beginn", "Betroffen"), "en": ("Start", "Affected")}[lang]
    slack = build("slack", content, lang, tz)
    assert fields(slack)[1] == f"*{words[0]}*\n{start}"
    teams = build("teams", content, lang, tz)
    facts = next(b for b in teams["attachments"][0]["content"]["body"] if b["type"] == "FactSet")
    # A German date opens the value: "15. Januar" would start a numbered list in markdown.
    escaped = start.replace(". ", "\\. ", 1) if lang == "de" else start
    assert facts["facts"][1] == {"title": words[0], "value": escaped}
    event = build("webhook", content, lang, tz)
    utc = content["updates"][0]["at"]
    assert event["timezone"] == tz
    assert {k: v for k, v in event["data"]["update"].items() if k.startswith("posted")} == {
        "posted_at_utc": utc,
        "posted_at_local": posted_local,
    }
    assert event["data"]["incident"]["started_at_utc"] == utc
    assert event["data"]["incident"]["started_at_local"] == posted_local


# --- what a channel does not get ----------------------------------------------------------
@pytest.mark.parametrize(
    ("channel", "kind", "lang", "tz", "message"),
    [
        ("sms", "incident", "en", "UTC", "unknown channel 'sms'"),
        ("slack", "confirmation", "en", "UTC", "'confirmation' notification is not sent"),
        ("teams", "channel_notice", "en", "UTC", "'channel_notice' notification is not sent"),
        ("webhook", "incident", "fr", "UTC", "unsupported language 'fr'"),
        ("webhook", "incident", "en", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_build_refuses_what_it_cannot_build(channel, kind, lang, tz, message):
    content = {**content_of("incident_new"), "kind": kind}
    with pytest.raises(ValueError, match=re.escape(message)):
        build(channel, content, lang, tz)


# --- the receiver's documentation ---------------------------------------------------------
README = ROOT / "docs" / "webhooks" / "README.md"


def fenced(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text("utf-8"), re.S | re.M)


def test_readme_example_is_a_real_payload():
    (example,) = fenced("json")
    golden = GOLDEN / "webhook" / "en" / "incident_updated.json"
    assert json.loads(example) == json.loads(golden.read_text(encoding="utf-8"))


def test_readme_verification_snippet_accepts_our_signature_and_refuses_others():
    from standardwebhooks.webhooks import Webhook

    secret = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMy"
    namespace: dict = {}
    exec(fenced("python")[0].replace('"whsec_..."', repr(secret)), namespace)
    receive_event = namespace["receive_event"]
    event = build("webhook", content_of("incident_new"), "en")
    body = json.dumps(event).encode()
    now = datetime.now().astimezone()
    signature = Webhook(secret).sign("msg_1", now, body.decode())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    assert receive_event(body, headers) == event
    other = Webhook("whsec_" + "b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXI=").sign("msg_1", now, "x")
    assert receive_event(body, {**headers, "webhook-signature": other}) is None
    assert receive_event(body + b" ", headers) is None


def schema_fields(node) -> set[str]:
    found = set()
    for item in walk(node):
        found |= set(item.get("properties", {}))
    return found


def test_readme_documents_every_field_and_event_type():
    schema = json.loads((ROOT / payloads.WEBHOOK_SCHEMA).read_text(encoding="utf-8"))
    readme = README.read_text(encoding="utf-8")
    documented = set(re.findall(r"`([a-z_.]+)`", readme))
    assert schema_fields(schema) - documented == set()
    assert set(schema["properties"]["type"]["enum"]) - documented == set()


# --- the same facts as the mail -----------------------------------------------------------
@pytest.mark.parametrize("lang", READERS)
@pytest.mark.parametrize("case", [c for c in CASES if c.startswith(("incident", "maint"))])
def test_chat_messages_state_the_mails_facts_and_latest_update(case, lang):
    from notifier.emails import incident

    content, tz = content_of(case), READERS[lang]
    mail = incident.build(content, lang, tz)
    facts = [(f.label, f.value) for f in mail.summary]
    slack = build("slack", content, lang)
    assert slack["text"] == mail.subject
    assert [tuple(t[1:].split("*\n", 1)) for t in fields(slack)] == facts
    card = build("teams", content, lang)["attachments"][0]["content"]
    (factset,) = [b for b in card["body"] if b["type"] == "FactSet"]
    assert [(f["title"], f["value"].replace("\\", "")) for f in factset["facts"]] == facts
    assert mail.latest.quote in json.dumps(slack, ensure_ascii=False)


@pytest.mark.parametrize("lang", READERS)
@pytest.mark.parametrize("channel", CHANNELS)
def test_no_channel_message_carries_the_owners_management_links(channel, lang):
    """A Slack or Teams channel is read by many, and a webhook's bodies end up in logs: the
    owner's management token (unsubscribe, export, a new signing secret) must not travel in
    any message of any kind; the owner gets those links by mail."""
    for case in CASES:
        payload = json.dumps(build(channel, content_of(case), lang), ensure_ascii=False)
        assert "tok.en-1" not in payload and "/preferences/" not in payload, case
