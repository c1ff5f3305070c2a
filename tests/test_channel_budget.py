"""A channel run stops claiming after RUN_BUDGET_SECONDS (issue 12): every dispatch pass runs
mail first, then channels, so slow or hanging targets must not keep the worker from its next
mail pass. What was claimed still goes; the rest stays pending, untouched, for the next pass.
"""

from __future__ import annotations

import time
from dataclasses import replace

from notifier.delivery import channels

from . import fake_receivers
from . import test_channel_dispatch as base
from .fake_receivers import Answer
from .test_channel_dispatch import SECRET, add_channel, delivery, dispatcher, notification

receivers = fake_receivers.receivers  # the fixture: real Slack, Teams and webhook receivers
clock, ch_settings = base.clock, base.ch_settings  # fixtures: real time, private targets allowed


def test_a_run_stops_claiming_after_its_budget_and_leaves_the_rest_untouched(
    db, ch_settings, clock, receivers, monkeypatch
):
    # One request at a time: the budget is passed while the first is answered. A 10 s timeout:
    # the 0.6 s answer must land as "sent" even when a loaded machine delays it by seconds.
    settings = replace(ch_settings, channel_concurrency=1, channel_timeout_seconds=10.0)
    monkeypatch.setattr(channels, "RUN_BUDGET_SECONDS", 0.3)
    hooks = [
        add_channel(db, "webhook", receivers.webhook.url(f"/w{i}"), now=clock(), secret=SECRET)
        for i in range(4)
    ]
    for i in range(4):
        receivers.webhook.answer(f"/w{i}", Answer(200, delay_seconds=0.6))
    nid = notification(db, clock)

    started = time.monotonic()
    stats = dispatcher(db, settings, clock).run()
    elapsed = time.monotonic() - started

    # The run's own decision, exactly: one claim, then no more once the budget had passed.
    assert (stats.sent, stats.requests) == (1, 1)
    # The promise by the clock: the budget plus the claimed request's timeout, plus 2.5 s for a
    # starved thread on a loaded 2-core machine. Claiming on (4 x 0.6 s) shows in the stats.
    assert elapsed < 0.3 + settings.channel_timeout_seconds + 2.5
    rows = [delivery(db, nid, hook) for hook in hooks]
    assert sorted((r["state"], r["attempts"], r["lease_owner"]) for r in rows) == [
        ("pending", 0, None), ("pending", 0, None), ("pending", 0, None), ("sent", 1, None),
    ]  # fmt: skip
    # The next pass goes on where this one stopped.
    assert dispatcher(db, settings, clock).run().sent == 1
