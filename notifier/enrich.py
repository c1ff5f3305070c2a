"""Best-effort enrichment from the Statuspage JSON API of the same page.

The feeds say what happened; only the JSON API says which components were affected and how
badly. It is optional: when it cannot be reached nothing waits for it, and notifications go to
everyone who chose any component of that page (see DESIGN.md).

It is also the second source of maintenance windows (issue 11; see apply_windows): its
`scheduled_for` / `scheduled_until` move a window the feed may not show any more (the feed's
banner goes once a maintenance starts), and /api/v2/scheduled-maintenances.json, the 50 most
recent maintenances in every state (Statuspage's documented statuses: scheduled, in progress,
verifying, completed), stops listing an upcoming maintenance its page deleted, which is how a
Statuspage maintenance is called off.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import httpx

from .changes import OPEN_MAINTENANCE, moved_window, plausible_shift
from .fetch import FetchError, fetch
from .shutdown import Shutdown

log = logging.getLogger(__name__)

CATALOGUE_MAX_AGE = timedelta(hours=1)
ENRICH_WINDOW = timedelta(days=3)
JSON_MAX_BYTES = 2 * 1024 * 1024
RETRY_AFTER = timedelta(minutes=5)
RETRY_CAP = timedelta(hours=1)


class Backoff:
    """When to try an endpoint again, per process. It is a courtesy, not state worth keeping:
    a restarted worker simply tries once more. Without it an unreachable JSON API would cost
    two requests and two warnings on every poll."""

    def __init__(self):
        self._next: dict[str, datetime] = {}
        self._failures: dict[str, int] = {}
        self.last_try: dict[str, datetime] = {}

    def due(self, key: str, now: datetime) -> bool:
        return now >= self._next.get(key, now)

    def failing(self, key: str) -> bool:
        """Whether the last try of `key` failed."""
        return key in self._failures

    def tried(self, key: str, now: datetime, *, ok: bool, error: str = "") -> None:
        self.last_try[key] = now
        if ok:
            if self._failures.pop(key, 0):
                log.info("enrichment from %s works again", key)
            self._next[key] = now + RETRY_AFTER  # only matters when nothing new is pending
            return
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        wait = min(RETRY_CAP, RETRY_AFTER * 2 ** (failures - 1))
        self._next[key] = now + wait
        log.warning("%s; next try in %d min", error, wait.total_seconds() // 60)


class OutOfTime(Exception):
    """The poll (or the shutdown budget) leaves no time for another request."""


# Seconds the next request may take; 0 or less: start none. None: the client's timeouts.
TimeLeft = Callable[[], float] | None


def _get_json(client: httpx.Client, url: str, time_left: TimeLeft = None) -> dict:
    seconds = None if time_left is None else time_left()
    if seconds is not None and seconds <= 0:
        raise OutOfTime(url)
    fetched = fetch(
        client, url, max_bytes=JSON_MAX_BYTES, accept="application/json", timeout_seconds=seconds
    )
    try:
        data = json.loads(fetched.body)
    except ValueError as exc:
        raise FetchError(f"{url} did not return JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise FetchError(f"{url} returned JSON that is not an object")
    return data


def parse_components(data: dict) -> list[dict]:
    """Components from /api/v2/components.json (or summary.json), in page order."""
    items = data.get("components")
    return [row for c in (items if isinstance(items, list) else []) if (row := _component(c))]


def _component(c) -> dict | None:
    """One catalogue row, or None for an item we cannot use (the rest of the page still is)."""
    if not isinstance(c, dict) or not c.get("id") or not c.get("name"):
        return None
    try:
        position = int(c.get("position") or 0)
    except (TypeError, ValueError):
        position = 0
    group_id, status = c.get("group_id"), c.get("status")
    return {
        "id": str(c["id"]),
        "name": str(c["name"])[:200],
        "description": (str(c["description"])[:500] if c.get("description") else None),
        "group_id": str(group_id) if isinstance(group_id, str | int) else None,
        "group": c.get("group") is True,
        "position": position,
        "status": status if isinstance(status, str) else None,
        "only_show_if_degraded": c.get("only_show_if_degraded") is True,
        "showcase": c.get("showcase", True) is not False,
    }


def parse_incident_components(data: dict) -> dict[str, tuple[list[str], str | None]]:
    """code -> (component ids, impact) from incidents.json or scheduled-maintenances.json."""
    found = {}
    if isinstance(data.get("incident"), dict):  # /api/v2/incidents/<code>.json
        items = [data["incident"]]
    else:
        lists = (data.get("incidents"), data.get("scheduled_maintenances"))
        items = next((v for v in lists if isinstance(v, list) and v), [])
    for item in _dicts(items):
        if not item.get("id"):
            continue
        ids = {str(c["id"]) for c in _dicts(item.get("components")) if c.get("id")}
        for update in _dicts(item.get("incident_updates")):
            ids.update(
                str(a["code"]) for a in _dicts(update.get("affected_components")) if a.get("code")
            )
        impact = item.get("impact")
        found[str(item["id"])] = (sorted(ids), impact if isinstance(impact, str) else None)
    return found


def _dicts(value) -> list[dict]:
    """The dict items of a JSON list; anything else (garbage from a broken API) is empty."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def sync_components(
    store,
    client: httpx.Client,
    feed: dict,
    now: datetime,
    backoff: Backoff | None = None,
    time_left: TimeLeft = None,
) -> int | None:
    """Refresh the cached catalogue when older than an hour; None when not attempted or failed.

    Raises OutOfTime when `time_left` leaves none for the request."""
    synced = feed.get("components_synced_at")
    if not feed.get("page_url") or (synced and now - synced < CATALOGUE_MAX_AGE):
        return None
    url = f"{feed['page_url']}/api/v2/components.json"
    backoff = backoff or Backoff()
    if not backoff.due(url, now):
        return None
    try:
        components = parse_components(_get_json(client, url, time_left))
    except FetchError as exc:
        backoff.tried(url, now, ok=False, error=f"component catalogue not refreshed: {exc}")
        return None
    backoff.tried(url, now, ok=True)
    if not components:
        log.warning("component catalogue at %s is empty; kept the cached one", url)
        return None
    return store.replace_components(feed["id"], components, now)


def enrich_incidents(
    store,
    client: httpx.Client,
    feed: dict,
    now: datetime,
    backoff: Backoff | None = None,
    time_left: TimeLeft = None,
) -> int:
    """Fill in components and impact for recently changed incidents; returns how many.

    Raises OutOfTime when `time_left` leaves none for the next request."""
    pending = store.incidents_missing_enrichment(feed["id"], now - ENRICH_WINDOW)
    if not pending or not feed.get("page_url"):
        return 0
    key = f"{feed['page_url']}/api/v2/incidents"
    backoff = backoff or Backoff()
    last = backoff.last_try.get(key)
    fresh = last is None or any(row["last_changed_at"] > last for row in pending)
    # Something changed since the last try: ask now (the API may know it already). Otherwise
    # incidents the API does not list are asked for again only after the backoff.
    if not fresh and not backoff.due(key, now):
        return 0
    wanted = {row["key"]: row["id"] for row in pending}
    done = 0
    for path in ("incidents.json", "scheduled-maintenances.json"):
        try:
            url = f"{feed['page_url']}/api/v2/{path}"
            answer = _get_json(client, url, time_left)
            data = parse_incident_components(answer)
        except FetchError as exc:
            backoff.tried(key, now, ok=False, error=f"incident enrichment skipped: {exc}")
            return done
        done += _apply(store, wanted, data, now)
        apply_windows(store, feed["id"], answer, now, full=path == MAINTENANCES)
        if path == MAINTENANCES:
            backoff.tried(f"{feed['page_url']}/api/v2/{MAINTENANCES}", now, ok=True)
        if not wanted:
            break
    backoff.tried(key, now, ok=True)
    return done


