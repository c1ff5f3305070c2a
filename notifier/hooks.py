"""SendGrid Event Webhook: signed batches of events; address-level outcomes suppress the address.

SendGrid signs `timestamp + raw body` with ECDSA P-256 / SHA-256 and sends the signature (base64
DER) and timestamp in headers; the public key from its settings page is base64 DER
SubjectPublicKeyInfo. We verify with `cryptography` on the raw bytes. The library's own helper
(sendgrid.helpers.eventwebhook, also cryptography-based) takes the body as text, so bytes that
are not UTF-8 would raise there instead of failing verification, and it does not catch a
malformed base64 signature.

Answers: 403 to a request not signed with the configured key, or whose signed timestamp is not a
Unix time within MAX_AGE_SECONDS of ours; 400 to a signed body that is not a UTF-8 JSON list of
event objects (see parse_events); 200 to the rest, where fields of types SendGrid never sends are
passed over one by one, so no body can cause a 500. Only address-level outcomes suppress: a
bounce (not a block), a spam report, an unsubscribe, and a drop for an address reason
(DROP_REASON_IS_ADDRESS). A drop for a reason about the message is noted on its delivery and
raised as a "message_dropped" ops alert.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import logging
import math
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from flask import Blueprint, abort, jsonify, request

from . import context

log = logging.getLogger(__name__)
bp = Blueprint("hooks", __name__)

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# SendGrid posts a batch every 30 s or at 768 KB, whichever comes first; leave headroom.
MAX_BODY_BYTES = 2 * 1024 * 1024
# Replay protection: a captured batch is refused once its signed timestamp is this old (or this
# far in the future, a skewed clock). Events are also deduplicated on sg_event_id.
MAX_AGE_SECONDS = 600

# The address is bad or its owner does not want our mail: stop sending to it. A `dropped` event
# joins these only for an address reason (DROP_REASON_IS_ADDRESS).
SUPPRESSING = frozenset({"bounce", "spamreport", "unsubscribe", "group_unsubscribe"})
# Noted on the delivery row only. "deferred" is a soft failure SendGrid keeps retrying for 72 h.
RECORDED = frozenset({"delivered", "deferred"})

# Why SendGrid dropped a message, and whether that says anything about the address (True) or only
# about this message or our account (False). The reasons are the complete list SendGrid documents
# for `dropped` in its Event Webhook Reference
# (https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event#dropped): "Invalid
# SMTPAPI header, Spam Content (if Spam Checker app is enabled), Unsubscribed Address, Bounced
# Address, Spam Reporting Address, Invalid, Recipient List over Package Quota". Its glossary entry
# on drops (https://docs.sendgrid.com/glossary/drops, now
# https://www.twilio.com/docs/sendgrid/glossary/drops) says which of them mean the address is on
# one of the account's suppression lists, and adds "Duplicate message" (Marketing Campaigns only).
# Any other reason, a reworded one included, suppresses nobody: wrongly silencing a subscriber
# for good is worse than one more refused message, which ops hear about through the alert.
DROP_REASON_IS_ADDRESS = {
    "bounced address": True,  # on the Bounces list: an earlier mail to it bounced hard
    "spam reporting address": True,  # on the Spam Reports list: its owner reported us
    "unsubscribed address": True,  # on the global Unsubscribes list
    "invalid": True,  # on the Invalid Emails list: malformed, or no such mailbox
    "invalid smtpapi header": False,  # our request was built wrongly; every recipient gets it
    "spam content": False,  # the Spam Checker setting flagged this message's content
    "recipient list over package quota": False,  # the account's plan, not the address
    "duplicate message": False,  # Marketing Campaigns: one address on two lists of a campaign
}
DROP_ALERT = "message_dropped"

# What the batch may look like. SendGrid's own events nest three deep (batch, event, and `pool`
# or `category`); json.loads stops at Python's recursion limit (RecursionError), and values a
# little below it would still be too deep for json.dumps further down the stack.
MAX_DEPTH = 32
# Unix seconds have ten digits until the year 2286; int() of a longer string wastes time.
MAX_TIMESTAMP_DIGITS = 12
MAX_TEXT = 200  # stored reasons and event ids
MAX_EMAIL = 254  # RFC 5321's path limit less its angle brackets; the sign-up form's limit too
MAX_ALERT_REASONS = 5
MAX_ALERT_NOTIFICATIONS = 10


@functools.lru_cache(maxsize=4)
def load_public_key(encoded: str) -> ec.EllipticCurvePublicKey:
    """The verification key from SENDGRID_WEBHOOK_PUBLIC_KEY; ValueError when unusable."""
    try:
        key = load_der_public_key(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError(f"not a base64 DER public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("not an ECDSA P-256 public key")
    return key


def signature_is_valid(
    key: ec.EllipticCurvePublicKey, signature: str, timestamp: str, body: bytes
) -> bool:
    """Whether SendGrid signed exactly these timestamp and body bytes."""
    try:
        decoded = base64.b64decode(signature, validate=True)
        key.verify(decoded, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def _unix_time(text: str) -> int | None:
    """Whole Unix seconds written in ASCII digits, else None (no sign, space or exponent)."""
    if len(text) <= MAX_TIMESTAMP_DIGITS and text.isascii() and text.isdigit():
        return int(text)
    return None


def timestamp_is_fresh(timestamp: str, now: datetime) -> bool:
    """Whether the signed timestamp header is within MAX_AGE_SECONDS of now.

    Anything that is not a plausible Unix time is simply not fresh: 400 digits would overflow
    the float subtraction, past 4300 digits int() raises, and other scripts' digits are
    digits to str.isdigit().
    """
    value = _unix_time(timestamp)
    return value is not None and abs(now.timestamp() - value) <= MAX_AGE_SECONDS


def request_is_authentic(
    public_key: str | None, headers: Mapping[str, str], body: bytes, now: datetime
) -> bool:
    """Signature valid and recent. No key configured means nothing is trusted."""
    if not public_key:
        log.error("sendgrid webhook: SENDGRID_WEBHOOK_PUBLIC_KEY is not set; refusing events")
        return False
    try:
        key = load_public_key(public_key)
    except ValueError as exc:
        log.error("sendgrid webhook: SENDGRID_WEBHOOK_PUBLIC_KEY is unusable: %s", exc)
        return False
    signature = headers.get(SIGNATURE_HEADER, "")
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    if not signature or not timestamp:
        log.warning("sendgrid webhook: refused, signature headers missing")
        return False
    if not signature_is_valid(key, signature, timestamp, body):
        log.warning("sendgrid webhook: refused, bad signature")
        return False
    if not timestamp_is_fresh(timestamp, now):
        log.warning("sendgrid webhook: refused, stale timestamp %r", timestamp[:20])
        return False
    return True


def parse_events(body: bytes) -> list[dict]:
    """The batch as a list of event objects; ValueError for a body we cannot read.

    RFC 8259: JSON between systems is UTF-8 and a receiver may ignore a leading byte order mark
    (§8.1); NaN and Infinity are not JSON (§6). json.loads(bytes) would also guess UTF-16/32 and
    let UTF-8-encoded lone surrogates through, which no database column accepts. Refused too:
    numbers past Python's int digit limit, and nesting deeper than MAX_DEPTH.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    try:
        events = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and ints beyond sys.get_int_max_str_digits()
        raise ValueError(f"not JSON: {str(exc)[:200]}") from None
    if _nested_deeper_than(events, MAX_DEPTH):
        raise ValueError("nested too deeply")
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise ValueError("not a JSON list of event objects")
    return events


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _nested_deeper_than(value, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


# --- reading one event: SendGrid's types are strings and integers; anything else is passed over


def _text(value, limit: int = MAX_TEXT) -> str:
    """A JSON value as one line of printable text ('' unless it is a string).

    Control and format characters and lone surrogates ("\\ud800" is valid JSON) are dropped:
    PostgreSQL refuses NUL in text, neither database stores a lone surrogate, and a bidi
    override would garble the ops pages.
    """
    if not isinstance(value, str):
        return ""
    value = value[: limit * 4]
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())[:limit]


