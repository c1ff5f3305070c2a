"""Header injection (issue 9): RFC 2047 encoded words, control characters and substitution
placeholders sent through every way in (feed title, feed text, announcement title and body,
sign-up address), read back as a mail client reads them.

Each test parses what leaves the service: the .eml files of the outbox, and the SendGrid
request turned into the mail SendGrid would write (the email package, the way a sender that
trusts its input would write it: the neutralising has to happen in our code, before that).
"""

from __future__ import annotations

import re
from datetime import timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import formataddr, getaddresses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from notifier import jobs
from notifier.announcements import normalize
from notifier.delivery.mailer import apply_substitutions
from notifier.delivery.mailheaders import UnsafeHeader, header_value, neutral_text, plain_address
from notifier.emails.message import PLACEHOLDERS, escape_text, escape_url
from notifier.feed import parse_feed
from notifier.notifications import notify_changes
from notifier.poller import ingest

from .helpers import add_subscriber, atom, table
from .test_admin_helpers import send_through
from .test_subscribe_helpers import signup

ENCODED = "=?utf-8?q?=0D=0ABcc:_x@example.net?="
LIVE = "-unsubscribe_url- -preferences_url- -confirm_url- -undo_url-preferences_url-"
PAYLOAD = f"Outage {ENCODED} {LIVE}\u2028Cc: y@example.net"
# What a reader must see of that payload: the same characters, on one line.
SHOWN = f"Outage {ENCODED} {LIVE} Cc: y@example.net"
PERSONAL = re.compile(
    r"https://status-notify\.example\.com/(?:unsubscribe|preferences|confirm)[^\s<>]*"
)
COMMON_HEADERS = {
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "MIME-Version",
    "Content-Type",
}
ONE_CLICK_HEADERS = {"List-Unsubscribe", "List-Unsubscribe-Post"}
OUTBOX_HEADERS = {"X-Notifier-Notification-Id", "X-Notifier-Delivery-Id"}


def visible(text: str) -> str:
    """What a reader sees: the invisible WORD JOINER left out."""
    return text.replace("\u2060", "")


def as_sendgrid_writes_it(body: dict) -> list[bytes]:
    """One RFC 5322 message per personalization, written from the request as it stands."""
    out = []
    for p in body["personalizations"]:
        subs = p.get("substitutions", {})
        msg = EmailMessage()
        sender = body["from"]
        msg["From"] = formataddr((sender.get("name", ""), sender["email"]))
        for to in p["to"]:
            msg["To"] = to["email"]
        msg["Subject"] = apply_substitutions(body["subject"], subs)
        msg["Date"] = "Thu, 26 Nov 2026 12:00:00 +0000"
        msg["Message-ID"] = "<fake@sendgrid.example>"
        for name, value in {**body.get("headers", {}), **p.get("headers", {})}.items():
            msg[name] = value
        parts = {c["type"]: apply_substitutions(c["value"], subs) for c in body["content"]}
        msg.set_content(parts["text/plain"])
        msg.add_alternative(parts["text/html"], subtype="html")
        out.append(msg.as_bytes())
    return out


def read_mail(raw: bytes) -> dict:
    """What a mail client makes of the bytes."""
    msg = message_from_bytes(raw, policy=default_policy)
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    return {
        "headers": set(msg.keys()),
        "to": [addr for _name, addr in getaddresses(msg.get_all("To", []))],
        "bcc": msg.get_all("Bcc", []) + msg.get_all("Cc", []),
        "subject": str(msg["Subject"]),
        "list_unsubscribe": msg["List-Unsubscribe"],
        "text": text,
        "html": html,
    }


def personal_links(text: str) -> list[str]:
    """Each personal link as (path, signed payload): the token's time stamp and signature
    differ between two mails sent a second apart, the subscriber and nonce do not."""
    found = []
    for m in PERSONAL.finditer(text):
        url = m.group(0).rstrip(".,)>\"'")
        path, _, token = url.rpartition("/")
        found.append(f"{path}/{token.split('.')[0]}")
    return sorted(found)


def check(mail: dict, address: str, *, one_click: bool, outbox: bool, shown: str) -> None:
    expected = COMMON_HEADERS | (ONE_CLICK_HEADERS if one_click else set())
    expected |= OUTBOX_HEADERS if outbox else set()
    assert mail["headers"] == expected
    assert (mail["to"], mail["bcc"]) == ([address], [])
    assert shown in visible(mail["subject"])
    assert personal_links(mail["subject"]) == []
    # The payload reached the body, and the body carries no personal link from it: the links
    # are those a mail without the payload has (compared by the caller), all for this reader.
    assert visible(mail["text"]).count(ENCODED) >= 1
    assert "\u2060" not in "".join(personal_links(mail["text"]))


