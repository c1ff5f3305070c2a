"""List-Unsubscribe's single-URL fast path (notifier/delivery/mailheaders.py, issue 14) gives
exactly what the general RFC 2369 path gives: the same value, or the same refusal."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.delivery.mailheaders import UnsafeHeader, header_value

_URL = re.compile(r"^(https?://|mailto:)[\x21-\x2b\x2d-\x3b\x3d\x3f-\x7e]+\Z")


def general(value: str) -> str:
    """The general path as it was before the fast path (the reference)."""
    urls = [part.strip() for part in str(value).split(",")]
    for url in urls:
        if not (url.startswith("<") and url.endswith(">") and _URL.match(url[1:-1])):
            raise UnsafeHeader(f"not a List-Unsubscribe value: {str(value)[:80]!r}")
    return ", ".join(urls)


def outcome(fn, value: str):
    try:
        return ("ok", fn(value))
    except UnsafeHeader as exc:
        return ("refused", str(exc))


ONE_CLICK = "<https://status-notify.example.com/unsubscribe/one-click/WzEsIm.aw7VAQ.nMx4-FH>"


@pytest.mark.parametrize(
    "value",
    [ONE_CLICK, f" {ONE_CLICK}", f"{ONE_CLICK} ", f"{ONE_CLICK}\n", f"{ONE_CLICK},{ONE_CLICK}",
     f"{ONE_CLICK}, <mailto:u@example.com>", "<>", "<", ">", "", "<https://x/a b>",
     "<https://x/a\n>", "<https://x/a>\r\n", "<javascript:alert(1)>", "<https://x/a,b>"],
)  # fmt: skip
def test_the_fast_path_answers_as_the_general_one(value):
    assert outcome(lambda v: header_value("List-Unsubscribe", v), value) == outcome(general, value)


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("<>,: \t\r\n\x00/.-_aZ9%?=&htpsmailo"), max_size=40).map(
        lambda tail: "<https://" + tail
    )
    | st.text(max_size=30)
)
def test_any_value_gets_the_same_answer_on_both_paths(value):
    assert outcome(lambda v: header_value("List-Unsubscribe", v), value) == outcome(general, value)
