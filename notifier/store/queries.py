"""All query mixins in one class; each backend subclasses it and adds its connection layer."""

from __future__ import annotations

from .base import BaseStore
from .deliveries import DeliveryQueries
from .feeds import FeedQueries
from .subscribers import SubscriberQueries


class Queries(FeedQueries, DeliveryQueries, SubscriberQueries, BaseStore):
    """The store interface: every method takes and returns plain values."""
