"""Mail header values: the one function every header value goes through.

`header_value(name, value)` is called for every header this service writes, in the SendGrid
request body and in the outbox's .eml files alike, before the email package or SendGrid sees
the value. Text from outside (feed titles, ops announcements, settings) reaches headers, and
two things in it could add headers of their own:

- control characters (CR, LF, NEL, U+2028/U+2029 line and paragraph separators);
- RFC 2047 encoded words (`=?utf-8?q?=0D=0ABcc:_x@example.net?=`): Python's email package
  before 3.11.10 decodes an encoded word found in a header value on assignment and then writes
  the decoded CR LF as a real line break (CVE-2024-6923), and a mail client that decodes it
  shows a different text than we meant.

Text headers (Subject, display names, the List-Id phrase) are neutralised: control characters
become spaces, bidirectional override characters are dropped, whitespace is collapsed, and
every `=?` is broken with U+2060 WORD JOINER, which is invisible, so a reader sees the title as
the status page wrote it, but nobody's parser sees an encoded word. Addresses, list ids and
URLs are refused (UnsafeHeader) unless they are plain: a recipient address must be a bare
addr-spec (RFC 5322 section 3.4.1, dot-atom local part, no comments, no quotes, no encoded
words), a List-Unsubscribe value a list of `<http(s)://…>` or `<mailto:…>` (RFC 2369
section 2).
"""

from __future__ import annotations

import re
import unicodedata
from email.utils import parseaddr

WORD_JOINER = "\u2060"
MAX_HEADER_CHARS = 998  # RFC 5322 section 2.1.1: a line is at most 998 characters
MAX_ADDRESS_CHARS = 254  # RFC 5321 section 4.5.3.1.3 (path) less the angle brackets
# Unicode bidirectional embeddings, overrides and isolates: they reorder what a reader sees.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Every pattern ends in \Z, never $: `$` also matches before a final newline, so
# "a@example.com\n" passed as a plain address (tests/test_header_injection.py walks every
# structured header with a line break at the end of each part).
# RFC 5322 section 3.2.3 atext, for a dot-atom local part; the domain is an ASCII host name.
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
# (a single label such as `localhost` is a host name too: the development sender uses it)
_DOMAIN = re.compile(r"^(?=.{1,253}\Z)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                     r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")  # fmt: skip
_LIST_ID = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)+\Z")
# http too: development runs on http://localhost (production start-up demands https there).
# Printable ASCII without the list's own delimiters `,`, `<` and `>`.
_URL = re.compile(r"^(https?://|mailto:)[\x21-\x2b\x2d-\x3b\x3d\x3f-\x7e]+\Z")
ONE_CLICK_VALUE = "List-Unsubscribe=One-Click"  # RFC 8058 section 3.1: exactly this
TEXT_HEADERS = frozenset({"subject"})
ID_HEADERS = frozenset({"x-notifier-notification-id", "x-notifier-delivery-id"})


class UnsafeHeader(ValueError):
    """A value that cannot go into a mail header as it is; the message says which and why."""


def neutral_text(value: str, limit: int = MAX_HEADER_CHARS) -> str:
    """Text safe for an unstructured header, looking the same to a reader; at most `limit`."""
    out = []
    for ch in str(value):
        if ch in BIDI_CONTROLS:
            continue
        category = unicodedata.category(ch)
        out.append(" " if category in ("Cc", "Zl", "Zp") else ch)
    text = " ".join("".join(out).split())
    text = text.replace("=?", "=" + WORD_JOINER + "?")
    return text[:limit].rstrip()


def has_encoded_word(value: str) -> bool:
    return "=?" in value


def plain_address(value: str) -> str:
    """A bare addr-spec (`local@domain`, ASCII), returned unchanged; UnsafeHeader otherwise."""
    address = str(value)
    local, at, domain = address.rpartition("@")
    if (
        not at
        or len(address) > MAX_ADDRESS_CHARS
        or len(local) > 64
        or has_encoded_word(address)
        or not _LOCAL.match(local)
        or not _DOMAIN.match(domain)
    ):
        raise UnsafeHeader(f"not a plain email address: {address[:80]!r}")
    return address


def mailbox(value: str) -> tuple[str, str]:
    """(display name, address) of `Name <addr>` or `addr`; the name neutralised."""
    text = str(value)
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text):
        raise UnsafeHeader(f"control character in mailbox {text[:80]!r}")
    name, address = parseaddr(text)
    if not address:
        raise UnsafeHeader(f"not a mailbox: {text[:80]!r}")
    return neutral_text(name, 200), plain_address(address)


def _list_id(value: str) -> str:
    # RFC 2919 section 3: [phrase] "<" list-label "." list-id-namespace ">"
    match = re.fullmatch(r"\s*(.*?)\s*<([^<>]+)>\s*", str(value))
    if not match or not _LIST_ID.match(match.group(2)) or has_encoded_word(match.group(2)):
        raise UnsafeHeader(f"not a List-Id: {str(value)[:80]!r}")
    phrase = neutral_text(match.group(1), 200)
    return f"{phrase} <{match.group(2)}>" if phrase else f"<{match.group(2)}>"


def _url_list(value: str) -> str:
    # RFC 2369 section 2: one or more <URL>, comma separated, no whitespace inside a URL.
    text = str(value)
    if "," not in text and text[:1] == "<" and text[-1:] == ">" and _URL.match(text[1:-1]):
        # One URL as the dispatcher writes it for every recipient (the one-click link), which
        # needs no strip: the same answer as below without the list and the join (issue 14).
        return text
    urls = [part.strip() for part in text.split(",")]
    for url in urls:
        if not (url.startswith("<") and url.endswith(">") and _URL.match(url[1:-1])):
            raise UnsafeHeader(f"not a List-Unsubscribe value: {str(value)[:80]!r}")
    return ", ".join(urls)


def header_value(name: str, value: str) -> str:
    """The value to write for header `name`: neutralised text or a checked structured value.

    Raises UnsafeHeader for an address, list id or URL that is not plain, for
    List-Unsubscribe-Post other than RFC 8058's fixed value, and for a header this service
    does not write (a new header must be given its rule here first).
    """
    key = name.lower()
    if key in TEXT_HEADERS:
        return neutral_text(value)
    if key in ("to", "cc", "reply-to"):
        return plain_address(value)
    if key == "from":
        display, address = mailbox(value)
        return f"{_quoted(display)} <{address}>" if display else address
    if key == "list-id":
        return _list_id(value)
    if key == "list-unsubscribe":
        return _url_list(value)
    if key == "list-unsubscribe-post":
        if value != ONE_CLICK_VALUE:
            raise UnsafeHeader(f"List-Unsubscribe-Post must be {ONE_CLICK_VALUE!r}")
        return value
    if key in ID_HEADERS:
        if not str(value).isascii() or not str(value).isdigit():
            raise UnsafeHeader(f"{name} must be a number")
        return str(value)
    raise UnsafeHeader(f"{name} is not a header this service writes")


def _quoted(display: str) -> str:
    """A display name as an RFC 5322 phrase: quoted when it holds specials."""
    if re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+", display) and "=?" not in display:
        return display
    escaped = display.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
