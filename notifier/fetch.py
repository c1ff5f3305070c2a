"""HTTP fetching of feeds and Statuspage JSON: timeouts, conditional GET, a size cap.

feedparser can fetch URLs itself but has no timeouts, so we fetch with httpx and hand it bytes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
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


def _timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(5.0, seconds))


def make_client(timeout_seconds: float, user_agent: str = USER_AGENT) -> httpx.Client:
    """A client with separate connect and read timeouts that follows (and logs) redirects."""
    return httpx.Client(
        timeout=_timeout(timeout_seconds),
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
    timeout_seconds: float | None = None,
) -> Fetched:
    """GET with If-None-Match / If-Modified-Since; 200 and 304 are answers, all else FetchError.

    httpx's read timeout bounds each read, not the whole body: a server that trickles a byte
    every few seconds would hold the poll forever. `deadline_seconds` (default: the read
    timeout) bounds the whole request. `timeout_seconds` replaces the client's timeouts for
    this request (connect at most 5 s), e.g. cut to what a shutdown budget leaves.
    """
    read = timeout_seconds if timeout_seconds is not None else client.timeout.read
    budget = deadline_seconds if deadline_seconds is not None else read
    deadline = None if budget is None else time.monotonic() + budget
    headers = {"Accept": accept}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    options = {} if timeout_seconds is None else {"timeout": _timeout(timeout_seconds)}
    try:
        with client.stream("GET", url, headers=headers, **options) as response:
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


class Pending:
    """A fetch running on its own daemon thread.

    A host that accepts a connection and never answers holds a read for the whole timeout, and
    a thread blocked in a socket read cannot be interrupted. Waiting for a Pending fetch can
    stop at any deadline instead; the fetch left behind only holds its daemon thread, which
    dies with the process (it writes nothing anywhere). `on_done(self)` runs when it ends.
    """

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        on_done: Callable[[Pending], None] | None = None,
        **options,
    ):
        self.url = url
        self.started = time.monotonic()
        self._done = threading.Event()
        self._result: Fetched | None = None
        self._error: Exception | None = None
        self._on_done = on_done
        self._thread = threading.Thread(
            target=self._run, args=(client, options), name=f"fetch {url}", daemon=True
        )
        self._thread.start()

    def _run(self, client: httpx.Client, options: dict) -> None:
        try:
            self._result = fetch(client, self.url, **options)
        except Exception as exc:  # FetchError, or a bug: raised again in the waiting thread
            self._error = exc
        finally:
            self._done.set()
            if self._on_done is not None:
                self._on_done(self)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once the fetch ended (answer or error)."""
        return self._done.wait(timeout)

    def result(self) -> Fetched:
        """The answer; raises what fetch raised (FetchError). Only after it ended."""
        if not self._done.is_set():
            raise RuntimeError(f"fetch of {self.url} has not ended")
        if self._error is not None:
            raise self._error
        return self._result
