"""The sign-up form's fast path for plain addresses (forms._plain_email) answers exactly as
email-validator does: the same normalized address, or the same refusal, for every input."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from notifier import forms
from notifier.delivery.mailheaders import plain_address

from .test_import import ADDRESSES


def reference(raw: str) -> str:
    """normalize_email as it was before the fast path: email-validator for every address."""
    try:
        info = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        raise ValueError(raw) from None
    return plain_address(info.ascii_email.lower())


def outcome(normalize, raw: str) -> str:
    try:
        return normalize(raw)
    except ValueError as exc:  # UnsafeHeader is a ValueError of its own kind
        return type(exc).__name__


CORPUS = [
    *ADDRESSES,
    "ada@example.com",
    "Grace.Hopper+status@Example.org",
    "bench-1-23@example.com",
    "a_b@example.com",
    "+@example.com",
    "-@example.com",
    "a@example.c",
    "a@example.c0m",
    "a@example.x--y.com",
    "a@ab--cd.com",
    "a@xn--ab.com",
    "a@example.test",
    "a@sub.example.local",
    "a@localhost.com",
    "a@home.arpa",
    "a@x.onion.com",
    "a@example.com-",
    "a@-example.com",
    "a@exa_mple.com",
    "a@" + "b" * 63 + ".com",
    "a@" + ("b" * 63 + ".") * 4 + "com",
    "x" * 64 + "@example.com",
    "x" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 60,
    "\u212a@example.com",  # KELVIN SIGN lowercases to an ASCII "k"
    "a@\u212aelvin.com",
    "a@example.COM",
    "A@EXAMPLE.DE",
    "a.b.c@d.e.fg",
    "a@e.123",
    "a@1.com",
    "a@example.com ",
    " a@example.com",
    "a@example..",
    "a.@x.de",
    "a@x.de.",
    "a@x..de",
    "=?utf-8?q?x?=@example.com",
    "",
    "@",
]


@pytest.mark.parametrize("raw", CORPUS)
def test_fast_path_agrees_with_email_validator(raw):
    assert outcome(forms.normalize_email, raw) == outcome(reference, raw)


_PIECES = st.sampled_from(
    ["a", "Z", "0", "9", ".", "-", "_", "+", "@", "xn--", "--", "com", "local", "test",
     "arpa", "invalid", "onion", "localhost", "\u212a", "ä", "=", '"', " ", "x" * 30]
)  # fmt: skip


@given(st.lists(_PIECES, max_size=20).map("".join))
@example("a@b.co")
@hsettings(max_examples=1500, deadline=None)
def test_generated_addresses_get_the_same_answer(raw):
    assert outcome(forms.normalize_email, raw) == outcome(reference, raw)


def test_plain_address_does_not_ask_email_validator(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("email-validator asked")

    monkeypatch.setattr(forms, "validate_email", refuse)
    assert forms.normalize_email("Grace.Hopper+status@Example.org") == (
        "grace.hopper+status@example.org"
    )
    with pytest.raises(AssertionError):
        forms.normalize_email('"quoted"@example.org')