@pytest.fixture
def incident(db, settings, clock):
    """A feed incident whose title and text carry the payload, and a control incident."""
    add_subscriber(db, "anna@example.de", now=clock(), language="de")
    add_subscriber(db, "ben@example.com", now=clock(), language="en")
    feed_id = db.ensure_feed("https://status.example.com/history.atom", clock())["id"]
    t0 = clock() - timedelta(minutes=5)
    done = (t0 - timedelta(days=9), "Resolved", "Done.")
    old = {"key": "old000000001", "title": "Old", "updates": [done]}
    ingest(db, feed_id, parse_feed(atom([old])), clock())
    bad = {"key": "bad000000001", "title": PAYLOAD, "updates": [(t0, "Investigating", PAYLOAD)]}
    clean = {"key": "cln000000001", "title": "Clean", "updates": [(t0, "Investigating", "Ok.")]}
    ingest(db, feed_id, parse_feed(atom([bad, clean, old])), clock())
    notify_changes(db, settings, clock())


def outbox_mails(settings) -> dict[str, list[dict]]:
    """Per recipient, every mail in the outbox folder (oldest first)."""
    found: dict[str, list[dict]] = {}
    for path in sorted(Path(settings.outbox_path).glob("*.eml")):
        mail = read_mail(path.read_bytes())
        found.setdefault(mail["to"][0], []).append(mail)
    return found


def sendgrid_mails(sendgrid) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for request in sendgrid.accepted_requests():
        for raw in as_sendgrid_writes_it(request.body):
            mail = read_mail(raw)
            found.setdefault(mail["to"][0], []).append(mail)
    return found


def split(mails: list[dict]) -> tuple[dict, dict]:
    """(the payload mail, the control mail) of one reader."""
    [bad] = [m for m in mails if ENCODED in visible(m["subject"])]
    [clean] = [m for m in mails if "Clean" in m["subject"]]
    return bad, clean


@pytest.mark.parametrize("backend", ["outbox", "sendgrid"])
def test_feed_title_and_text_cannot_add_headers_or_move_links(
    app, settings, sendgrid, incident, backend
):
    if backend == "sendgrid":
        send_through(app, settings, sendgrid)
    jobs.dispatch(app)
    found = outbox_mails(settings) if backend == "outbox" else sendgrid_mails(sendgrid)
    assert sorted(found) == ["anna@example.de", "ben@example.com"]
    for address, mails in found.items():
        bad, clean = split(mails)
        check(bad, address, one_click=True, outbox=backend == "outbox", shown=SHOWN)
        # Exactly the personal links the control mail has, in number, in both parts.
        assert personal_links(bad["text"]) == personal_links(clean["text"])
        assert personal_links(bad["html"]) == personal_links(clean["html"])
        assert personal_links(bad["list_unsubscribe"]) == personal_links(clean["list_unsubscribe"])
        assert re.fullmatch(r"<https://status-notify\.example\.com/unsubscribe/one-click/\S+>",
                            bad["list_unsubscribe"])  # fmt: skip


@pytest.mark.parametrize("backend", ["outbox", "sendgrid"])
def test_announcement_title_and_body_cannot_add_headers_or_move_links(
    app, db, settings, sendgrid, clock, backend
):
    if backend == "sendgrid":
        send_through(app, settings, sendgrid)
    add_subscriber(db, "anna@example.de", now=clock(), language="de")
    add_subscriber(db, "ben@example.com", now=clock(), language="en")
    title = f"Wartung {ENCODED} {LIVE}"
    texts = {"title": title, "intro": PAYLOAD, "bullets": [PAYLOAD]}
    texts["qa"] = [{"q": PAYLOAD, "a": PAYLOAD}]
    for words in (texts, {"title": "Clean", "intro": "Ok."}):
        content, audience = normalize({"products": ["SMS"], "de": words, "en": words})
        draft = db.save_announcement(content, audience, "admin", clock())
        db.send_announcement(draft, content, audience, clock(), clock() + timedelta(hours=1))
    jobs.dispatch(app)
    found = outbox_mails(settings) if backend == "outbox" else sendgrid_mails(sendgrid)
    assert sorted(found) == ["anna@example.de", "ben@example.com"]
    for address, mails in found.items():
        bad, clean = split(mails)
        check(bad, address, one_click=True, outbox=backend == "outbox", shown=title)
        assert personal_links(bad["text"]) == personal_links(clean["text"])
        assert personal_links(bad["html"]) == personal_links(clean["html"])


ENCODED_ADDRESSES = [
    "=?utf-8?q?x=40evil.example?=@example.com",
    "=?utf-8?q?a=40b.example=2C_c?=@d.example",
    "=?utf-8?b?eEBldmlsLmV4YW1wbGU=?=@example.com",
]


@pytest.mark.parametrize("address", ENCODED_ADDRESSES)
def test_the_form_refuses_an_encoded_word_address_with_a_clear_message(client, db, clock, address):
    response = signup(client, clock, address, page_language="en")
    assert response.status_code == 400
    assert "We cannot send mail to an address written like this." in response.text
    assert table(db, "subscribers") == []
    assert table(db, "deliveries") == []


