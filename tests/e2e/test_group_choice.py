"""The group box in a real browser: ticking it chooses the group (including components added to
it later); ticking every member by hand stays a choice of those components (issue 16 item 7)."""

from __future__ import annotations

import pytest

from notifier import tokens
from notifier.store import SQLiteStore

from .test_signup_flow import submit_form, token_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def chosen(server, address: str) -> tuple[dict, list[str]]:
    store = SQLiteStore(server.instance / "notifier.db")
    try:
        row = store.get_subscriber_by_email(address)
        return row, store.subscriber_component_ids(row["id"])
    finally:
        store.close()


def test_the_group_box_is_its_own_choice(server, open_page):
    w = open_page("en-GB")
    page = w.page
    page.goto(server.base_url + "/")
    page.check("#component-sms-eu")
    page.check("#component-sms-us")  # every member by hand: the group box stays unticked
    assert page.is_checked("#component-grp-sms") is False
    assert page.eval_on_selector("#component-grp-sms", "e => e.indeterminate") is True
    submit_form(page, "members@example.com")
    page.wait_for_url("**/subscribe/check-inbox")
    assert chosen(server, "members@example.com")[1] == ["sms-eu", "sms-us"]

    page.goto(server.base_url + "/")
    page.check("#component-grp-sms")
    assert [page.is_checked(s) for s in ("#component-sms-eu", "#component-sms-us")] == [True] * 2
    page.uncheck("#component-sms-us")  # no longer the whole group
    assert page.is_checked("#component-grp-sms") is False
    page.check("#component-grp-sms")
    submit_form(page, "group@example.com")
    page.wait_for_url("**/subscribe/check-inbox")
    row, ids = chosen(server, "group@example.com")
    assert ids == ["grp-sms"]

    # The preferences page loads with the group ticked, and the script leaves it ticked.
    page.goto(f"{server.base_url}/preferences/{token_for(row, tokens.MANAGE)}")
    assert page.is_checked("#component-grp-sms") is True
    assert page.eval_on_selector("#component-grp-sms", "e => e.indeterminate") is False
    label = page.inner_text(".choice-group")
    assert label == "SMS (all components, including ones added later)"
    w.shot("preferences-group")
