"""All query mixins in one class; each backend subclasses it and adds its connection layer."""

from __future__ import annotations

from .base import BaseStore
from .feeds import FeedQueries
from .webhooks import WebhookQueries


class Queries(FeedQueries, WebhookQueries, BaseStore):
    """The store interface: every method takes and returns plain values."""
