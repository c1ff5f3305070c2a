"""All query mixins in one class; each backend subclasses it and adds its connection layer."""

from __future__ import annotations

from .alerts import AlertQueries
from .base import BaseStore
from .calendar import CalendarQueries
from .channels import ChannelQueries
from .charts import ChartQueries
from .deliveries import DeliveryQueries
from .dispatch import DispatchQueries
from .feeds import FeedQueries
from .imports import ImportQueries
from .leases import LeaseQueries
from .metrics import MetricQueries
from .ops import OpsQueries
from .reminders import ReminderQueries
from .subscribers import SubscriberQueries
from .webhooks import WebhookQueries


class Queries(
    FeedQueries,
    DeliveryQueries,
    DispatchQueries,
    ChannelQueries,
    SubscriberQueries,
    OpsQueries,
    ReminderQueries,
    WebhookQueries,
    LeaseQueries,
    CalendarQueries,
    MetricQueries,
    ChartQueries,
    AlertQueries,
    ImportQueries,
    BaseStore,
):
    """The store interface: every method takes and returns plain values."""
