"""Integers from URLs, query strings and forms, bounded to what the database can hold.

Every id column is INTEGER on SQLite (a 64-bit signed integer) and BIGINT on PostgreSQL
(notifier/store/migrations.py, `to_postgres`), so an id, an offset or a cursor is at most
2**63 - 1. A larger number used to reach the driver and fail there with a 500 (SQLite:
"OverflowError: Python int too large to convert to SQLite INTEGER"; PostgreSQL: "bigint out of
range"). Python's int() also reads "١", " 7", "+7" and "1_0", and refuses more than 4300 digits
(ValueError, since 3.11), so only plain ASCII digits of bounded length are read at all.

- Path segments: the `id` converter (`/subscribers/<id:subscriber_id>`), registered on the app
  by app.py: 1..MAX_ID, anything else matches no route, so it is a 404. tests/test_admin_input.py
  fails when any rule uses Werkzeug's unbounded `int` converter instead.
- Query strings and forms: `int_arg` and `id_arg`. A missing or empty value gets the default;
  any other value that is not a plain number in range is a 400 (`InvalidNumber`, shown as a
  translated page that names the parameter).
- A list of ids polled by a script (live.json's `ids`): `parse_id` gives None for anything that
  is not an id and the caller skips it, as it always skipped non-numbers.
- Any query or form value with a NUL character: `refuse_nul` (run before every ops view) answers
  400 (`NulCharacter`). PostgreSQL text cannot hold one ("text fields cannot contain NUL (0x00)
  bytes"), so a search or a reason with one failed in the database, and no person types one.
"""

from __future__ import annotations

import re

from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest
from werkzeug.routing import BaseConverter, ValidationError

MAX_ID = 2**63 - 1
_NUMBER = re.compile(r"[0-9]{1,19}")  # MAX_ID has 19 digits


def digits_up_to(limit: int) -> str:
    """A regex for the numbers 1..limit in plain digits (no sign, no leading zero).

    The path converter needs the bound in its pattern: Werkzeug checks a rule's methods before
    it runs the converter, so a number refused only by to_python() would turn a POST to
    /announcements/<too big>/send into a 405 (the GET rule there "matched") instead of a 404.
    """
    top = str(limit)
    shorter = [f"[1-9][0-9]{{0,{len(top) - 2}}}"] if len(top) > 1 else []
    same_length = []
    for i, digit in enumerate(top):
        low = 1 if i == 0 else 0
        if int(digit) > low:  # top[:i], a smaller digit here, then any digits
            rest = len(top) - i - 1
            same_length.append(f"{top[:i]}[{low}-{int(digit) - 1}][0-9]{{{rest}}}")
    return "(?:" + "|".join([*shorter, *same_length, top]) + ")"


def parse_id(text: str | None, minimum: int = 1, maximum: int = MAX_ID) -> int | None:
    """`text` as an int when it is plain ASCII digits between minimum and maximum, else None."""
    if text is None or not _NUMBER.fullmatch(text):
        return None
    number = int(text)
    return number if minimum <= number <= maximum else None


class IdConverter(BaseConverter):
    """`<id:name>`: a row id, 1..MAX_ID, written without leading zeros; others are a 404."""

    regex = digits_up_to(MAX_ID)
    weight = 50  # as Werkzeug's number converters: /x/<id:n> wins over /x/<name>

    def to_python(self, value: str) -> int:
        number = parse_id(value)
        if number is None:
            raise ValidationError()
        return number

    def to_url(self, value) -> str:
        # Building never refuses: a link to an id that is no row (an audit entry about id 0)
        # leads to the 404 page, as a link to a deleted row does.
        return str(int(value))


class InvalidParameter(BadRequest):
    """A query or form value the page cannot use (a 400); message() says why, translated."""

    def message(self) -> str:
        raise NotImplementedError


class InvalidNumber(InvalidParameter):
    """A query or form value that should be a number in a range and is not."""

    def __init__(self, name: str, minimum: int, maximum: int):
        super().__init__(f"{name} must be a whole number from {minimum} to {maximum}")
        self.parameter, self.minimum, self.maximum = name, minimum, maximum

    def message(self) -> str:
        """The reason in the reader's language, for the error page."""
        return _(
            "“%(name)s” must be a whole number from %(minimum)s to %(maximum)s.",
            name=self.parameter,
            minimum=self.minimum,
            maximum=self.maximum,
        )


class NulCharacter(InvalidParameter):
    """A query or form value with a NUL character in it."""

    def __init__(self):
        super().__init__("a query or form value contains a NUL character")

    def message(self) -> str:
        return _(
            "The form contains an invisible control character (NUL) that cannot be saved. "
            "Please remove it and send the form again."
        )


def refuse_nul(*sources: MultiDict) -> None:
    """Raise NulCharacter when any key or value of the given MultiDicts holds a NUL."""
    for values in sources:
        for key, value in values.items(multi=True):
            if "\x00" in key or "\x00" in value:
                raise NulCharacter()


def int_arg(
    values: MultiDict,
    name: str,
    default: int | None = None,
    *,
    minimum: int = 0,
    maximum: int = MAX_ID,
) -> int | None:
    """The integer `name` from request.args or request.form; `default` when missing or empty.

    Raises InvalidNumber (400) for anything else that is not plain digits in [minimum, maximum].
    """
    text = values.get(name, "")
    if text == "":
        return default
    number = parse_id(text, minimum, maximum)
    if number is None:
        raise InvalidNumber(name, minimum, maximum)
    return number


def id_arg(values: MultiDict, name: str) -> int | None:
    """A row id from request.args or request.form (1..MAX_ID); None when missing or empty."""
    return int_arg(values, name, minimum=1)
