"""SendGrid Event Webhook: signed batches of events; bounces and complaints suppress the address.

SendGrid signs `timestamp + raw body` with ECDSA P-256 / SHA-256 and sends the signature (base64
DER) and timestamp in headers; the public key from its settings page is base64 DER
SubjectPublicKeyInfo. We verify with `cryptography` on the raw bytes. The library's own helper
(sendgrid.helpers.eventwebhook, also cryptography-based) takes the body as text, so bytes that
are not UTF-8 would raise there instead of failing verification, and it does not catch a
malformed base64 signature.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import logging
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

# The address is bad or its owner does not want our mail: stop sending to it.
SUPPRESSING = frozenset({"bounce", "dropped", "spamreport", "unsubscribe", "group_unsubscribe"})
# Noted on the delivery row only. "deferred" is a soft failure SendGrid keeps retrying for 72 h.
RECORDED = frozenset({"delivered", "deferred"})


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


def timestamp_is_fresh(timestamp: str, now: datetime) -> bool:
    if not timestamp.isascii() or not timestamp.isdigit():
        return False
    return abs(now.timestamp() - int(timestamp)) <= MAX_AGE_SECONDS


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
        log.warning("sendgrid webhook: refused, stale timestamp %s", timestamp[:20])
        return False
    return True


def parse_events(body: bytes) -> list[dict]:
    """The batch as a list of event objects; ValueError for anything else."""
    try:
        events = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise ValueError("not a JSON list of event objects")
    return events


MAX_ROW_ID = 2**31 - 1  # INTEGER columns; a larger id cannot be ours and would fail the insert


def _delivery_id(event: dict) -> int | None:
    # Our custom_args come back as top-level string fields of every event.
    value = str(event.get("delivery_id", "")).strip()
    if not (value.isascii() and value.isdigit()):
        return None
    number = int(value)
    return number if 0 < number <= MAX_ROW_ID else None


def _event_time(event: dict, now: datetime) -> datetime:
    try:
        return datetime.fromtimestamp(int(event["timestamp"]), UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return now


def _event_id(event: dict) -> str:
    event_id = event.get("sg_event_id")
    if isinstance(event_id, str) and event_id:
        return event_id[:200]
    # SendGrid always sends one; should it not, a digest still makes a replay a duplicate.
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def classify(event: dict) -> tuple[str, str] | None:
    """(action, event name) with action 'suppress' or 'record'; None for events we ignore."""
    name = event.get("event")
    if not isinstance(name, str):
        return None
    if name == "bounce" and event.get("type") == "blocked":
        # A block is the receiving server refusing this sender for now (reputation, content),
        # not a bad address; SendGrid does not add blocks to its suppression list either.
        return ("record", "blocked")
    if name in SUPPRESSING:
        return ("suppress", name)
    if name in RECORDED:
        return ("record", name)
    return None


def _reason(name: str, event: dict) -> str:
    detail = " ".join(str(event.get("reason") or event.get("response") or "").split())
    return f"{name}: {detail}"[:200] if detail else name


def apply_events(store, events: list[dict], now: datetime) -> dict[str, int]:
    """Apply a verified batch in one transaction; returns counts for the response and the log."""
    summary = {"received": len(events), "applied": 0, "duplicates": 0, "ignored": 0}
    summary["suppressed"] = summary["cancelled"] = 0
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
            if delivery_id is not None:
                store.record_provider_event(delivery_id, name, _event_time(event, now))
            if action == "suppress":
                email = event.get("email") if isinstance(event.get("email"), str) else None
                subscriber_id = store.subscriber_for_event(delivery_id, email)
                if subscriber_id is not None:
                    cancelled = store.suppress_subscriber(subscriber_id, _reason(name, event), now)
                    summary["suppressed"] += 1
                    summary["cancelled"] += cancelled
                    log.info(
                        "sendgrid webhook: %s suppressed subscriber %s, cancelled %d deliveries",
                        name,
                        subscriber_id,
                        cancelled,
                    )
    return summary


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
