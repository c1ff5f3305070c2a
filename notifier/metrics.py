"""GET /metrics: Prometheus text exposition format (prometheus_client), behind a bearer token.

Access: `Authorization: Bearer <METRICS_TOKEN>` (RFC 6750 section 2.1), compared in constant
time. METRICS_TOKEN unset: 404, as for any unknown page. Missing or wrong token: 401 with
`WWW-Authenticate: Bearer realm="metrics"` (RFC 6750 section 3). GET and HEAD only, never
cached (`Cache-Control: no-store`), rate-limited per client address like the other pages
(notifier/ratelimit.py, the RATE_LIMIT_ONE_CLICK budget: generous for a scraper every 15 s).

Where the numbers come from. Web and worker are separate processes, and there may be several
worker dynos, so a scrape of one web process cannot see any worker's memory. Therefore:

- Gauges are read from the database at scrape time by a custom collector (GaugeMetricFamily):
  deliveries by state and kind, the age of the oldest due delivery, per feed the age of its
  last successful poll and its consecutive failures, subscribers by state and language, and
  open alerts by kind. Every web process answers the same for the same database.
- Worker counters are rows in the metric_counters table (migration 0016), one per (metric,
  label set), added to with an atomic upsert (`value = value + excluded.value`) right after
  the event: polls and changes once per poll round (poller.poll_all), a send request as its
  answer lands (dispatch). So they survive restarts and deploys, several workers add up to one
  total, and whichever web process is scraped reports all of it; Prometheus sees a counter
  that only goes up, as its rate() expects. The price is one small write per poll round and
  per SendGrid request (which already writes its outcome), nothing per scrape. The
  alternative, per-process counters labelled by dyno, needs every worker scraped on its own
  port, which Heroku worker dynos do not offer, and resets at each restart.
- The SendGrid latency histogram is kept the same way: per bucket the number of requests whose
  duration fell into it (non-cumulative, `le` = the bucket's upper bound), plus the sum and the
  count. The collector adds the buckets up into Prometheus's cumulative `le` buckets.
  A counter that cannot be written (database briefly away) is logged and skipped: counting
  never stops a poll or a send.

Names follow the Prometheus naming guide (https://prometheus.io/docs/practices/naming/):
prefix `status_notifier_`, base units (seconds), `_total` on counters. Feeds are labelled by
their position in FEED_URLS ("feed-1", …) as on /healthz: a feed URL can carry a private
page's access key, and labels end up in long-term storage.
"""

from __future__ import annotations

import hmac
import logging
from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from flask import Blueprint, Response, abort, request
from flask_babel import gettext as _
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from . import context

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)

PREFIX = "status_notifier_"
# Upper bounds (seconds) of the SendGrid request latency buckets: a Mail Send answers in a few
# hundred ms; the request timeout (SENDGRID_TIMEOUT_SECONDS, default 10) caps the rest.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
POLLS = "polls"
CHANGES = "changes_recorded"
SENDS = "sendgrid_requests"
LATENCY = "sendgrid_request_duration_seconds"


# --- counting (worker side) -----------------------------------------------------------
def count_polls(store, results: Iterable) -> None:
    """Count one poll round: a poll per PollResult by outcome, its changes by type."""
    amounts = []
    for result in results:
        amounts.append((POLLS, {"outcome": result.outcome}, 1))
        amounts.extend((CHANGES, {"type": c["type"]}, 1) for c in result.changes)
    _add(store, amounts)


def count_send(store, result) -> None:
    """Count one SendGrid Mail Send request (a mailer.SendResult with its duration) by outcome
    and status class ("2xx", "4xx", "5xx"; "none" when no HTTP answer came), and observe its
    duration. Results without a duration (the outbox backend: no request) are not counted."""
    count_sends(store, [result])


def count_sends(store, results) -> None:
    """`count_send` for several results in one transaction: the dispatcher counts a run's
    requests at most once a second instead of with a commit of their own per request."""
    amounts = []
    for result in results:
        seconds = getattr(result, "duration_seconds", None)
        if seconds is None:
            continue
        code = result.status_code
        status_class = f"{code // 100}xx" if code else "none"
        le = next((str(b) for b in LATENCY_BUCKETS if seconds <= b), "+Inf")
        amounts += [
            (SENDS, {"outcome": result.outcome, "status_class": status_class}, 1),
            (LATENCY + "_bucket", {"le": le}, 1),
            (LATENCY + "_sum", {}, seconds),
            (LATENCY + "_count", {}, 1),
        ]
    _add(store, amounts)


def _add(store, amounts: list) -> None:
    if not amounts:
        return
    try:
        store.add_to_counters(amounts)
    except Exception as exc:  # never let counting stop a poll or a send
        log.warning("metrics: counters not updated (%s): %s", type(exc).__name__, exc)


