"""Read-then-write sequences stay exclusive on both backends when requests run at the same time."""

from __future__ import annotations

import threading
from datetime import timedelta

from notifier.subscriptions import Preferences, Visitor, subscribe

from .helpers import add_subscriber, table


def run_together(count: int, fn) -> list:
    """Start `count` threads on a barrier so their transactions really overlap."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list = []

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn()
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


def test_a_double_clicked_resend_creates_one_resend(db, clock):
    add_subscriber(db, "anna@example.com", now=clock())
    nid = db.create_notification(
        "announcement", {"kind": "announcement"}, clock(), clock() + timedelta(hours=1), audience={}
    )
    db.fan_out(nid, clock())
    [row] = db.claim_due("w", clock(), clock() + timedelta(minutes=1), 10)
    db.mark_failed([row["id"]], clock(), "HTTP 400: bad", "w")

    results = run_together(
        4, lambda: db.resend(nid, "failed", clock(), clock() + timedelta(hours=1))
    )

    assert sorted(count for _, count in results) == [0, 0, 0, 1]
    assert len(table(db, "notifications")) == 2
    assert [d["email"] for d in table(db, "deliveries")] == ["anna@example.com"] * 2


def test_the_same_new_address_submitted_at_once_is_one_subscriber(db, settings, clock):
    prefs = Preferences(language="de", timezone="Europe/Berlin")

    def sign_up():
        return subscribe(db, settings, "ada@example.com", prefs, Visitor("192.0.2.1", "t"), clock())

    outcomes = run_together(4, sign_up)

    assert sorted(str(o.previous_state) for o in outcomes) == [
        "None",
        "pending",
        "pending",
        "pending",
    ]
    assert [s["email"] for s in table(db, "subscribers")] == ["ada@example.com"]
    # Four requests at once still respect one confirmation mail per 15 minutes.
    assert len([n for n in table(db, "notifications") if n["kind"] == "confirmation"]) == 1
