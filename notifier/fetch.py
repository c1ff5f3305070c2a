"""HTTP fetching of feeds and Statuspage JSON: timeouts, conditional GET, a size cap.

feedparser can fetch URLs itself but has no timeouts, so we fetch with httpx and hand it bytes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import httpx

log = logging.getLogger(__name__)

USER_AGENT = "status-notifier/0.1 (+https://github.com/sinch/status-notifier)"


class FetchError(RuntimeError):
    """The request failed; the message is one clear line for logs and feed state."""


@dataclass(frozen=True)
class Fetched:
    status: int
    body: bytes
    etag: str | None
    last_modified: str | None
    url: str

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def make_client(timeout_seconds: float, user_agent: str = USER_AGENT) -> httpx.Client:
    """A client with separate connect and read timeouts that follows (and logs) redirects."""
    timeout = httpx.Timeout(timeout_seconds, connect=min(5.0, timeout_seconds))
    return httpx.Client(
        timeout=timeout,
        follow_redirects=True,
        max_redirects=5,
        headers={"User-Agent": user_agent},
    )


def _describe(exc: httpx.HTTPError, url: str) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out fetching {url} ({type(exc).__name__})"
    if isinstance(exc, httpx.TooManyRedirects):
        return f"too many redirects fetching {url}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"connection closed or broken fetching {url}: {exc}"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {url}: {exc}"
    if isinstance(exc, httpx.NetworkError):  # ReadError/WriteError: reset mid-request
        return f"connection reset or broken fetching {url}: {exc}"
    return f"{type(exc).__name__} fetching {url}: {exc}"


def fetch(
    client: httpx.Client,
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int = 5 * 1024 * 1024,
    accept: str = "application/atom+xml, application/rss+xml, application/xml;q=0.9, */*;q=0.5",
    deadline_seconds: float | None = None,
) -> Fetched:
    """GET with If-None-Match / If-Modified-Since; 200 and 304 are answers, all else FetchError.

    httpx's read timeout bounds each read, not the whole body: a server that trickles a byte
    every few seconds would hold the poll forever. `deadline_seconds` (default: the client's
    read timeout) bounds the whole request.
    """
    budget = deadline_seconds if deadline_seconds is not None else client.timeout.read
    deadline = None if budget is None else time.monotonic() + budget
    headers = {"Accept": accept}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        with client.stream("GET", url, headers=headers) as response:
            for hop in response.history:
                log.info(
                    "feed %s redirected (%s) to %s",
                    hop.url,
                    hop.status_code,
                    hop.headers.get("location"),
                )
            if response.status_code == 304:
                return Fetched(304, b"", etag, last_modified, str(response.url))
            if response.status_code != 200:
                raise FetchError(f"HTTP {response.status_code} from {url}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"body of {url} is {declared} bytes, over the {max_bytes} cap")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"body of {url} exceeds the {max_bytes}-byte cap")
                if deadline is not None and time.monotonic() > deadline:
                    raise FetchError(
                        f"timed out fetching {url} (body still arriving after {budget:g}s)"
                    )
                chunks.append(chunk)
            return Fetched(
                200,
                b"".join(chunks),
                response.headers.get("etag"),
                response.headers.get("last-modified"),
                str(response.url),
            )
    except httpx.HTTPError as exc:
        raise FetchError(_describe(exc, url)) from exc
