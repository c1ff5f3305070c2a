"""Tokens: the cached serializers and derived keys (issue 14) sign exactly as itsdangerous does."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from itsdangerous import URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode

from notifier import tokens

KEY = "k" * 48
OLD = "o" * 48


def _plain(key, purpose: str) -> URLSafeTimedSerializer:
    """The library alone, configured as notifier.tokens documents (no caching, real clock)."""
    return URLSafeTimedSerializer(key, salt=f"status-notifier/{purpose}")


@pytest.mark.parametrize("purpose", [tokens.CONFIRM, tokens.MANAGE, tokens.UNDO])
def test_cached_tokens_are_the_librarys_tokens(purpose):
    for _ in range(3):  # the second and third calls use the cached serializer and key
        second = int(time.time())
        token = tokens.make_token(KEY, purpose, 42, "nonce-a")
        if int(time.time()) != second:
            continue  # the clock ticked between the two signatures; try again
        assert token == _plain(KEY, purpose).dumps([42, "nonce-a"])
        assert _plain(KEY, purpose).loads(token) == [42, "nonce-a"]
        assert tokens.read_token(KEY, purpose, token) == tokens.TokenData(42, "nonce-a")
        break
    else:
        pytest.fail("the clock ticked during every attempt")


def test_purposes_and_keys_do_not_share_cached_keys():
    manage = tokens.make_token(KEY, tokens.MANAGE, 1, "n")
    with pytest.raises(tokens.TokenError):
        tokens.read_token(KEY, tokens.CONFIRM, manage)
    with pytest.raises(tokens.TokenError):
        tokens.read_token("x" * 48, tokens.MANAGE, manage)


def test_rotated_keys_verify_old_tokens_and_sign_with_the_newest():
    old_token = tokens.make_token(OLD, tokens.MANAGE, 7, "n7")
    assert tokens.read_token([OLD, KEY], tokens.MANAGE, old_token) == tokens.TokenData(7, "n7")
    new_token = tokens.make_token([OLD, KEY], tokens.MANAGE, 7, "n7")
    assert tokens.read_token(KEY, tokens.MANAGE, new_token) == tokens.TokenData(7, "n7")
    with pytest.raises(tokens.TokenError):
        tokens.read_token(OLD, tokens.MANAGE, new_token)


def test_an_injected_clock_still_decides_issue_time_and_age():
    issued = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    token = tokens.make_token(KEY, tokens.CONFIRM, 3, "c", now=issued)
    just_valid = datetime.fromtimestamp(issued.timestamp() + 72 * 3600, UTC)
    assert tokens.read_token(KEY, tokens.CONFIRM, token, now=just_valid).subscriber_id == 3
    too_late = datetime.fromtimestamp(issued.timestamp() + 72 * 3600 + 1, UTC)
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.read_token(KEY, tokens.CONFIRM, token, now=too_late)
    # A cached real-clock serializer is not affected by the injected one, nor the reverse.
    fresh = tokens.make_token(KEY, tokens.CONFIRM, 3, "c")
    assert tokens.read_token(KEY, tokens.CONFIRM, fresh).nonce == "c"


class _FixedSigner:
    """The library's own TimestampSigner at a fixed issue time (its clock is the only part
    replaced), so the library's token for a given second can be compared byte for byte."""

    @staticmethod
    def at(timestamp: int):
        from itsdangerous import TimestampSigner

        class Fixed(TimestampSigner):
            def get_timestamp(self) -> int:
                return timestamp

        return Fixed


@pytest.mark.parametrize("key", [KEY, [OLD, KEY]], ids=["one key", "rotated keys"])
@pytest.mark.parametrize("purpose", [tokens.CONFIRM, tokens.MANAGE, tokens.UNDO, tokens.CALENDAR])
def test_minted_tokens_are_the_librarys_bytes_on_every_branch(key, purpose):
    """tokens._Minter signs without the library's per-token objects; its output must be the
    library's exactly for payloads zlib does not shorten: non-ASCII and JSON-escaped text
    (ensure_ascii off), an empty nonce, large and zero ids, timestamps of 4 and 5 bytes. A
    payload zlib would shorten ("." prefix) the minter leaves uncompressed: the library's own
    signature over the uncompressed payload, which the library reads back."""
    cases = [
        (42, "nonce-a"),
        (0, ""),
        (2**40, tokens.new_nonce()),
        (9, 'Zürich ✓ 𝄞 "quoted" \\ \n'),
    ]
    for when in (datetime(2026, 6, 1, 12, 0, tzinfo=UTC), datetime(2106, 3, 1, tzinfo=UTC)):
        library = URLSafeTimedSerializer(
            key, salt=f"status-notifier/{purpose}", signer=_FixedSigner.at(int(when.timestamp()))
        )
        for subscriber_id, nonce in cases:
            token = tokens.make_token(key, purpose, subscriber_id, nonce, now=when)
            assert token == library.dumps([subscriber_id, nonce]), (subscriber_id, nonce)
            assert not library.dumps([subscriber_id, nonce]).startswith(".")
        compressible = [7, "a" * 80]
        assert library.dumps(compressible).startswith(".")  # the library compresses this one
        token = tokens.make_token(key, purpose, *compressible, now=when)
        uncompressed = base64_encode(json.dumps(compressible, separators=(",", ":")))
        assert token == library.make_signer().sign(uncompressed).decode()
        assert library.loads(token) == compressible
