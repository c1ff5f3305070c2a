"""Basic wiring: the factory, migrations, health and the CLI contract on a tiny feed."""

from __future__ import annotations

import json


def test_healthz_reports_database_and_feeds(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "feeds": []}


def test_db_upgrade_is_idempotent(runner):
    result = runner.invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "database is up to date"


def test_feed_inspect_json_on_missing_file_is_a_clear_error(runner, tmp_path):
    result = runner.invoke(args=["feed", "inspect", str(tmp_path / "nope.atom"), "--json"])
    assert result.exit_code == 1
    assert "no such file" in result.output
    assert json.dumps  # the module is used by other tests
