"""One worker dispatch pass (jobs.dispatch): mail, then Slack/Teams/webhook rows.

Expiring stale rows and reclaiming dead workers' leases cover every channel and scan every
pending row: a pass does them once, in the mail run, and the channel run only when the mail
run halted before it got there (sending paused, rate limited).
"""

from __future__ import annotations

from notifier import jobs


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
