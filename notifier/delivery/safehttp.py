# PLACEHOLDER for net - replaced at merge
"""Outbound HTTP for channel targets (placeholder with the contract's names and signatures).

The real module (owner: net) resolves and vets addresses at send time, never follows redirects
and caps answers. This stand-in only checks a sign-up target: scheme, host rules per channel
and, with resolve=True, that the host's addresses are public (OWASP SSRF prevention cheat
sheet: no loopback, private, link-local, CGNAT, multicast, reserved or unspecified ranges).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


class UnsafeTarget(ValueError):
    """A target the service will not post to; `code` is one of 'scheme', 'host', 'address',
    'unresolvable', 'format'."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_target(channel: str, url: str, settings, *, resolve: bool = True) -> str:
    """The normalized URL, or UnsafeTarget."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeTarget("format", "the target is no valid URL") from None
    host = (parts.hostname or "").lower()
    if not host or parts.username is not None or parts.password is not None:
        raise UnsafeTarget("format", "the target URL needs a host and no user name")
    allow = settings.channel_allow_private_targets
    if parts.scheme != "https" and not (allow and parts.scheme == "http"):
        raise UnsafeTarget("scheme", "the target must be an https URL")
    if not allow:
        if channel == "slack" and (
            host != "hooks.slack.com" or not parts.path.startswith("/services/")
        ):
            raise UnsafeTarget("host", "a Slack target is a hooks.slack.com/services/ URL")
        if channel == "teams" and not (
            host.endswith(".logic.azure.com")
            or host.endswith(".environment.api.powerplatform.com")
            or host.endswith(".webhook.office.com")
        ):
            raise UnsafeTarget("host", "a Teams target is a Workflows webhook URL")
        if resolve:
            try:
                infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError):
                raise UnsafeTarget("unresolvable", "the target host does not resolve") from None
            if not all(_public(info[4][0]) for info in infos):
                raise UnsafeTarget("address", "the target resolves to a non-public address")
    return parts.geturl()


def post(url: str, body: bytes, headers: dict[str, str], settings, *, timeout: float) -> HttpAnswer:
    raise NotImplementedError("placeholder: notifier/delivery/safehttp.py comes from the net part")
