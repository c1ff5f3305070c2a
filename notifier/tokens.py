"""Signed, expiring tokens and the per-recipient links built from them.

A token carries (subscriber id, nonce) signed with SECRET_KEY and a purpose-specific salt. The
nonce lives in the subscriber row: clearing or rotating it makes every token built from it
invalid (single use for confirmation; "all old links die" after erase or re-subscription).
The database never holds a token, and a nonce alone is useless without the secret.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import int_to_bytes

from .settings import Settings

CONFIRM = "confirm"
MANAGE = "manage"  # preferences, unsubscribe, one-click unsubscribe, export, erase
UNDO = "undo-unsubscribe"
# The private calendar feed (notifier/calendar_feed.py): calendar apps poll its URL for as long
# as the subscription lives, so it has no age limit; it dies with the link nonce (erasure,
# re-subscription) and is refused while the subscriber is not confirmed.
CALENDAR = "calendar-feed"
# A calendar token's fixed issue time: the same subscriber always gets the same URL, so the
# one on the preferences page is the one a calendar app already has.
CALENDAR_ISSUED_AT = datetime(2026, 1, 1, tzinfo=UTC)

MAX_AGE_SECONDS = {
    CONFIRM: 72 * 3600,
    # Links in old emails must keep working: mailbox providers expect unsubscribe links to
    # work long after the message arrived.
    MANAGE: 400 * 24 * 3600,
    UNDO: 7 * 24 * 3600,
    CALENDAR: None,  # no age limit (see CALENDAR)
}


class TokenError(ValueError):
    """Forged, expired or malformed; callers show one generic page for all of these."""


@dataclass(frozen=True)
class TokenData:
    subscriber_id: int
    nonce: str


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


class _ClockSigner(TimestampSigner):
    """A TimestampSigner that reads the time from the caller (the app's injectable clock)."""

    def __init__(self, *args, now: datetime | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._now = now

    def get_timestamp(self) -> int:
        return super().get_timestamp() if self._now is None else int(self._now.timestamp())

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        """itsdangerous's own derivation, remembered per (key, salt): it is a pure function of
        them, and a fan-out signs the same two purposes for every recipient (issue 14)."""
        cache_key = (secret_key, self.secret_keys[-1], self.salt, self.key_derivation)
        derived = _DERIVED_KEYS.get(cache_key)
        if derived is None:
            derived = super().derive_key(secret_key)
            with _CACHE_LOCK:
                if len(_DERIVED_KEYS) >= 64:  # a handful of keys x purposes; never grows
                    _DERIVED_KEYS.clear()
                _DERIVED_KEYS[cache_key] = derived
        return derived


_DERIVED_KEYS: dict[tuple, bytes] = {}
_SERIALIZERS: dict[tuple, URLSafeTimedSerializer] = {}
_CACHE_LOCK = threading.Lock()


def _serializer(
    secret_key: str | list[str], purpose: str, now: datetime | None = None
) -> URLSafeTimedSerializer:
    """The itsdangerous serializer for `purpose`; one per (keys, purpose) is kept for the real
    clock (it holds no per-call state), a new one is built for an injected `now`."""
    if now is None:
        return _cached(_SERIALIZERS, secret_key, purpose, _build_serializer, None)
    return _build_serializer(secret_key, purpose, now)


def _cached(cache: dict, secret_key: str | list[str], purpose: str, build, *args):
    """cache[(keys, purpose)], built by build(secret_key, purpose, *args) on first use. A
    handful of keys x purposes: the cache never grows past 64 entries."""
    cache_key = (tuple(secret_key) if isinstance(secret_key, list) else secret_key, purpose)
    value = cache.get(cache_key)
    if value is None:
        value = build(secret_key, purpose, *args)
        with _CACHE_LOCK:
            if len(cache) >= 64:
                cache.clear()
            cache[cache_key] = value
    return value


def _build_serializer(
    secret_key: str | list[str], purpose: str, now: datetime | None
) -> URLSafeTimedSerializer:
    # A list of keys (oldest first) signs with the newest and verifies with any of them.
    return URLSafeTimedSerializer(
        secret_key,
        salt=f"status-notifier/{purpose}",
        signer=_ClockSigner,
        signer_kwargs={"now": now},
    )


class _Minter:
    """Makes the tokens `URLSafeTimedSerializer.dumps` makes, for one (key, purpose), except
    that the payload is never zlib-compressed.

    itsdangerous builds a signer and an HMAC object (with a Python-level digest constructor)
    for every token, and a fan-out signs one token per recipient, 1000 per request (issue 14).

    This derives the key once and makes the same bytes with one C call per step: compact
    JSON (ensure_ascii off; for [int, str], the only value make_token signs, written as
    `[<int>,<json string>]` with json's own string encoder, else through one reused
    JSONEncoder, since json.dumps with these options builds a new one per call), URL-safe
    base64 without padding (binascii, as base64.urlsafe_b64encode does), then
    "<payload>.<timestamp>.<signature>" with the timestamp as big-endian bytes without
    leading zeros and the signature hmac.digest(key, "<payload>.<timestamp>", SHA-1)
    (itsdangerous 2.2: url_safe.py, timed.py, signer.py).

    The library also tries zlib on every payload and keeps the result ("." prefix) when it
    saves two bytes or more. Our payload is [subscriber id, random nonce], which zlib never
    shortens in practice, and each try sets up a full deflate state (some 256 KB): the
    minter skips it. The library reads both forms (`loads` decompresses only when the "."
    is there), so every token stays valid for `read_token`, which verifies with the library.
    tests/test_tokens.py checks byte identity with the library on every other branch
    (non-ASCII, key lists, every purpose) and that the library reads an uncompressed token
    whose payload it would have compressed.
    """

    def __init__(self, secret_key: str | list[str], purpose: str):
        signer = _build_serializer(secret_key, purpose, None).make_signer()
        if signer.key_derivation != "django-concat" or signer.digest_method is not _SHA1_DEFAULT:
            raise RuntimeError("itsdangerous defaults changed: tokens.py's _Minter must follow")
        self._key = signer.derive_key()

    def dumps(self, value: list, timestamp: int) -> str:
        subscriber_id, nonce = value
        if type(subscriber_id) is int and type(nonce) is str:
            text = f"[{subscriber_id!r},{_json_string(nonce)}]"  # json writes ints by repr
        else:
            text = _COMPACT_JSON.encode(value)
        signed = _base64(text.encode()) + b"." + _base64(int_to_bytes(timestamp))
        return (signed + b"." + _base64(hmac.digest(self._key, signed, "sha1"))).decode()


def _base64(data: bytes) -> bytes:
    """itsdangerous' base64_encode: URL-safe base64 without padding, in C calls only."""
    return binascii.b2a_base64(data, newline=False).translate(_URL_SAFE).rstrip(b"=")


_URL_SAFE = bytes.maketrans(b"+/", b"-_")
# json's encoder for a str when ensure_ascii is off (the C one when available).
_json_string = json.encoder.encode_basestring


_SHA1_DEFAULT = TimestampSigner.default_digest_method
# itsdangerous' _CompactJSON.dumps options (ensure_ascii off, no spaces), built once.
_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_MINTERS: dict[tuple, _Minter] = {}


def make_token(
    secret_key: str, purpose: str, subscriber_id: int, nonce: str, *, now: datetime | None = None
) -> str:
    """A signed token; `now` (default: the real time) is its issue time. The same string
    `URLSafeTimedSerializer(secret_key, salt=...).dumps([subscriber_id, nonce])` returns at that
    second, except that it is never zlib-compressed (see _Minter); the library reads both."""
    timestamp = int(time.time()) if now is None else int(now.timestamp())
    return _cached(_MINTERS, secret_key, purpose, _Minter).dumps([subscriber_id, nonce], timestamp)


def read_token(
    secret_key: str | list[str], purpose: str, token: str, *, now: datetime | None = None
) -> TokenData:
    """Verify signature and age at `now` (default: the real time); raises TokenError.

    The caller still compares the nonce.
    """
    if not token or len(token) > 512:
        raise TokenError("malformed")
    try:
        value = _serializer(secret_key, purpose, now).loads(token, max_age=MAX_AGE_SECONDS[purpose])
    except SignatureExpired:
        raise TokenError("expired") from None
    except BadSignature:
        raise TokenError("bad signature") from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], int)
        or not isinstance(value[1], str)
    ):
        raise TokenError("malformed")
    return TokenData(value[0], value[1])


