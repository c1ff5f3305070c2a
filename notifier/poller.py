"""One poll of each configured feed: fetch, parse, detect, store. I/O around the pure core."""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from .changes import detect_changes
from .feed import FeedError, ParsedFeed, parse_feed
from .fetch import FetchError, Pending, fetch
from .metrics import count_polls
from .shutdown import Shutdown

log = logging.getLogger(__name__)

_HISTORY_SUFFIX = re.compile(r"/history\.(atom|rss)(\?.*)?\Z")
# Feeds fetched at once: a slow page must not delay the others, and a few pages is all we poll.
POLL_CONCURRENCY = 4
DEFAULT_FETCH_SECONDS = 10.0  # a client without a read timeout
WAKE_SECONDS = 0.25  # how often a waiting poll looks at the stop flag
# A fetch's own timeout ends it at the poll's (or the budget's) limit; this is how long past
# the limit it may take to say so before it is left behind (a connect and a read, each slow).
OVERRUN_SECONDS = 1.0


@dataclass(frozen=True)
class PollResult:
    url: str
    outcome: str  # baseline | changes | no_changes | not_modified | same_body | error
    changes: tuple[dict, ...] = ()
    entries: int = 0
    error: str | None = None
    warnings: tuple[str, ...] = field(default=())

    def summary(self) -> str:
        """One line for `poll-once` and the worker log."""
        if self.outcome == "error":
            return f"{self.url}: error: {self.error}"
        text = {
            "baseline": f"baseline recorded ({self.entries} entries, nothing sent)",
            "changes": f"{len(self.changes)} change(s) recorded from {self.entries} entries",
            "no_changes": f"no changes in {self.entries} entries",
            "not_modified": "not modified (304)",
            "same_body": "body unchanged since last poll",
        }[self.outcome]
        if self.warnings:
            text += f"; {len(self.warnings)} warning(s): {self.warnings[0]}"
        return f"{self.url}: {text}"


def page_url_for(feed_url: str) -> str:
    """The Statuspage page behind a feed URL: …/history.atom -> … (for /api/v2/ calls)."""
    base = _HISTORY_SUFFIX.sub("", feed_url)
    if base == feed_url:
        parsed = httpx.URL(feed_url)
        base = f"{parsed.scheme}://{parsed.netloc.decode()}"
    return base.rstrip("/")


