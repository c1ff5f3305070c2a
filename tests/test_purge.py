"""The hourly purge: sign-ups that never opted in go, everyone else stays."""

from __future__ import annotations

from datetime import timedelta

from notifier.notifications import queue_personal
from notifier.subscriptions import purge_unconfirmed

from .helpers import add_subscriber, table


def test_purge_removes_only_addresses_that_never_opted_in(db, clock):
    old = clock() - timedelta(days=8)
    pending = add_subscriber(db, "pending@example.com", now=old, state="pending")
    add_subscriber(db, "called-off@example.com", now=old, state="unsubscribed")  # no opt-in
    left = add_subscriber(db, "left@example.com", now=old, state="unsubscribed")
    fresh = add_subscriber(db, "fresh@example.com", now=clock(), state="pending")
    add_subscriber(db, "member@example.com", now=old)
    db._execute("UPDATE subscribers SET confirmed_at = ? WHERE id = ?", [old, left])
    db._execute("UPDATE subscribers SET updated_at = ? WHERE id <> ?", [old, fresh])
    for sid in (pending, left, fresh):
        queue_personal(db, "confirmation" if sid != left else "receipt", sid, old)

    assert purge_unconfirmed(db, clock()) == 2

    assert [s["email"] for s in table(db, "subscribers")] == [
        "left@example.com",
        "fresh@example.com",
        "member@example.com",
    ]
    # Their confirmation mails went with them; other people's personal mails stayed (the
    # three were queued in the same minute: one shared notification per kind, issue 14).
    assert db._query(
        "SELECT n.kind, n.audience, d.subscriber_id FROM notifications n "
        "LEFT JOIN deliveries d ON d.notification_id = n.id ORDER BY n.id, d.id"
    ) == [
        {"kind": "confirmation", "audience": None, "subscriber_id": fresh},
        {"kind": "receipt", "audience": None, "subscriber_id": left},
    ]