def undo_nonce(link_nonce: str | None, unsubscribed_at: datetime | None) -> str | None:
    """The nonce of an undo link: bound to one unsubscribe, not only to the subscriber.

    An undo link must work once, for the unsubscribe its receipt reported, and never for a
    later one: an old receipt must not bring back someone who has since left again on
    purpose. Deriving the nonce from the link nonce and the time of this unsubscribe does
    that without rotating the link nonce, which would kill every unsubscribe link (RFC 8058
    one-click included) in the mails the subscriber already has. None when not unsubscribed.
    """
    if not link_nonce or unsubscribed_at is None:
        return None
    moment = unsubscribed_at.astimezone(UTC).isoformat(timespec="microseconds")
    digest = hmac.new(link_nonce.encode(), f"undo:{moment}".encode(), "sha256").digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def nonce_matches(expected: str | None, given: str) -> bool:
    return expected is not None and hmac.compare_digest(expected.encode(), given.encode())


def recipient_links(
    settings: Settings,
    subscriber_id: int,
    link_nonce: str,
    *,
    confirm_nonce: str | None = None,
    undo: bool = False,
    unsubscribed_at: datetime | None = None,
) -> dict[str, str]:
    """Absolute URLs for one recipient; built in the worker, so no request context is needed.

    With `undo`, an undo link for the unsubscribe at `unsubscribed_at` (see undo_nonce); one
    that can never work when the subscriber is no longer unsubscribed.
    """
    base = settings.public_base_url
    manage = make_token(settings.secret_key, MANAGE, subscriber_id, link_nonce)
    links = {
        "preferences_url": f"{base}/preferences/{manage}",
        "unsubscribe_url": f"{base}/unsubscribe/{manage}",
        "one_click_url": f"{base}/unsubscribe/one-click/{manage}",
    }
    if confirm_nonce:
        confirm = make_token(settings.secret_key, CONFIRM, subscriber_id, confirm_nonce)
        links["confirm_url"] = f"{base}/confirm/{confirm}"
    if undo:
        nonce = undo_nonce(link_nonce, unsubscribed_at) or new_nonce()  # new_nonce: dead
        undo_token = make_token(settings.secret_key, UNDO, subscriber_id, nonce)
        links["undo_url"] = f"{base}/unsubscribe/undo/{undo_token}"
    return links


def calendar_token(secret_key: str | list[str], subscriber_id: int, link_nonce: str) -> str:
    """The subscriber's calendar feed token: signed like the others (purpose CALENDAR, the
    link nonce), issued at CALENDAR_ISSUED_AT so it is the same on every call."""
    keys = secret_key if isinstance(secret_key, str) else secret_key[-1]
    return make_token(keys, CALENDAR, subscriber_id, link_nonce, now=CALENDAR_ISSUED_AT)


def calendar_links(settings: Settings, subscriber_id: int, link_nonce: str) -> dict[str, str]:
    """{"https": "https://…/calendar/<token>.ics", "webcal": "webcal://…/calendar/<token>.ics"}:
    the feed's address, and the same as webcal:// (the scheme that makes a browser hand it to
    the calendar app as a subscription, not a one-time import)."""
    token = calendar_token(settings.secret_key, subscriber_id, link_nonce)
    url = f"{settings.public_base_url}/calendar/{token}.ics"
    _scheme, sep, rest = url.partition("://")
    return {"https": url, "webcal": f"webcal://{rest}" if sep else url}
