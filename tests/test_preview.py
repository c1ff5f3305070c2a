"""`flask --app app preview`: renders a feed entry or a stored notification, never sends."""

from __future__ import annotations

import pytest

import notifier.preview

from .test_render import ATOM
from .test_render_golden import load_content


@pytest.fixture
def cli(app, runner):
    """The runner with `preview` registered (app.py may not register it yet)."""
    if "preview" not in app.cli.commands:
        notifier.preview.register(app)
    return runner


@pytest.fixture
def feed_file(tmp_path):
    path = tmp_path / "history.atom"
    path.write_text(ATOM, encoding="utf-8")
    return path


def test_preview_prints_subject_and_text_part_of_a_feed_entry(cli, feed_file):
    result = cli.invoke(args=["preview", "--feed", str(feed_file), "--key", "abc123xyz"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:3] == [
        "Subject: [Ursache gefunden] Sinch: Delayed SMS delivery",
        "",
        "SINCH · Statusmeldung",
    ]
    assert "Ursache gefunden · gemeldet am 27. Juni 2023, 19:10 MESZ" in result.output
    assert "27. Juni 2023, 18:30 MESZ – Untersuchung läuft" in result.output
    assert "https://status.sinch.com/incidents/abc123xyz" in result.output


def test_preview_in_english_defaults_to_utc_and_honours_tz(cli, feed_file):
    args = ["preview", "--feed", str(feed_file), "--key", "abc123xyz", "--lang", "en"]
    utc = cli.invoke(args=args)
    la = cli.invoke(args=[*args, "--tz", "America/Los_Angeles"])
    assert "Identified · posted June 27, 2023, 17:10 UTC" in utc.output
    assert "Identified · posted June 27, 2023, 10:10 AM PDT" in la.output  # US clock


def test_preview_writes_the_html_part_to_a_file(cli, feed_file, tmp_path):
    out = tmp_path / "mail.html"
    result = cli.invoke(
        args=["preview", "--feed", str(feed_file), "--key", "abc123xyz", "--html", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"Subject: [Ursache gefunden] Sinch: Delayed SMS delivery\nwrote {out}\n"
    )
    html = out.read_text(encoding="utf-8")
    assert html.startswith('<!DOCTYPE html><html lang="de">') and html.endswith("</html>")


def test_preview_renders_a_stored_notification(cli, app, monkeypatch):
    store = app.extensions["store"]
    stored = {7: {"id": 7, "kind": "receipt", "content": load_content("receipt")}}
    if not hasattr(store, "get_notification"):
        # The real method arrives with the notifications work; until then a stand-in that
        # answers the documented shape (a dict with decoded content, or None).
        monkeypatch.setattr(store, "get_notification", stored.get, raising=False)
        result = cli.invoke(args=["preview", "--notification", "7", "--lang", "en"])
        assert result.exit_code == 0, result.output
        assert result.output.startswith(
            "Subject: You have been unsubscribed from Sinch status notifications\n\n"
        )
    missing = cli.invoke(args=["preview", "--notification", "999"])
    assert (missing.exit_code, missing.output) == (1, "Error: no notification 999\n")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--feed", "{missing}", "--key", "abc123xyz"], 1, "no such file: {missing}"),
        (["--feed", "{feed}", "--key", "nope"], 1,
         "no incident 'nope' in {feed} (keys: abc123xyz)"),
        (["--feed", "{feed}", "--key", "abc123xyz", "--lang", "fr"], 2,
         "unknown language 'fr'; use one of: de, en"),
        (["--feed", "{feed}", "--key", "abc123xyz", "--tz", "Mars/Olympus"], 2,
         "unknown time zone 'Mars/Olympus' (use an IANA name such as Europe/Berlin)"),
        (["--feed", "{feed}"], 2, "--feed needs --key KEY (the code in /incidents/<key>)"),
        ([], 2, "give either --feed FILE --key KEY or --notification ID"),
        (["--feed", "{feed}", "--key", "x", "--notification", "1"], 2,
         "give either --feed FILE --key KEY or --notification ID"),
        (["--feed", "{junk}", "--key", "x"], 1, "{junk}: not an Atom or RSS feed"),
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_line_without_traceback(
    cli, feed_file, tmp_path, args, code, message
):
    junk = tmp_path / "junk.txt"
    junk.write_text("this is not xml <", encoding="utf-8")
    paths = {"feed": feed_file, "missing": tmp_path / "gone.atom", "junk": junk}
    result = cli.invoke(args=["preview", *(a.format(**paths) for a in args)])
    assert result.exit_code == code
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: " + message.format(**paths))
    assert "Traceback" not in result.output