def body_digest(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def parse_usable(
    body: bytes, now: datetime, had_entries: Callable[[], bool] | None = None
) -> ParsedFeed:
    """parse_feed, plus the poller's rules for a feed without usable entries.

    - A well-formed feed that lists no entries at all is usable: a brand-new Statuspage page has
      one, and it is a valid (empty) baseline, after which the first incident is new (issue 16).
    - A feed that lists entries none of which could be read (every one damaged, linkless, out
      of range …) is an error: FeedError, the previous state is kept and the poll counts as
      failed. Read as a baseline it would make every entry look new once it reads again.
    - A feed that lists no entries although earlier polls stored incidents from it
      (`had_entries()`, asked only then) is an error too. Statuspage's history feeds keep the
      newest entries and let old ones age out one at a time; a page with history does not drop
      to zero entries between two polls, so that is a broken deploy, cache or proxy, and the
      health alert must see it. Nothing else changes: entries leaving a feed are never events,
      and when they come back they are known. (A page whose owner deleted every incident stays
      failing until it posts a new one; the dashboard shows the error text.)
    Bodies that are not Atom or RSS, cut off or not well-formed raise FeedError in parse_feed.
    """
    parsed = parse_feed(body, now)
    if parsed.entries:
        return parsed
    if parsed.found:
        why = f" ({parsed.problems[0]})" if parsed.problems else ""
        raise FeedError(
            f"none of the feed's {parsed.found} entries is usable{why}; kept the previous state"
        )
    if had_entries is not None and had_entries():
        raise FeedError(
            "the feed lists no entries, but earlier polls stored incidents from it; "
            "kept the previous state"
        )
    return parsed


def ingest(store, feed_id: int, parsed: ParsedFeed, now: datetime, **feed_state) -> PollResult:
    """Detect and store the changes in a parsed feed, atomically, under the feed's lock.

    Poller and `feed replay` both come through here. The seen-state is read inside the lock,
    so a second poller running at the same moment finds this one's work and records nothing.
    A baseline also stores the entries skipped as damaged, as far as they read (see
    ParsedFeed.damaged_entries): repaired later, they are known, not new. After the baseline a
    damaged entry is left alone: neither news nor gone.
    """
    with store.feed_lock(feed_id):
        feed = store.feed_by_id(feed_id)
        baseline = feed["baseline_at"] is None
        entries = parsed.entries + (parsed.damaged_entries if baseline else ())
        seen = store.seen_incidents(feed_id, {e.key: e.content_hash for e in entries})
        detection = detect_changes(entries, seen, baseline=baseline)
        changes = store.save_detection(feed_id, detection, now, baseline=baseline)
        store.record_poll_success(feed_id, now, title=parsed.title or None, **feed_state)
        if parsed.problems:
            store.record_feed_warning(feed_id, now, "; ".join(parsed.problems))
    outcome = "baseline" if baseline else ("changes" if changes else "no_changes")
    return PollResult(
        url=feed["url"],
        outcome=outcome,
        changes=tuple(changes),
        entries=len(parsed.entries),
        warnings=parsed.problems,
    )


def poll_feed(store, client: httpx.Client, url: str, now: datetime, max_bytes: int) -> PollResult:
    """Poll one feed; every failure is logged and recorded in its state, never raised."""
    feed = store.ensure_feed(url, now)
    try:
        fetched = fetch(
            client, url, etag=feed["etag"], last_modified=feed["last_modified"], max_bytes=max_bytes
        )
    except FetchError as exc:
        return _failed(store, feed, now, str(exc))
    return _record_fetch(store, feed, fetched, now)


def _record_fetch(store, feed: dict, fetched, now: datetime) -> PollResult:
    """Store what one fetch brought: 304, the same body, or a new body to parse and ingest."""
    url = feed["url"]
    if fetched.not_modified:
        store.record_poll_success(feed["id"], now)
        return PollResult(url, "not_modified")
    digest = body_digest(fetched.body)
    # Statuspage serves no Last-Modified and its CDN does not always answer 304; an identical
    # body means nothing can have changed, so skip parsing (the expensive part) entirely.
    if digest == feed["body_hash"] and feed["baseline_at"] is not None:
        store.record_poll_success(feed["id"], now, etag=fetched.etag)
        return PollResult(url, "same_body")
    try:
        parsed = parse_usable(fetched.body, now, lambda: store.feed_has_incidents(feed["id"]))
    except FeedError as exc:
        return _failed(store, feed, now, f"unusable feed from {url}: {exc}")
    result = ingest(
        store,
        feed["id"],
        parsed,
        now,
        etag=fetched.etag,
        last_modified=fetched.last_modified,
        body_hash=digest,
        page_url=page_url_for(url),
    )
    for warning in result.warnings:
        log.warning("feed %s: %s", url, warning)
    return result


def _failed(store, feed: dict, now: datetime, error: str) -> PollResult:
    log.error("poll failed: %s", error)
    store.record_poll_error(feed["id"], now, error)
    return PollResult(feed["url"], "error", error=error)


def poll_all(
    store,
    client: httpx.Client,
    urls: Sequence[str],
    now: datetime,
    max_bytes: int,
    *,
    stop: Shutdown | None = None,
    until: float | None = None,
    lost: threading.Event | None = None,
) -> list[PollResult]:
    """Poll every feed on its own; one failing feed never stops the others.

    Up to POLL_CONCURRENCY fetches run at once, each on a daemon thread (fetch.Pending); the
    database work stays on this thread, one feed at a time. Between feeds the loop checks the
    stop flag (and `lost`: the poller lease went to another worker): then no new fetch starts.
    Each fetch's timeout is the client's read timeout cut to the budget (Shutdown.timeout)
    and to `until`, the poll's own monotonic deadline: a feed still silent at `until` is
    recorded as timed out. After a stop, a fetch that has not answered when the budget's steps
    must end is cut off: logged, not recorded as the feed's failure, and left without a result.
    Results come in `urls` order.
    """
    stop = stop or Shutdown()
    cap = client.timeout.read or DEFAULT_FETCH_SECONDS
    waiting = list(enumerate(urls))
    running: dict[Pending, tuple[int, dict]] = {}
    ended: queue.SimpleQueue[Pending] = queue.SimpleQueue()
    results: dict[int, PollResult | None] = {}
    while waiting or running:
        while waiting and len(running) < POLL_CONCURRENCY and not _halted(stop, lost):
            index, url = waiting.pop(0)
            timeout = stop.timeout(cap, until)
            started = _guarded(store, url, now, _start, client, url, max_bytes, timeout, ended)
            if isinstance(started, PollResult):
                results[index] = started
            else:
                running[started[1]] = (index, started[0])
        if waiting and _halted(stop, lost):
            log.warning("poll stopped before %s", ", ".join(url for _, url in waiting))
            waiting.clear()
        if not running:
            break
        ended_next = _next_ended(ended, stop, until)
        # None: out of time. What has ended is still stored, what still runs is left behind
        # (and feeds not started yet are recorded as not polled).
        for pending in [ended_next] if ended_next else list(running):
            index, feed = running.pop(pending)
            step = _finish if pending.done else _out_of_time
            results[index] = _guarded(store, feed["url"], now, step, feed, pending, stop)
    done = [results[i] for i in sorted(results) if results[i] is not None]
    count_polls(store, done)
    return done


def _halted(stop: Shutdown, lost: threading.Event | None) -> bool:
    return stop.is_set() or (lost is not None and lost.is_set())


def _start(store, now: datetime, client, url: str, max_bytes: int, timeout: float, ended):
    """(feed row, its running fetch), or the PollResult when the poll has no time left."""
    feed = store.ensure_feed(url, now)
    if timeout <= 0:
        return _failed(store, feed, now, f"not polled: the poll ran out of time before {url}")
    pending = Pending(
        client,
        url,
        on_done=ended.put,
        etag=feed["etag"],
        last_modified=feed["last_modified"],
        max_bytes=max_bytes,
        timeout_seconds=timeout,
    )
    return feed, pending


def _next_ended(ended: queue.SimpleQueue, stop: Shutdown, until: float | None) -> Pending | None:
    """The next fetch to end, or None when the poll's time (or the budget's) is up first."""
    while True:
        # Re-read the limits on every turn: a stop can come while we wait.
        limits = [t for t in (until, stop.steps_end_at) if t is not None]
        left = min(limits) + OVERRUN_SECONDS - time.monotonic() if limits else WAKE_SECONDS
        if left <= 0:
            return None
        try:
            return ended.get(timeout=min(WAKE_SECONDS, left))
        except queue.Empty:
            continue


def _finish(store, now: datetime, feed: dict, pending: Pending, stop: Shutdown):
    try:
        fetched = pending.result()
    except FetchError as exc:
        if stop.is_set():  # its timeout was cut to the budget: not the feed's failure
            log.warning("poll %s: cut off by the shutdown (%s); not recorded", feed["url"], exc)
            return None
        return _failed(store, feed, now, str(exc))
    result = _record_fetch(store, feed, fetched, now)
    if result.outcome != "error":  # failures were logged as one ERROR line already
        log.info("poll %s", result.summary())
    return result


def _out_of_time(store, now: datetime, feed: dict, pending: Pending, stop: Shutdown):
    seconds = time.monotonic() - pending.started
    if stop.is_set():
        log.warning(
            "poll %s: cut off by the shutdown after %.1fs; not recorded", feed["url"], seconds
        )
        return None
    error = f"timed out fetching {feed['url']} (no answer within the poll's {seconds:.1f}s)"
    return _failed(store, feed, now, error)


def _guarded(store, url: str, now: datetime, step, *args):
    """step(store, now, *args) for one feed; a bug or a database fault is recorded for that
    feed, not raised."""
    try:
        return step(store, now, *args)
    except Exception as exc:
        log.exception("poll of %s crashed", url)
        result = PollResult(url, "error", error=f"internal error: {type(exc).__name__}: {exc}")
        try:
            store.record_poll_error(store.ensure_feed(url, now)["id"], now, result.error)
        except Exception:
            log.exception("could not record the poll error for %s", url)
        return result


def api_answer(body: bytes) -> dict | None:
    """A Statuspage JSON API answer among replay snapshots: the object of a body that is JSON
    with a `scheduled_maintenances` or `incidents` list (or an `incident`); None for anything
    that is not JSON. FeedError for JSON that is none of these."""
    if body.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, dict) and (
        isinstance(data.get("scheduled_maintenances"), list)
        or isinstance(data.get("incidents"), list)
        or isinstance(data.get("incident"), dict)
    ):
        return data
    raise FeedError(
        "JSON, but not a Statuspage scheduled-maintenances.json or incidents.json answer"
    )


