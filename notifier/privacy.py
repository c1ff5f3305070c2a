"""Email addresses in free text: masked when stored, and erased with their subscriber.

The rule. Text people type (an operator's reason for a suppression or a pause, anything an
ops form stores in the audit log) is stored with every email address in it replaced by MASK,
"[address]": the reason stays readable ("asked by phone; [address] confirmed") and holds no
personal data it does not need (GDPR art. 5(1)(c), data minimisation). The whole address goes,
domain included: a personal domain identifies its owner as well as the local part does. A
form's dedicated address field (search, test send) is not free text and is not masked.

Erasure (GDPR art. 17, "right to erasure"): erasing a subscriber deletes their rows and then
replaces every remaining copy of their address, in any letter case, in every text column of
every table with MASK (notifier/store/subscribers.py, SubscriberQueries.delete_subscriber).

An address here is what ADDRESS matches: a dot-atom local part of the usual characters
(RFC 5322 section 3.4.1, without the rarely used `!#$&'*/=?^{|}~`), "@", and a domain of
at least two labels. The forms mailer.mask_email writes for logs ("j***@example.com") are
already masked and do not match.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "[address]"
ADDRESS = re.compile(
    r"(?<![\w.%+-])[\w%+-]+(?:\.[\w%+-]+)*@(?:[\w-]+\.)+[\w-]*\w",
    re.UNICODE,
)


def mask_addresses(text: str) -> str:
    """`text` with every email address in it replaced by MASK."""
    return ADDRESS.sub(MASK, text)


def mask_values(value: Any) -> Any:
    """A JSON-shaped value (dict, list, str, number) with every string in it masked."""
    if isinstance(value, str):
        return mask_addresses(value)
    if isinstance(value, dict):
        return {key: mask_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [mask_values(item) for item in value]
    return value


def erase_address(text: str, address: str) -> str:
    """`text` with every copy of `address`, in any letter case, replaced by MASK; only whole
    addresses: erasing an@example.org leaves joan@example.org and an@example.org.uk alone."""
    whole = rf"(?<![\w.%+-]){re.escape(address)}(?![\w-]|\.\w)"
    return re.sub(whole, MASK, text, flags=re.IGNORECASE)