# --- collecting (web side, at scrape time) --------------------------------------------
class DatabaseCollector:
    """A prometheus_client custom collector: every metric read from the store per scrape."""

    def __init__(self, store, feed_urls: tuple[str, ...], now: datetime):
        self.store, self.feed_urls, self.now = store, feed_urls, now

    def collect(self):
        yield from self._deliveries()
        yield from self._feeds()
        yield from self._subscribers()
        yield self._alerts()
        yield from self._counters()

    def _deliveries(self):
        family = GaugeMetricFamily(
            PREFIX + "deliveries",
            "Delivery rows (one per recipient and notification) by state and mail kind.",
            labels=["state", "kind"],
        )
        for row in self.store.deliveries_by_state_kind():
            family.add_metric([row["state"], row["kind"]], row["count"])
        yield family
        due = self.store.oldest_due_delivery_at(self.now)
        yield GaugeMetricFamily(
            PREFIX + "oldest_due_delivery_age_seconds",
            "How long the longest-waiting due delivery has been due (0: none due).",
            value=0 if due is None else max(0.0, (self.now - due).total_seconds()),
        )

    def _feeds(self):
        age = GaugeMetricFamily(
            PREFIX + "feed_last_success_age_seconds",
            "Seconds since the feed was last polled successfully (absent: never).",
            labels=["feed"],
        )
        failures = GaugeMetricFamily(
            PREFIX + "feed_consecutive_failures",
            "Failed polls of the feed in a row (0 after a successful poll).",
            labels=["feed"],
        )
        feeds = {f["url"]: f for f in self.store.list_feeds()}
        for number, url in enumerate(self.feed_urls, start=1):
            feed, name = feeds.get(url) or {}, f"feed-{number}"
            if feed.get("last_success_at") is not None:
                seconds = (self.now - feed["last_success_at"]).total_seconds()
                age.add_metric([name], max(0.0, seconds))
            failures.add_metric([name], feed.get("consecutive_failures") or 0)
        yield age
        yield failures

    def _subscribers(self):
        family = GaugeMetricFamily(
            PREFIX + "subscribers",
            "Subscribers by state and language.",
            labels=["state", "language"],
        )
        for row in self.store.subscribers_by_state_language():
            family.add_metric([row["state"], row["language"]], row["count"])
        yield family

    def _alerts(self):
        family = GaugeMetricFamily(
            PREFIX + "open_alerts", "Open ops alerts by kind.", labels=["kind"]
        )
        for kind, count in sorted(Counter(a["kind"] for a in self.store.open_alerts()).items()):
            family.add_metric([kind], count)
        return family

    def _counters(self):
        rows: dict[str, list[dict]] = {}
        for row in self.store.metric_counters():
            rows.setdefault(row["name"], []).append(row)
        described = (
            (POLLS, "Feed polls by outcome (baseline, changes, no_changes, not_modified, "
             "same_body, error).", ["outcome"]),
            (CHANGES, "Changes recorded from feeds, by change type.", ["type"]),
            (SENDS, "SendGrid Mail Send requests by outcome and HTTP status class.",
             ["outcome", "status_class"]),
        )  # fmt: skip
        for name, documentation, labels in described:
            family = CounterMetricFamily(PREFIX + name, documentation, labels=labels)
            for row in rows.get(name, []):
                family.add_metric([row["labels"].get(label, "") for label in labels], row["value"])
            yield family
        yield _histogram(rows)


def _histogram(rows: dict[str, list[dict]]) -> HistogramMetricFamily:
    per_bucket = {r["labels"]["le"]: r["value"] for r in rows.get(LATENCY + "_bucket", [])}
    total = sum(r["value"] for r in rows.get(LATENCY + "_count", []))
    cumulative, buckets = 0.0, []
    for bound in [*map(str, LATENCY_BUCKETS), "+Inf"]:
        cumulative += per_bucket.get(bound, 0.0)
        buckets.append((bound, cumulative))
    buckets[-1] = ("+Inf", max(cumulative, total))
    family = HistogramMetricFamily(
        PREFIX + LATENCY, "Duration of SendGrid Mail Send requests, in seconds."
    )
    family.add_metric(
        [], buckets, sum_value=sum(r["value"] for r in rows.get(LATENCY + "_sum", []))
    )
    return family


def exposition(store, feed_urls: tuple[str, ...], now: datetime) -> bytes:
    """The whole scrape as Prometheus text exposition format bytes (generate_latest)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(store, feed_urls, now))
    return generate_latest(registry)


# --- the endpoint -----------------------------------------------------------------------
def _authorised(token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


@bp.get("/metrics")
def metrics():
    """200 text exposition format; 404 without METRICS_TOKEN; 401 without the right token."""
    settings = context.settings()
    if not settings.metrics_token:
        abort(404)
    headers = {"Cache-Control": "no-store"}
    if not _authorised(settings.metrics_token):
        body = _("A valid metrics token is required: send it as 'Authorization: Bearer TOKEN'.")
        headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return Response(body + "\n", 401, headers, content_type="text/plain; charset=utf-8")
    body = exposition(context.store(), settings.feed_urls, context.now())
    return Response(body, 200, headers, content_type=CONTENT_TYPE_LATEST)