def captured_at(answer: dict) -> datetime | None:
    """When a saved JSON API answer was current: its page's `updated_at` (Statuspage writes
    it in every v2 answer), None when absent or unreadable."""
    from .enrich import api_time

    page = answer.get("page")
    return api_time(page.get("updated_at")) if isinstance(page, dict) else None


def replay(
    snapshots: Sequence[bytes], start: datetime | None = None, warnings: list[str] | None = None
) -> list[dict]:
    """Treat the bodies as successive polls of one feed; return the events, as the poller sees them.

    Runs the poller's own parse_usable and ingest against a throwaway SQLite store. FeedError
    ("snapshot N: why") for a snapshot the poller would refuse. Entries skipped for bytes that
    are not UTF-8 are added to `warnings`, when given, as "snapshot N: entry …; skipped".
    A snapshot that is a Statuspage JSON API answer (see api_answer) is applied as the
    enrichment applies one at that point (enrich.apply_windows; in full when it is a
    scheduled-maintenances.json answer), at the time it was captured (captured_at) when it
    says so: window changes only, its window events are returned.
    """
    from .enrich import apply_windows
    from .store.sqlite import SQLiteStore

    now = start or datetime.now(UTC)
    events = []
    with tempfile.TemporaryDirectory(prefix="replay-") as tmp:
        store = SQLiteStore(Path(tmp) / "replay.db")
        store.upgrade()
        try:
            feed_id = store.ensure_feed("replay:", now)["id"]
            for index, body in enumerate(snapshots):
                try:
                    answer = api_answer(body)
                    if answer is not None:
                        full = isinstance(answer.get("scheduled_maintenances"), list)
                        # A capture is judged at the time it was taken, when it says so.
                        at = captured_at(answer) or now
                        for change in apply_windows(store, feed_id, answer, at, full=full):
                            events.append({"snapshot": index, **change})
                        now += timedelta(minutes=1)
                        continue
                    parsed = parse_usable(body, now, lambda: store.feed_has_incidents(feed_id))
                except FeedError as exc:
                    raise FeedError(f"snapshot {index}: {exc}") from None
                if warnings is not None:
                    warnings.extend(f"snapshot {index}: {line}" for line in parsed.damaged)
                result = ingest(store, feed_id, parsed, now)
                for change in result.changes:
                    events.append({"snapshot": index, **change})
                now += timedelta(minutes=1)
        finally:
            store.close()
    return events
