"""Delivery of notifications beyond the inbox: signed webhooks and e-mail digests.

Channels are configured per department or unit in the channels file
(``config.py``); ``DeliveryRouter`` sends each notification to the channels
its recipient matches. Undeliverable notifications become dead letters that
name the notification but never carry its text or the citizen pseudonym.
"""

from advisering.delivery.config import Channel, ChannelsConfig, load_channels
from advisering.delivery.email import EmailDigest
from advisering.delivery.router import DeliveryRouter
from advisering.delivery.sink import DeadLetterSink, DeliveryClosedError
from advisering.delivery.webhook import WebhookDelivery

__all__ = [
    "Channel",
    "ChannelsConfig",
    "DeadLetterSink",
    "DeliveryClosedError",
    "DeliveryRouter",
    "EmailDigest",
    "WebhookDelivery",
    "load_channels",
]