@pytest.mark.parametrize("backend", ["outbox", "sendgrid"])
def test_a_stored_encoded_word_address_fails_alone(
    app, db, settings, sendgrid, clock, incident, backend
):
    """Stored before the form refused it: that row fails with its reason, the rest go."""
    if backend == "sendgrid":
        send_through(app, settings, sendgrid)
    bad_id = add_subscriber(db, ENCODED_ADDRESSES[1], now=clock(), language="en")
    notify_changes(db, settings, clock())  # nothing new: the incident was notified already
    db._execute(
        "INSERT INTO deliveries (notification_id, subscriber_id, email, language, timezone, "
        "state, next_attempt_at, created_at, updated_at) SELECT notification_id, ?, ?, "
        "language, timezone, 'pending', next_attempt_at, created_at, updated_at FROM "
        "deliveries WHERE email = 'ben@example.com'",
        [bad_id, ENCODED_ADDRESSES[1]],
    )
    jobs.dispatch(app)
    rows = {(r["email"], r["state"], r["reason"]) for r in table(db, "deliveries")}
    assert {(e, s, r) for e, s, r in rows if e == ENCODED_ADDRESSES[1]} == {
        (ENCODED_ADDRESSES[1], "failed", "not sent: the address is not a plain email address")
    }
    assert {s for e, s, _r in rows if e != ENCODED_ADDRESSES[1]} == {"sent"}
    found = outbox_mails(settings) if backend == "outbox" else sendgrid_mails(sendgrid)
    assert sorted(found) == ["anna@example.de", "ben@example.com"]
    assert table(db, "alerts") == []


@pytest.mark.parametrize(
    "name, value",
    [
        ("To", "a@example.com\r\nBcc: x@example.net"),
        ("To", "Anna <a@example.com>"),
        ("To", '"a b"@example.com'),
        ("To", "a@example.com, b@example.com"),
        ("From", "Sinch <status@example.com>\nBcc: x@example.net"),
        ("From", f"Sinch <{ENCODED}@example.com>"),
        ("List-Id", f"Sinch <{ENCODED}>"),
        ("List-Unsubscribe", "<https://x.example/u>\r\nBcc: x@example.net"),
        ("List-Unsubscribe", "<javascript:alert(1)>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click\r\nBcc: x@example.net"),
        ("X-Notifier-Delivery-Id", "1\r\nBcc: x@example.net"),
        ("Bcc", "x@example.net"),
    ],
)
def test_structured_headers_refuse_what_is_not_plain(name, value):
    with pytest.raises(UnsafeHeader):
        header_value(name, value)


# Every structured header header_value writes, each with a value it accepts.
PLAIN_VALUES = [
    ("To", "anna.b+status@mail.example.com"),
    ("Cc", "anna@example.com"),
    ("Reply-To", "support@example.com"),
    ("From", "Sinch Status <status@sinch.example>"),
    ("List-Id", "Sinch status <status.sinch.example>"),
    ("List-Unsubscribe", "<https://x.example/u/a.b>, <mailto:u@x.example?subject=u>"),
    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ("X-Notifier-Notification-Id", "42"),
    ("X-Notifier-Delivery-Id", "7"),
]
LINE_BREAKS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x00", "\x85", "\u2028", "\u2029"]
_CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


@pytest.mark.parametrize("name, value", PLAIN_VALUES)
def test_no_structured_header_lets_a_line_break_through_anywhere(name, value):
    """A line break or control character at any position of a structured value (at the very
    end too, where a regular expression's `$` matches before a newline) is refused or gone
    from the value written: never part of the header."""
    assert header_value(name, value) == value
    for at in range(len(value) + 1):
        for brk in LINE_BREAKS:
            given = value[:at] + brk + value[at:]
            try:
                written = header_value(name, given)
            except UnsafeHeader:
                continue
            assert not _CONTROL.search(written), (name, given, written)


def test_text_headers_keep_what_the_reader_sees_on_one_line():
    assert visible(header_value("Subject", PAYLOAD)) == SHOWN
    assert "=?" not in header_value("Subject", PAYLOAD)
    assert header_value("Subject", "Über\r\n\tuns\x00 \u202eevil") == "Über uns evil"
    assert header_value("From", "Sinch Status <status@sinch.example>") == (
        "Sinch Status <status@sinch.example>"
    )
    assert header_value("From", '"Sinch \\"Status\\", EU" <status@sinch.example>') == (
        '"Sinch \\"Status\\", EU" <status@sinch.example>'
    )
    assert neutral_text("a =?b?= c") == "a =\u2060?b?= c"
    assert header_value(
        "List-Unsubscribe", "<http://localhost:5000/unsubscribe/one-click/a.b>"
    ) == ("<http://localhost:5000/unsubscribe/one-click/a.b>")
    assert plain_address("anna.b+status@xn--bcher-kva.example") == (
        "anna.b+status@xn--bcher-kva.example"
    )


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*PLACEHOLDERS.values(), "-", "_url", "x", "--", " "])))
def test_no_text_keeps_a_live_placeholder_and_every_text_reads_the_same(parts):
    text = "".join(parts)
    escaped = escape_text(text)
    assert not any(p in escaped for p in PLACEHOLDERS.values())
    assert visible(escaped) == text
    url = escape_url("https://status.example.com/" + text.replace(" ", ""))
    assert not any(p in url for p in PLACEHOLDERS.values())
