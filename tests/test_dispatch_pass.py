"""One worker dispatch pass (jobs.dispatch): mail, then Slack/Teams/webhook rows.

Expiring stale rows and reclaiming dead workers' leases cover every channel and scan every
pending row: a pass does them once, in the mail run, and the channel run again only when the
mail run halted before it got there (sending paused, rate limited) or did them more than a
moment ago (a long fan-out, during which a notification may expire).
"""

from __future__ import annotations

from datetime import timedelta

from notifier import jobs
from notifier.delivery.channels import ChannelDispatcher
from notifier.delivery.dispatch import Dispatcher
from notifier.delivery.mailer import SendResult

from .helpers import add_subscriber
from .test_channel_dispatch import SECRET, add_channel, delivery
from .test_dispatch import CONTENT


def _counting(db, monkeypatch) -> list[str]:
    calls = []
    for name in ("expire_due", "reclaim_expired_leases"):
        original = getattr(db, name)

        def counted(now, _name=name, _original=original):
            calls.append(_name)
            return _original(now)

        monkeypatch.setattr(db, name, counted)
    return calls


def test_a_pass_expires_and_reclaims_once(app, db, monkeypatch):
    calls = _counting(db, monkeypatch)
    jobs.dispatch(app)
    assert calls == ["expire_due", "reclaim_expired_leases"]


def test_a_pass_whose_mail_run_halts_first_still_expires_and_reclaims_once(
    app, db, clock, monkeypatch
):
    db.pause_sending("test", clock())
    calls = _counting(db, monkeypatch)
    jobs.dispatch(app)
    assert calls == ["expire_due", "reclaim_expired_leases"]


class _SlowMail:
    """A mail backend whose every request takes ten minutes of the test clock: a long
    fan-out."""

    max_batch = 1000

    def __init__(self, clock):
        self.clock = clock

    def send(self, message, recipients, *, timeout_seconds=None):
        self.clock.advance(minutes=10)
        return SendResult("accepted", 202, "m1", None, None)


def test_a_channel_row_whose_notification_expired_during_a_long_mail_run_is_not_sent(
    db, settings, clock
):
    """Found in review: with the mail run's expiry taken as done, a webhook row whose
    notification expired while a long fan-out was being sent went out. The channel run
    repeats the expiry unless the mail run's was a moment ago."""
    now = clock()
    add_subscriber(db, "a@example.com", now=now)
    hook = add_channel(db, "webhook", "https://hooks.example.com/w", now=now, secret=SECRET)
    nid = db.create_notification("incident", CONTENT, now, now + timedelta(minutes=5), audience={})
    db.fan_out(nid, now)
    mail = Dispatcher(db, _SlowMail(clock), settings, clock, owner="w1")
    assert mail.run().sent == 1
    assert mail.housekept_at == now and clock() == now + timedelta(minutes=10)

    stats = ChannelDispatcher(db, settings, clock, owner="w1", housekept_at=mail.housekept_at).run()

    assert (stats.expired, stats.requests) == (1, 0)
    row = delivery(db, nid, hook)
    assert (row["state"], row["reason"]) == ("failed", "expired")
