"""Error pages: translated, never a traceback, and no link token in the log."""

from __future__ import annotations

import logging
import re

import pytest


def test_unknown_page_is_a_translated_404(client):
    german = client.get("/gibt-es-nicht", headers={"Accept-Language": "de"})
    english = client.get("/does-not-exist", headers={"Accept-Language": "en"})
    assert (german.status_code, english.status_code) == (404, 404)
    assert "Seite nicht gefunden" in german.get_data(as_text=True)
    assert "Page not found" in english.get_data(as_text=True)


def test_a_crash_is_a_500_page_and_the_log_line_hides_link_tokens(app, client, caplog):
    @app.get("/preferences/<token>/boom")
    def boom(token):
        raise RuntimeError("kaputt")

    with caplog.at_level(logging.ERROR, logger="notifier.errors"):
        response = client.get("/preferences/SECRET.TOKEN/boom", headers={"Accept-Language": "de"})
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "Da ist etwas schiefgegangen" in body and "Traceback" not in body
    [record] = caplog.records
    assert record.getMessage() == "unhandled error on GET /preferences/…/boom"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("GET /preferences/a.b.c HTTP/1.1", "GET /preferences/… HTTP/1.1"),
        ("POST /unsubscribe/one-click/a.b HTTP/1.1", "POST /unsubscribe/one-click/… HTTP/1.1"),
        ("GET /unsubscribe/undo/a.b?x=1 HTTP/1.1", "GET /unsubscribe/undo/…?x=1 HTTP/1.1"),
        ("POST /confirm/a.b HTTP/1.1", "POST /confirm/… HTTP/1.1"),
        ("GET /preferences/a.b/export HTTP/1.1", "GET /preferences/…/export HTTP/1.1"),
        ("GET /unsubscribed HTTP/1.1", "GET /unsubscribed HTTP/1.1"),
        ("GET /admin/notifications/4 HTTP/1.1", "GET /admin/notifications/4 HTTP/1.1"),
    ],
)
def test_access_log_redaction(line, expected):
    from notifier.accesslog import redact

    assert redact(line) == expected


def test_every_route_with_a_token_is_redacted_in_the_access_log(app):
    """A signed token in any route's path (preferences, confirm, unsubscribe, the calendar
    feed, whatever comes next) never reaches a log line."""
    from notifier.accesslog import redact

    token = "WzEsImFiYyJd.Zx1y2w.q9R-secret_TOKEN"
    rules = [r for r in app.url_map.iter_rules() if "token" in r.arguments]
    assert len(rules) >= 5
    leaked = []
    for rule in rules:
        path = re.sub(r"<(?:[^:>]+:)?token>", token, rule.rule)
        path = re.sub(r"<(?:[^:>]+:)?(\w+)>", "1", path)
        line = f"GET {path}?x=1 HTTP/1.1"
        if "secret_TOKEN" in redact(line):
            leaked.append(rule.rule)
    assert leaked == []
