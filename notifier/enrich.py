"""Best-effort enrichment from the Statuspage JSON API of the same page.

The feeds say what happened; only the JSON API says which components were affected and how
badly. It is optional: when it cannot be reached nothing waits for it, and notifications go to
everyone who chose any component of that page (see DESIGN.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

import httpx

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
            data = parse_incident_components(_get_json(client, url, time_left))
        except FetchError as exc:
            backoff.tried(key, now, ok=False, error=f"incident enrichment skipped: {exc}")
            return done
        done += _apply(store, wanted, data, now)
        if not wanted:
            break
    backoff.tried(key, now, ok=True)
    return done


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
        except OutOfTime as exc:
            log.info("enrichment stopped before %s: no time left in this poll", exc)
            return
        except Exception:
            log.exception("enrichment of %s failed", feed.get("url"))
