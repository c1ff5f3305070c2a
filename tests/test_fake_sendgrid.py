"""The fake SendGrid refuses what the real API refuses, so tests against it mean something."""

from __future__ import annotations

import contextlib

import pytest
from python_http_client.exceptions import BadRequestsError, HTTPError, UnauthorizedError
from sendgrid import SendGridAPIClient

from tests.fake_sendgrid import FakeSendGrid, check_mail_send, find_schema, sendgrid  # noqa: F401


def _body(count: int = 1, **changes) -> dict:
    body = {
        "personalizations": [
            {"to": [{"email": f"r{i}@example.com"}], "custom_args": {"delivery_id": str(i)}}
            for i in range(count)
        ],
        "from": {"email": "status@example.com"},
        "subject": "Wartung",
        "content": [{"type": "text/plain", "value": "Hallo"}],
    }
    body.update(changes)
    return body


def _post(server: FakeSendGrid, body: dict, key: str = "SG.test-key"):
    return SendGridAPIClient(key, host=server.base_url).client.mail.send.post(request_body=body)


def _refusal(server: FakeSendGrid, body: dict) -> dict:
    with pytest.raises(BadRequestsError) as caught:
        _post(server, body)
    assert server.accepted_recipients() == []
    return caught.value.to_dict


def test_valid_body_gets_202_with_message_id_and_empty_body(sendgrid):  # noqa: F811
    response = _post(sendgrid, _body(2))
    message_id = response.headers["X-Message-Id"]
    assert (response.status_code, response.body) == (202, b"")
    assert sendgrid.accepted_recipients() == [
        {"email": "r0@example.com", "delivery_id": "0", "message_id": message_id},
        {"email": "r1@example.com", "delivery_id": "1", "message_id": message_id},
    ]


def test_message_ids_are_unique_per_request(sendgrid):  # noqa: F811
    ids = {_post(sendgrid, _body()).headers["X-Message-Id"] for _ in range(5)}
    assert len(ids) == 5


def test_thousand_personalizations_are_accepted(sendgrid):  # noqa: F811
    assert _post(sendgrid, _body(1000)).status_code == 202


def test_more_than_thousand_personalizations_are_refused(sendgrid):  # noqa: F811
    errors = _refusal(sendgrid, _body(1001))["errors"]
    assert {
        "message": "The personalization block is limited to 1000 personalizations per API "
        "request. You have provided 1001 personalizations.",
        "field": "personalizations",
        "help": None,
    } in errors


def test_more_than_thousand_recipients_in_fewer_personalizations_are_refused(sendgrid):  # noqa: F811
    body = _body(1)
    body["personalizations"][0]["bcc"] = [{"email": f"b{i}@example.com"} for i in range(1000)]
    assert _refusal(sendgrid, body) == {
        "errors": [
            {
                "message": "There is a limit of 1000 total recipients (to + cc + bcc) per request.",
                "field": "personalizations",
                "help": None,
            }
        ]
    }


def test_same_address_twice_in_one_request_is_refused(sendgrid):  # noqa: F811
    body = _body(2)
    body["personalizations"][1]["to"] = [{"email": "R0@example.com"}]
    assert _refusal(sendgrid, body) == {
        "errors": [
            {
                "message": "Each unique email address in the personalizations array should only "
                "be included once. You have included email address more than once.",
                "field": "personalizations.1.to.0.email",
                "help": None,
            }
        ]
    }


def test_non_string_custom_args_are_refused(sendgrid):  # noqa: F811
    body = _body(1)
    body["personalizations"][0]["custom_args"] = {"delivery_id": 7}
    errors = _refusal(sendgrid, body)["errors"]
    assert {
        "message": "Invalid type. Expected: string, given: int.",
        "field": "personalizations.0.custom_args.delivery_id",
        "help": None,
    } in errors


def test_missing_subject_is_refused_unless_every_personalization_has_one(sendgrid):  # noqa: F811
    body = _body(2)
    del body["subject"]
    assert [e["field"] for e in _refusal(sendgrid, body)["errors"]] == ["subject", "subject"]
    for p in body["personalizations"]:
        p["subject"] = "Wartung"
    assert _post(sendgrid, body).status_code == 202