MAINTENANCES = "scheduled-maintenances.json"
# Statuspage's scheduled-maintenances.json lists "the 50 most recent scheduled maintenances"
# (its public API documentation): a shorter list is all there is.
LISTING_LIMIT = 50
CANCELLED_STATUSES = frozenset({"cancelled", "canceled"})  # not Statuspage's; pages like it


def api_time(value) -> datetime | None:
    """An API timestamp ("2022-10-05T04:00:00.000Z") -> UTC to the minute, as feeds state
    times; None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if at.tzinfo is None:
        return None
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def parse_windows(data: dict) -> dict[str, tuple[str | None, datetime | None, datetime | None]]:
    """code -> (status, scheduled_for, scheduled_until) for every item of an incidents.json or
    scheduled-maintenances.json answer (or /incidents/<code>.json); times UTC, None unknown."""
    if isinstance(data.get("incident"), dict):
        items = [data["incident"]]
    else:
        lists = (data.get("scheduled_maintenances"), data.get("incidents"))
        items = next((v for v in lists if isinstance(v, list)), [])
    found = {}
    for item in _dicts(items):
        if item.get("id"):
            status = item.get("status")
            found[str(item["id"])] = (
                status if isinstance(status, str) else None,
                api_time(item.get("scheduled_for")),
                api_time(item.get("scheduled_until")),
            )
    return found


def apply_windows(store, feed_id: int, data: dict, now: datetime, *, full: bool) -> list[dict]:
    """Record what a JSON API answer says about the feed's open maintenances; returns the
    changes recorded (store.record_window_change rows).

    - An item whose status says cancelled: `cancelled`.
    - An item whose window moves the stored one (changes.moved_window: parts it does not
      state keep theirs): `rescheduled`, status the maintenance's newest stored one.
    - With `full` (the whole scheduled-maintenances.json answer, fetched successfully): an
      upcoming maintenance it does not list is `cancelled`, when the listing would include
      it (see _would_list), it was listed before (api_listed_at: a maintenance the feed shows
      first is not cancelled because the API's cache has not caught up), its start is still
      ahead and its newest status is scheduled. An empty listing is not believed.
    - The API's first word on a window the parser doubted corrects a misreading silently
      (see _misread). Every answer that names a maintenance sets its api_listed_at.
    Runs under the feed's lock, reading the stored state there: the poller recording the same
    move from the feed, or a second worker, finds it stored and records nothing more.
    """
    reports = parse_windows(data)
    listing = data.get("scheduled_maintenances")
    full = full and isinstance(listing, list) and bool(reports)
    recorded, listed = [], []
    with store.feed_lock(feed_id):
        for row in store.open_maintenances(feed_id, now - ENRICH_WINDOW):
            stored = (row["scheduled_start_at"], row["scheduled_end_at"])
            report = reports.get(row["key"])
            if report is None:
                if full and _cancelled_by_absence(row, reports, now):
                    recorded.append(_record(store, feed_id, row, "cancelled", None, stored, now))
                continue
            listed.append(row["id"])
            status, start, end = report
            if status in CANCELLED_STATUSES:
                recorded.append(_record(store, feed_id, row, "cancelled", None, stored, now))
            elif status in OPEN_MAINTENANCE and (moved := moved_window(stored, (start, end))):
                if _misread(row, stored, moved):
                    store.correct_window(row["id"], moved)
                    log.info("maintenance %s: window as the JSON API states it", row["key"])
                else:
                    recorded.append(_record(store, feed_id, row, "rescheduled", moved, stored, now))
        store.mark_api_listed(listed, now)
    return [r for r in recorded if r is not None]


def _misread(row: dict, stored: tuple, moved: tuple) -> bool:
    """Whether the API's first word on a window the parser read with doubt (time_doubt: an
    abbreviation it could not be sure of) corrects a misreading rather than reports a move:
    every part differs by what a misread zone or year explains (changes.plausible_shift).
    Then the API's window is stored silently; a false "rescheduled" mail would tell readers
    a window moved that never did."""
    if row["api_listed_at"] is not None or not row["time_doubt"]:
        return False
    pairs = [(o, n) for o, n in zip(stored, moved, strict=True) if o and n]
    return all(o == n or plausible_shift(n - o) for o, n in pairs)


def _record(store, feed_id: int, row: dict, kind: str, window, stored, now) -> dict | None:
    status = "cancelled" if kind == "cancelled" else (row["status"] or "scheduled")
    change = store.record_window_change(
        feed_id, row["id"], row["key"], kind, status, window, stored, now
    )
    if change is not None:
        log.info("maintenance %s %s (JSON API)", row["key"], kind)
    return change


def _cancelled_by_absence(row: dict, reports: dict, now: datetime) -> bool:
    start = row["scheduled_start_at"]
    return (
        row["api_listed_at"] is not None
        and (row["status"] or "scheduled") == "scheduled"
        and start is not None
        and start > now
        and _would_list(reports, start)
    )


def _would_list(reports: dict, start: datetime) -> bool:
    """Whether the listing would hold a maintenance starting at `start`: it is shorter than
    LISTING_LIMIT, or it reaches back to a maintenance starting no later (the newest are
    listed, so one starting later would be too)."""
    return len(reports) < LISTING_LIMIT or any(
        s is not None and s <= start for _status, s, _end in reports.values()
    )


def check_windows(
    store,
    client: httpx.Client,
    feed: dict,
    now: datetime,
    backoff: Backoff | None = None,
    time_left: TimeLeft = None,
) -> list[dict]:
    """Ask scheduled-maintenances.json about the feed's open maintenances, at most every
    RETRY_AFTER (Backoff), and apply_windows its answer in full; the changes recorded.

    Nothing is asked when the feed has no open maintenance, or while incident enrichment
    finds the API unreachable. A failed fetch changes nothing.
    Raises OutOfTime when `time_left` leaves none for the request."""
    if not feed.get("page_url") or not store.open_maintenances(feed["id"], now - ENRICH_WINDOW):
        return []
    url = f"{feed['page_url']}/api/v2/{MAINTENANCES}"
    backoff = backoff or Backoff()
    # While incident enrichment finds the API down, its backoff speaks for this one too: one
    # warning per outage, not two.
    if not backoff.due(url, now) or backoff.failing(f"{feed['page_url']}/api/v2/incidents"):
        return []
    try:
        data = _get_json(client, url, time_left)
    except FetchError as exc:
        backoff.tried(url, now, ok=False, error=f"maintenance windows not checked: {exc}")
        return []
    backoff.tried(url, now, ok=True)
    return apply_windows(store, feed["id"], data, now, full=True)


def _apply(store, wanted: dict[str, int], data: dict, now: datetime) -> int:
    done = 0
    for key in [k for k in wanted if k in data]:
        components, impact = data[key]
        store.set_incident_enrichment(wanted.pop(key), components, impact, now)
        done += 1
    return done


def enrich_feeds(
    store,
    client: httpx.Client,
    feeds: Iterable[dict],
    now: datetime,
    backoff: Backoff | None = None,
    *,
    stop: Shutdown | None = None,
    until: float | None = None,
) -> None:
    """Both enrichments for every feed; never raises for network trouble.

    Each request's timeout is the client's read timeout cut to `until` (the poll's monotonic
    deadline) and to the shutdown budget; after `stop` no request starts. What is left out
    is asked for on the next poll.
    """
    backoff = backoff or Backoff()
    stop = stop or Shutdown()
    cap = client.timeout.read or 5.0

    def time_left() -> float:
        return 0.0 if stop.is_set() else stop.timeout(cap, until)

    for feed in feeds:
        try:
            sync_components(store, client, feed, now, backoff, time_left)
            enrich_incidents(store, client, feed, now, backoff, time_left)
            check_windows(store, client, feed, now, backoff, time_left)
        except OutOfTime as exc:
            log.info("enrichment stopped before %s: no time left in this poll", exc)
            return
        except Exception:
            log.exception("enrichment of %s failed", feed.get("url"))
