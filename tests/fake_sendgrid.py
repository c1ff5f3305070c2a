"""A fake SendGrid v3 Mail Send server: real HTTP on 127.0.0.1 that the real `sendgrid` library
talks to. It validates what it receives, records it, and injects the faults a real provider has.

Tests use the `sendgrid` fixture defined at the bottom (import it into the test module:
`from tests.fake_sendgrid import sendgrid  # noqa: F401`).
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

SCHEMA_NAME = "mail-send-request.patched.schema.json"
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_ARGS_BYTES = 10_000  # substitutions and custom_args, each, per personalization
MAX_REQUEST_BYTES = 30 * 1024 * 1024

# Outcomes a test can script (FakeSendGrid.script) or draw at random (FakeSendGrid.faults).
OUTCOMES = (
    "accept",  # validate, then 202 (or 400 when invalid)
    "server_error",  # 500
    "unavailable",  # 503
    "rate_limited",  # 429 with X-RateLimit-* headers
    "timeout",  # hang past the client's timeout, record nothing
    "timeout_accepted",  # record the mail as accepted, then hang: the "lost 202"
    "reset",  # read the request, then reset the connection, record nothing
    "reset_accepted",  # record the mail as accepted, then reset the connection
    "disconnect",  # read the request, then close without an answer, record nothing
    "disconnect_accepted",  # record the mail as accepted, then close without an answer
)


def find_schema(start: Path | None = None) -> Path | None:
    """The official request schema in a `shared/fixtures/sendgrid` folder above this file, if any.

    Walks up instead of using a fixed depth: the repository may be checked out as a git worktree
    one level deeper than the main checkout; a user's clone has no shared folder at all.
    """
    here = (start or Path(__file__)).resolve()
    for parent in here.parents:
        candidate = parent / "shared" / "fixtures" / "sendgrid" / SCHEMA_NAME
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=4)
def _validator(path: str):
    from jsonschema import Draft202012Validator

    schema = json.loads(Path(path).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _error(message: str, field: str | None = None) -> dict:
    return {"message": message, "field": field, "help": None}


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode())


def check_mail_send(body: Any, schema_path: Path | None) -> list[dict]:
    """SendGrid-style errors for a Mail Send body: the official schema plus documented limits."""
    if not isinstance(body, dict):
        return [_error("Bad Request", None)]
    errors = []
    if schema_path is not None:
        for exc in sorted(_validator(str(schema_path)).iter_errors(body), key=str):
            where = ".".join(str(p) for p in exc.absolute_path) or None
            errors.append(_error(exc.message, where))
    errors.extend(_limit_errors(body))
    return errors


def _limit_errors(body: dict) -> list[dict]:
    errors = []
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        return [_error("You must have at least one personalization.", "personalizations")]
    if len(personalizations) > MAX_PERSONALIZATIONS:
        errors.append(
            _error(
                "The personalization block is limited to 1000 personalizations per API "
                f"request. You have provided {len(personalizations)} personalizations.",
                "personalizations",
            )
        )
    if not isinstance(body.get("from"), dict) or not body["from"].get("email"):
        errors.append(_error("The from object must be provided for every email send.", "from"))
    content = body.get("content")
    if not body.get("template_id") and not (isinstance(content, list) and content):
        errors.append(
            _error("Unless a valid template_id is provided, the content parameter is required.")
        )
    errors.extend(_string_map_errors(body.get("custom_args"), "custom_args"))
    errors.extend(_attachment_errors(body.get("attachments")))
    seen: set[str] = set()
    total = 0
    for i, p in enumerate(personalizations):
        if not isinstance(p, dict):
            errors.append(
                _error("Each personalization must be an object.", f"personalizations.{i}")
            )
            continue
        if not body.get("subject") and not p.get("subject") and not body.get("template_id"):
            errors.append(
                _error(
                    "The subject is required. You can get around this requirement if you use a "
                    "template with a subject defined or if every personalization has a subject.",
                    "subject",
                )
            )
        for kind in ("to", "cc", "bcc"):
            for j, rcpt in enumerate(p.get(kind) or []):
                total += 1
                email = str(rcpt.get("email", "")).strip().lower() if isinstance(rcpt, dict) else ""
                if email in seen:
                    # The real API refuses the same address twice anywhere in one request.
                    errors.append(
                        _error(
                            "Each unique email address in the personalizations array should only "
                            "be included once. You have included email address more than once.",
                            f"personalizations.{i}.{kind}.{j}.email",
                        )
                    )
                seen.add(email)
        for name in ("custom_args", "substitutions", "headers"):
            errors.extend(_string_map_errors(p.get(name), f"personalizations.{i}.{name}"))
    if total > MAX_RECIPIENTS:
        errors.append(
            _error(
                "There is a limit of 1000 total recipients (to + cc + bcc) per request.",
                "personalizations",
            )
        )
    return errors


def _attachment_errors(attachments: Any) -> list[dict]:
    """What the schema cannot say about `attachments`: each `content` must be base64 (SendGrid
    answers "The attachment content must be base64 encoded."), and a filename is one line."""
    errors = []
    for i, item in enumerate(attachments if isinstance(attachments, list) else []):
        if not isinstance(item, dict):
            continue
        try:
            base64.b64decode(str(item.get("content", "")), validate=True)
        except (binascii.Error, ValueError):
            errors.append(
                _error("The attachment content must be base64 encoded.", f"attachments.{i}.content")
            )
        if any(ch in str(item.get("filename", "")) for ch in "\r\n"):
            errors.append(_error("Invalid filename.", f"attachments.{i}.filename"))
    return errors


def _string_map_errors(value: Any, where: str) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, dict):
        return [_error(f"{where} must be an object of strings.", where)]
    errors = [
        _error(f"Invalid type. Expected: string, given: {type(v).__name__}.", f"{where}.{k}")
        for k, v in value.items()
        if not isinstance(v, str)
    ]
    if where.endswith(("custom_args", "substitutions")) and _size(value) > MAX_ARGS_BYTES:
        errors.append(_error(f"{where} may not exceed 10,000 bytes.", where))
    return errors


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None when it did not parse
    outcome: str  # accepted | invalid | unauthorized | forbidden | rate_limited | …
    status: int | None  # None when no answer was sent (timeout, reset)
    message_id: str | None = None
    errors: list[dict] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: FakeSendGrid
    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle client connection never pins a handler thread forever

    def log_message(self, *args):  # keep test output clean
        pass

    def do_POST(self):
        self.server.handle_mail_send(self)

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None):
        self.server.answering(self)
        body = b"" if payload is None else json.dumps(payload).encode()
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if body:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)
            self.wfile.flush()
        except OSError:  # the client gave up (timed out) before we answered
            self.close_connection = True

    def reset(self):
        # SO_LINGER 0 makes close() send RST: the client sees "connection reset by peer".
        self.connection.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        self.close_connection = True
        self.connection.close()


class FakeSendGrid(ThreadingHTTPServer):
    """POST /v3/mail/send like SendGrid: auth, validation, limits, 202 + X-Message-Id, faults."""

    # Handler threads are joined on stop(); hanging ones are woken by the stop event first.
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(
        self,
        api_key: str = "SG.test-key",
        *,
        latency_seconds: float = 0.0,
        hang_seconds: float = 5.0,
        seed: int = 0,
        schema_path: Path | str | None = "auto",
    ):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api_key = api_key
        self.latency_seconds = latency_seconds
        self.hang_seconds = hang_seconds
        self.schema_path = find_schema() if schema_path == "auto" else schema_path
        self.auth_mode: int | None = None  # 401 or 403: refuse every request (revoked key)
        self.rejected_addresses: set[str] = set()  # 400 for any request naming one of these
        self.rate_limit_reset_seconds = 30  # X-RateLimit-Reset = now + this, unless
        self.rate_limit_reset_at: int | None = None  # a fixed epoch second is set here
        self.max_request_bytes = MAX_REQUEST_BYTES
        self.faults: dict[str, float] = {}  # outcome -> probability, drawn with self.rng
        self.rng = random.Random(seed)
        self.requests: list[RecordedRequest] = []
        # Concurrency: requests being answered now, and the most at any one moment.
        self.in_flight = 0
        self.max_in_flight = 0
        # Requests that have reached the handler so far (in_flight only says how many now).
        self.arrived = 0
        # time.monotonic() (this process's clock) as each request's body had been read, in
        # order: "was it sent before X" without the sender's wall clock, which a VM may step.
        self.arrivals: list[float] = []
        # An Event to hold every request (after its body is read) until the test sets it;
        # None answers at once (after latency_seconds).
        self.gate: threading.Event | None = None
        self._accepted: list[dict] = []
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._counter = 0
        # A short poll interval: shutdown() waits up to one interval, in every test's teardown.
        self._thread = threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True)

    # --- control ---------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> FakeSendGrid:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.shutdown()
        self.server_close()
        self._thread.join()

    def script(self, *outcomes: str) -> None:
        """The next requests get these outcomes, in order; then random faults or accept."""
        unknown = set(outcomes) - set(OUTCOMES)
        if unknown:
            raise ValueError(f"unknown outcomes: {sorted(unknown)}")
        with self._lock:
            self._script.extend(outcomes)

    def accepted_recipients(self) -> list[dict]:
        """Every recipient of every accepted request: email, delivery_id, message_id."""
        with self._lock:
            return list(self._accepted)

    def accepted_requests(self) -> list[RecordedRequest]:
        """Requests SendGrid took, including those whose answer was lost (…_accepted)."""
        with self._lock:
            return [r for r in self.requests if r.message_id is not None]

    # --- request handling ------------------------------------------------------------
    def _next_outcome(self) -> str:
        with self._lock:
            if self._script:
                return self._script.popleft()
            draw = self.rng.random()
        for outcome, probability in self.faults.items():
            if draw < probability:
                return outcome
            draw -= probability
        return "accept"

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _accept(self, request: RecordedRequest) -> None:
        with self._lock:
            self._counter += 1
            request.message_id = f"fake{self._counter:05d}{self.rng.getrandbits(48):012x}"
            for p in request.body["personalizations"]:
                args = p.get("custom_args") or {}
                for kind in ("to", "cc", "bcc"):
                    for rcpt in p.get(kind) or []:
                        self._accepted.append(
                            {
                                "email": rcpt["email"],
                                "delivery_id": args.get("delivery_id"),
                                "message_id": request.message_id,
                            }
                        )
            self.requests.append(request)

    def _wait(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def handle_mail_send(self, handler: _Handler) -> None:
        path = handler.path.split("?")[0]
        headers = dict(handler.headers.items())
        length = int(handler.headers.get("Content-Length") or 0)
        # Read the body even when refusing it: answering early would make the client fail
        # while still sending (a broken pipe) instead of reading our 413.
        raw = handler.rfile.read(length)
        gate = self.gate  # before counting: a test that sees this request may swap the gate
        with self._lock:
            self.in_flight += 1
            self.arrived += 1
            self.arrivals.append(time.monotonic())
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        handler.in_flight = True
        try:
            self._handle_body(handler, path, headers, length, raw, gate)
        finally:
            self.answering(handler)

    def answering(self, handler: _Handler) -> None:
        """The request leaves in_flight before its answer (or reset) goes out: once the client
        has read it, the count no longer includes it."""
        with self._lock:
            if getattr(handler, "in_flight", False):
                handler.in_flight = False
                self.in_flight -= 1

    def _handle_body(self, handler: _Handler, path, headers, length, raw, gate) -> None:
        while gate is not None and not gate.is_set() and not self._stopping.is_set():
            gate.wait(0.02)
        if length > self.max_request_bytes:
            self._record(RecordedRequest(path, headers, None, "too_large", 413))
            handler.send_json(413, {"errors": [_error("content too large")]})
            return
        if self.latency_seconds:
            self._wait(self.latency_seconds)
        if path != "/v3/mail/send":
            self._record(RecordedRequest(path, headers, None, "not_found", 404))
            handler.send_json(404, {"errors": [_error("not found")]})
            return
        if handler.headers.get("Authorization") != f"Bearer {self.api_key}":
            self._refuse(handler, path, headers, 401, "unauthorized", "authorization required")
            return
        if self.auth_mode in (401, 403):
            outcome = "unauthorized" if self.auth_mode == 401 else "forbidden"
            message = "authorization required" if self.auth_mode == 401 else "access forbidden"
            self._refuse(handler, path, headers, self.auth_mode, outcome, message)
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._refuse(handler, path, headers, 400, "invalid", "Bad Request")
            return
        self._answer(handler, RecordedRequest(path, headers, body, "", None))

    def _refuse(self, handler, path, headers, status: int, outcome: str, message: str) -> None:
        self._record(RecordedRequest(path, headers, None, outcome, status))
        handler.send_json(status, {"errors": [_error(message)]})

    def _answer(self, handler: _Handler, request: RecordedRequest) -> None:
        errors = check_mail_send(request.body, self.schema_path)
        if not errors:
            errors = self._rejected_address_errors(request.body)
        if errors:
            request.outcome, request.status, request.errors = "invalid", 400, errors
            self._record(request)
            handler.send_json(400, {"errors": errors})
            return
        outcome = self._next_outcome()
        if outcome == "accept":
            request.outcome, request.status = "accepted", 202
            self._accept(request)
            handler.send_json(202, None, {"X-Message-Id": request.message_id})
        elif outcome in ("server_error", "unavailable"):
            request.outcome = outcome
            request.status = 500 if outcome == "server_error" else 503
            self._record(request)
            handler.send_json(request.status, {"errors": [_error("internal server error")]})
        elif outcome == "rate_limited":
            request.outcome, request.status = outcome, 429
            self._record(request)
            reset = self.rate_limit_reset_at or int(time.time()) + self.rate_limit_reset_seconds
            limits = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0"}
            limits["X-RateLimit-Reset"] = str(reset)
            handler.send_json(429, {"errors": [_error("too many requests")]}, limits)
        else:
            self._lose_answer(handler, request, outcome)

    def _lose_answer(self, handler: _Handler, request: RecordedRequest, outcome: str) -> None:
        request.outcome = outcome
        if outcome.endswith("_accepted"):
            self._accept(request)  # SendGrid took the mail; only the answer goes missing
        else:
            self._record(request)
        if outcome.startswith("timeout"):
            self._wait(self.hang_seconds)
            handler.close_connection = True
            if outcome == "timeout_accepted":
                handler.send_json(202, None, {"X-Message-Id": request.message_id})
        elif outcome.startswith("disconnect"):
            handler.close_connection = True  # an orderly close: the client reads no status line
        else:
            self.answering(handler)
            handler.reset()

    def _rejected_address_errors(self, body: dict) -> list[dict]:
        errors = []
        for i, p in enumerate(body["personalizations"]):
            for j, rcpt in enumerate(p.get("to") or []):
                if rcpt["email"].lower() in {a.lower() for a in self.rejected_addresses}:
                    errors.append(
                        _error(
                            "Does not contain a valid address.",
                            f"personalizations.{i}.to.{j}.email",
                        )
                    )
        return errors


@pytest.fixture
def sendgrid():
    """A running FakeSendGrid; its api_key is 'SG.test-key'."""
    server = FakeSendGrid().start()
    yield server
    server.stop()
