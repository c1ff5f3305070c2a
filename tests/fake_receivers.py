"""Fake Slack, Teams and generic webhook receivers (issue 12): real HTTP servers on 127.0.0.1.

Each records every request whole (method, path, headers, raw body, parsed JSON) and answers
from a per-path queue of scripted answers, then its default: Slack's "ok" (200, text/plain),
Teams' 202, a webhook's 204. Scripted answers can be any status with headers (429 with
Retry-After, 5xx, 404, 410), a redirect, a hang (the answer comes after `delay_seconds`, once
the test sets `release`, or never for `hang=True`, until the server stops), or a reset
connection.

The webhook receiver checks every request's Standard Webhooks signature with the
`standardwebhooks` library when its path has a secret (`receiver.secrets[path] = "whsec_..."`):
a bad or missing signature is answered 401 and the request is recorded with `verified=False`.

Use the fixtures (`from .fake_receivers import receivers  # noqa: F401`):
`receivers.slack`, `receivers.teams`, `receivers.webhook`, each with `.url(path)`.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

DEFAULT_ANSWERS = {
    "slack": (200, {"Content-Type": "text/plain"}, b"ok"),
    "teams": (202, {}, b""),
    "webhook": (204, {}, b""),
}


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_seconds: float = 0.0
    hang: bool = False  # never answer (until the server stops)
    # Answer only once this is set (or the server stops): a test that must act while the
    # request is on the wire sets it when done, instead of racing a delay.
    release: threading.Event | None = None
    reset: bool = False  # close the connection with RST instead of answering


class _Handler(BaseHTTPRequestHandler):
    server: Receiver
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self._handle("POST")

    def do_GET(self):
        self._handle("GET")

    def do_HEAD(self):
        self._handle("HEAD")

    def _handle(self, method: str) -> None:
        server = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        record = {
            "method": method,
            "path": path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
            "json": parsed,
            "verified": None,
            "at": time.time(),
        }
        answer = server.next_answer(path)
        secret = server.secrets.get(path)
        if secret is not None and answer.status < 300:
            try:
                Webhook(secret).verify(body, dict(self.headers.items()))
                record["verified"] = True
            except WebhookVerificationError:
                record["verified"] = False
                answer = Answer(401, {"Content-Type": "text/plain"}, b"bad signature")
        with server.lock:
            server.requests.append(record)
        if answer.reset:
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            self.connection.close()
            self.close_connection = True
            return
        if answer.hang:
            server.stopping.wait()
            self.close_connection = True
            return
        while answer.release is not None and not answer.release.wait(0.02):
            if server.stopping.is_set():
                self.close_connection = True
                return
        if answer.delay_seconds and server.stopping.wait(answer.delay_seconds):
            self.close_connection = True
            return
        self.send_response(answer.status)
        for key, value in answer.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if answer.body and method != "HEAD":
            self.wfile.write(answer.body)


class Receiver(ThreadingHTTPServer):
    """One fake receiver: `kind` is "slack", "teams" or "webhook"."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, kind: str):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.kind = kind
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.answers: dict[str, deque[Answer]] = defaultdict(deque)
        self.secrets: dict[str, str] = {}
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def answer(self, path: str, *answers: Answer) -> None:
        """Queue answers for the next requests to `path` (then the default answer)."""
        self.answers[path].extend(answers)

    def next_answer(self, path: str) -> Answer:
        with self.lock:
            queue = self.answers.get(path)
            if queue:
                return queue.popleft()
        status, headers, body = DEFAULT_ANSWERS[self.kind]
        return Answer(status, dict(headers), body)

    def received(self, path: str | None = None) -> list[dict]:
        """The requests recorded so far (to `path` only, when given), oldest first."""
        with self.lock:
            return [r for r in self.requests if path is None or r["path"] == path]

    def wait_for(self, count: int, path: str | None = None, timeout: float = 10.0) -> list[dict]:
        """Block until `count` requests (to `path`) arrived; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.received(path)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.kind} receiver: {len(found)} of {count} requests after {timeout}s"
                )
            time.sleep(0.02)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], BrokenPipeError | ConnectionResetError):
            super().handle_error(request, client_address)


@dataclass
class Receivers:
    slack: Receiver
    teams: Receiver
    webhook: Receiver


@pytest.fixture
def receivers():
    started = Receivers(
        Receiver("slack").start(), Receiver("teams").start(), Receiver("webhook").start()
    )
    yield started
    for receiver in (started.slack, started.teams, started.webhook):
        receiver.stop()