def test_missing_content_is_refused(sendgrid):  # noqa: F811
    body = _body(1)
    del body["content"]
    assert _refusal(sendgrid, body)["errors"] == [
        {
            "message": "Unless a valid template_id is provided, the content parameter is required.",
            "field": None,
            "help": None,
        }
    ]


def test_schema_violations_are_refused(sendgrid):  # noqa: F811
    if sendgrid.schema_path is None:
        pytest.skip("../shared/fixtures/sendgrid is absent (a user's clone has none)")
    body = _body(1, categories=[f"c{i}" for i in range(11)], send_at="tomorrow")
    fields = sorted(e["field"] for e in _refusal(sendgrid, body)["errors"])
    assert fields == ["categories", "send_at"]


def test_own_checks_run_without_the_schema():
    body = _body(1001)
    body["personalizations"][0]["custom_args"] = {"delivery_id": 1}
    fields = [e["field"] for e in check_mail_send(body, schema_path=None)]
    assert fields == [
        "personalizations",  # more than 1000 personalizations
        "personalizations.0.custom_args.delivery_id",
        "personalizations",  # more than 1000 recipients
    ]


def test_schema_is_found_from_a_worktree_and_absent_in_a_plain_clone(tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    schema = work / "shared" / "fixtures" / "sendgrid" / "mail-send-request.patched.schema.json"
    schema.parent.mkdir(parents=True)
    schema.write_text("{}")
    assert find_schema(work / "main" / "tests" / "fake_sendgrid.py") == schema
    assert find_schema(work / "wt" / "mail" / "tests" / "fake_sendgrid.py") == schema
    clone = tmp_path_factory.mktemp("clone")
    assert find_schema(clone / "tests" / "fake_sendgrid.py") is None


def test_wrong_key_is_refused_with_401_and_nothing_accepted(sendgrid):  # noqa: F811
    with pytest.raises(UnauthorizedError):
        _post(sendgrid, _body(), key="SG.wrong")
    assert [(r.outcome, r.status) for r in sendgrid.requests] == [("unauthorized", 401)]


def test_seeded_random_faults_repeat_exactly():
    def outcomes(seed: int) -> list[str]:
        server = FakeSendGrid(seed=seed, hang_seconds=0.0).start()
        server.faults = {"server_error": 0.3, "rate_limited": 0.2}
        try:
            for _ in range(20):
                with contextlib.suppress(HTTPError):
                    _post(server, _body())
            return [r.outcome for r in server.requests]
        finally:
            server.stop()

    first = outcomes(seed=7)
    assert first == outcomes(seed=7)
    assert {"accepted", "server_error", "rate_limited"} == set(first)


def test_rate_limited_answer_carries_the_rate_limit_headers(sendgrid):  # noqa: F811
    sendgrid.rate_limit_reset_at = 1_795_000_030
    sendgrid.script("rate_limited")
    with pytest.raises(HTTPError) as caught:
        _post(sendgrid, _body())
    headers = caught.value.headers
    assert (caught.value.status_code, headers["X-RateLimit-Limit"]) == (429, "600")
    assert (headers["X-RateLimit-Remaining"], headers["X-RateLimit-Reset"]) == ("0", "1795000030")


def test_unknown_scripted_outcome_is_a_test_error(sendgrid):  # noqa: F811
    with pytest.raises(ValueError, match="unknown outcomes"):
        sendgrid.script("explode")


def test_lost_answers_still_count_as_accepted_requests(sendgrid):  # noqa: F811
    sendgrid.script("reset_accepted", "reset")
    for _ in range(2):
        with contextlib.suppress(ConnectionResetError):
            _post(sendgrid, _body())
    assert [r.outcome for r in sendgrid.requests] == ["reset_accepted", "reset"]
    assert [r.outcome for r in sendgrid.accepted_requests()] == ["reset_accepted"]