def _detail(event: dict) -> str:
    """SendGrid's reason (bounce, dropped) or SMTP response (deferred, delivered), or ''."""
    return _text(event.get("reason")) or _text(event.get("response"))


def _email(event: dict) -> str | None:
    value = event.get("email")
    if isinstance(value, str) and len(value) <= MAX_EMAIL and value.isprintable():
        return value
    return None  # an address with control characters is not one we ever stored


MAX_ROW_ID = 2**31 - 1  # INTEGER columns; a larger id cannot be ours and would fail the insert


def _delivery_id(event: dict) -> int | None:
    # Our custom_args come back as top-level string fields of every event.
    value = event.get("delivery_id")
    if isinstance(value, str):
        value = value.strip()
        if not (len(value) <= 10 and value.isascii() and value.isdigit()):
            return None
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 < value <= MAX_ROW_ID else None


def _event_time(event: dict, now: datetime) -> datetime:
    """When SendGrid says the event happened; now when that is unreadable or in the future.

    A time in the future would make every later event on the delivery look older than it.
    """
    value = event.get("timestamp")
    if isinstance(value, str) and len(value) <= MAX_TIMESTAMP_DIGITS and value.isdigit():
        value = int(value) if value.isascii() else None
    if isinstance(value, float) and math.isfinite(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return now
    # int and float compare exactly in Python, so a 400-digit value cannot overflow here.
    if not 0 <= value <= now.timestamp():
        return now
    return datetime.fromtimestamp(value, UTC)


def _event_id(event: dict) -> str:
    event_id = event.get("sg_event_id")
    if isinstance(event_id, str) and event_id and event_id.isprintable():
        if len(event_id) <= MAX_TEXT:
            return event_id
        return "sha256:" + hashlib.sha256(event_id.encode()).hexdigest()
    # SendGrid always sends one; should it not, a digest still makes a replay a duplicate.
    # ensure_ascii (the default) escapes lone surrogates, so encode() cannot fail.
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def drop_is_about_the_address(reason: str) -> bool:
    """Whether a `dropped` reason means the address itself is bad (see DROP_REASON_IS_ADDRESS).

    Case and spacing are ignored; an unknown or missing reason is not about the address.
    """
    return DROP_REASON_IS_ADDRESS.get(" ".join(reason.split()).casefold(), False)


def classify(event: dict) -> tuple[str, str] | None:
    """(action, event name), or None for events we ignore.

    Actions: 'suppress' (an address-level outcome), 'drop' (SendGrid dropped the message for a
    reason about the message: note it and alert ops) and 'record' (note it on the delivery).
    """
    name = event.get("event")
    if not isinstance(name, str):
        return None
    if name == "bounce" and event.get("type") == "blocked":
        # A block is the receiving server refusing this sender for now (reputation, content),
        # not a bad address; SendGrid does not add blocks to its suppression list either.
        return ("record", "blocked")
    if name == "dropped":
        about_address = drop_is_about_the_address(_text(event.get("reason")))
        return ("suppress" if about_address else "drop", name)
    if name in SUPPRESSING:
        return ("suppress", name)
    if name in RECORDED:
        return ("record", name)
    return None


def _reason(name: str, detail: str) -> str:
    return f"{name}: {detail}"[:MAX_TEXT] if detail else name


def apply_events(store, events: list[dict], now: datetime) -> dict[str, int]:
    """Apply a verified batch in one transaction; returns counts for the response and the log."""
    summary = {"received": len(events), "applied": 0, "duplicates": 0, "ignored": 0}
    summary["suppressed"] = summary["cancelled"] = 0
    drops: list[tuple[str, int | None]] = []  # message-level drops: (reason, delivery id)
    with store.write():
        for event in events:
            classified = classify(event)
            if classified is None:
                summary["ignored"] += 1
                continue
            action, name = classified
            delivery_id = _delivery_id(event)
            if not store.record_webhook_event(_event_id(event), name, delivery_id, now):
                summary["duplicates"] += 1
                continue
            summary["applied"] += 1
            detail = _detail(event)
            if delivery_id is not None:
                at = _event_time(event, now)
                store.record_provider_event(delivery_id, name, at, detail or None)
            if action == "suppress":
                _suppress(store, event, name, delivery_id, detail, now, summary)
            elif action == "drop":
                drops.append((detail, delivery_id))
        if drops:
            _alert_message_drops(store, drops, now)
    return summary


def _suppress(store, event, name, delivery_id, detail, now, summary) -> None:
    email = _email(event)
    if email is None and event.get("email") is not None:
        return  # an address we cannot read cannot confirm that the delivery id is ours
    subscriber_id = store.subscriber_for_event(delivery_id, email)
    if subscriber_id is None:
        return
    cancelled = store.suppress_subscriber(subscriber_id, _reason(name, detail), now)
    summary["suppressed"] += 1
    summary["cancelled"] += cancelled
    log.info(
        "sendgrid webhook: %s suppressed subscriber %s, cancelled %d deliveries",
        name,
        subscriber_id,
        cancelled,
    )


def _alert_message_drops(store, drops: list[tuple[str, int | None]], now: datetime) -> None:
    """One open ops alert for message-level drops; a later batch refreshes its text."""
    counts = Counter(reason or "no reason given" for reason, _ in drops)
    reasons = [f"{reason} ({n})" for reason, n in counts.items()]
    if len(reasons) > MAX_ALERT_REASONS:
        reasons[MAX_ALERT_REASONS:] = [f"{len(reasons) - MAX_ALERT_REASONS} more"]
    delivery_ids = sorted({d for _, d in drops if d is not None})
    notifications = [str(n) for n in store.notifications_of_deliveries(delivery_ids)]
    if len(notifications) > MAX_ALERT_NOTIFICATIONS:
        notifications[MAX_ALERT_NOTIFICATIONS:] = ["…"]
    where = (
        f"Notifications: {', '.join(notifications)}. See their deliveries."
        if notifications
        else "The events name no delivery of ours."
    )
    message = (
        "SendGrid dropped mail for a reason about the message, not the address, so no address "
        f"was suppressed: {'; '.join(reasons)}. {where}"
    )
    store.raise_alert(DROP_ALERT, message, now)
    log.warning("sendgrid webhook: %d message-level drops; alert %s raised", len(drops), DROP_ALERT)


@bp.post("/hooks/sendgrid")
def sendgrid_events():
    """SendGrid retries anything but 2xx, so a verified batch is always answered 200."""
    request.max_content_length = MAX_BODY_BYTES  # larger than the app-wide form limit
    body = request.get_data(cache=False)
    now = context.now()
    if not request_is_authentic(
        context.settings().sendgrid_webhook_public_key, request.headers, body, now
    ):
        abort(403)
    try:
        events = parse_events(body)
    except ValueError as exc:
        log.warning("sendgrid webhook: bad batch: %s", exc)
        abort(400)
    summary = apply_events(context.store(), events, now)
    log.info("sendgrid webhook: %s", ", ".join(f"{k} {v}" for k, v in summary.items()))
    return jsonify(summary)
