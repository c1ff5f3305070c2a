"""`_query_long`: the same rows as `_query`, read on SQLite as one packed JSON row.

SQLite hands a long result over one row at a time, each step a GIL hand-over
(SQLiteStore._raw_query_long); the dispatcher's long reads (the claim, the still-sending
check, mailed_before) use `_query_long` instead. These tests hold it to `_query`'s answer on
every kind of value those results carry, on both backends.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from notifier.store.dispatch import CLAIMED

from .helpers import add_subscriber

AWKWARD = [
    "plain@example.com",
    "Jürgen Größe <j@example.com>",
    'quote " backslash \\ slash / tab \t newline \n end',
    "emoji 🚨 and CJK 障害 and RTL שלום",
    "\u2028 line separator, control \x01",
    "",
]


def _rows(db, sql, params, columns):
    return db._query(sql, params), db._query_long(sql, params, columns)


def test_every_kind_of_value_comes_back_as_query_returns_it(db):
    now = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)
    ids = [add_subscriber(db, f"u{i}@example.com", now=now) for i in range(len(AWKWARD))]
    for sid, text in zip(ids, AWKWARD, strict=True):
        db._execute(
            "UPDATE subscribers SET link_nonce = ?, token_nonce = NULL, unsubscribed_at = ? "
            "WHERE id = ?",
            [text, now if sid % 2 else None, sid],
        )
    sql = (
        "SELECT id, email, link_nonce, token_nonce, unsubscribed_at, confirmed_at, "
        "9007199254740993 AS big, -1 AS negative FROM subscribers WHERE id >= ? ORDER BY id"
    )
    columns = (
        "id", "email", "link_nonce", "token_nonce", "unsubscribed_at", "confirmed_at",
        "big", "negative",
    )  # fmt: skip
    plain, packed = _rows(db, sql, [ids[0]], columns)
    assert len(plain) == len(AWKWARD)
    # Row order is the caller's business (json_group_array does not promise it).
    assert sorted(packed, key=lambda r: r["id"]) == plain
    assert [r["link_nonce"] for r in plain] == AWKWARD
    assert [r["unsubscribed_at"] for r in plain] == [now if i % 2 else None for i in ids]
    assert plain[0]["big"] == 9007199254740993  # beyond a double's exact integers


def test_an_empty_result_is_an_empty_list(db):
    sql = "SELECT id, email FROM subscribers WHERE id < 0"
    assert _rows(db, sql, [], ("id", "email")) == ([], [])


def test_the_claim_returns_what_the_update_returning_form_returned(db, clock):
    """The claim on either backend returns each leased row's CLAIMED columns, and leases
    exactly those rows: state 'sending', this owner, this lease."""
    from .test_dispatch import CONTENT

    now = clock()
    for i in range(5):
        add_subscriber(db, f"claim{i}@example.com", now=now)
    nid = db.create_notification("incident", CONTENT, now, now + timedelta(hours=2))
    assert db.fan_out(nid, now) == 5
    lease = now + timedelta(minutes=5)
    rows = db.claim_due("w1", now, lease, 3)
    assert [sorted(r) for r in rows] == [sorted(CLAIMED)] * 3
    leased = db._query(
        "SELECT id, notification_id, subscriber_id, email, language, timezone, attempts, "
        "possible_duplicate, priority FROM deliveries WHERE state = 'sending' "
        "AND lease_owner = 'w1' AND lease_expires_at = ? ORDER BY id",
        [lease],
    )
    assert rows == leased
    assert db._scalar("SELECT count(*) FROM deliveries WHERE state = 'pending'") == 2
