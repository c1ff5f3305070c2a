"""Gunicorn access log without the secrets that live in our URLs.

Preference, unsubscribe, confirmation and undo links and the private calendar feed carry
signed tokens in their path (valid for up to 400 days; the calendar's for the life of the
subscription, fetched by calendar apps every few hours); anyone reading a log line could use
them. This logger class (set in the
Procfile with --logger-class) replaces each token with "…" in every logged atom.
"""

from __future__ import annotations

import re

from gunicorn.glogging import Logger

TOKEN_PATH = re.compile(
    r"(/(?:preferences|confirm|unsubscribe(?:/one-click|/undo)?|calendar)/)[^/?\s\"]+"
)


def redact(value: str) -> str:
    return TOKEN_PATH.sub(r"\1…", value)


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U", "f", "{raw_uri}e", "{path_info}e", "{request_uri}e", "{referer}i"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms
