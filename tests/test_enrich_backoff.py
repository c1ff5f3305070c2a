"""An unreachable JSON API costs one request and one warning, then waits before trying again."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

from notifier import jobs

from .helpers import atom


def api_requests(feed_server) -> list[str]:
    return [r["path"] for r in feed_server.requests if "/api/v2/" in r["path"]]


def test_a_failing_json_api_is_not_asked_on_every_poll(app, settings, feed_server, clock, caplog):
    url = feed_server.url("/history.atom")
    app.extensions["settings"] = replace(settings, feed_urls=(url,))
    entry = {"key": "inc000000001", "title": "X",
             "updates": [(clock() - timedelta(hours=1), "Resolved", "Old.")]}  # fmt: skip
    feed_server.set("/history.atom", atom([entry]))
    jobs.poll(app)  # baseline; the API answers 404 (no route)
    tried = ["/api/v2/components.json", "/api/v2/incidents.json"]
    assert api_requests(feed_server) == tried

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="notifier.enrich"):
        for _ in range(3):
            clock.advance(minutes=1)
            jobs.poll(app)
    assert api_requests(feed_server) == tried
    assert caplog.records == []

    # A new incident is worth one immediate try of the incidents endpoint.
    entry["updates"] = [*entry["updates"], (clock(), "Postmortem", "Root cause.")]
    feed_server.set("/history.atom", atom([entry]))
    jobs.poll(app)
    assert api_requests(feed_server)[2:] == ["/api/v2/incidents.json"]

    clock.advance(minutes=5)
    jobs.poll(app)  # backoff over for the catalogue; the incident is still unknown
    assert api_requests(feed_server)[3:] == ["/api/v2/components.json"]
    clock.advance(minutes=5)
    jobs.poll(app)
    assert api_requests(feed_server)[4:] == ["/api/v2/incidents.json"]
