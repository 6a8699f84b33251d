"""Routes each notification to the delivery channels its recipient's rules select.

One ``WebhookDelivery`` or ``EmailDigest`` per configured channel, built once;
``dispatch`` only queues, so a consumer of ``advisering.notifications`` can
call it per record without waiting for any endpoint. Notifications whose
recipient matches no channel are counted: they still reach the inbox.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import aiohttp

from advisering import metrics
from advisering.delivery.config import ChannelsConfig
from advisering.delivery.email import EmailDigest
from advisering.delivery.sink import Clock, DeadLetterSink, Sleep
from advisering.delivery.webhook import WebhookDelivery
from advisering.log import get_logger

log = get_logger(__name__)


class DeliveryChannel(Protocol):
    """What the router needs of a channel's delivery."""

    name: str

    async def start(self) -> None: ...

    async def deliver(self, notification: Mapping[str, Any]) -> None: ...

    def pending(self) -> int: ...


class DeliveryRouter:
    """All configured channels, started and closed together."""

    def __init__(
        self, config: ChannelsConfig, dead_letter_sink: DeadLetterSink, *,
        clock: Clock = time.time, sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.config = config
        self.webhooks: dict[str, WebhookDelivery] = {}
        self.emails: dict[str, EmailDigest] = {}
        for channel in config.channels:
            if channel.webhook is not None:
                self.webhooks[channel.name] = WebhookDelivery(
                    channel.name, channel.webhook, dead_letter_sink, session=session,
                    clock=clock, sleep=sleep, jitter=jitter,
                )
            elif channel.email is not None:
                self.emails[channel.name] = EmailDigest(
                    channel.name, channel.email, dead_letter_sink, clock=clock, sleep=sleep,
                )
        self._channels: dict[str, DeliveryChannel] = {**self.webhooks, **self.emails}

    async def start(self) -> None:
        """Open the webhooks' HTTP sessions and start the e-mail digest timers."""
        for channel in self._channels.values():
            await channel.start()
        log.info("delivery_started", webhooks=len(self.webhooks), emails=len(self.emails))

    async def dispatch(self, notification: Mapping[str, Any]) -> list[str]:
        """Queue the notification on every matching channel; returns their names."""
        recipient = notification.get("recipient")
        if not isinstance(recipient, Mapping):
            log.warning("delivery_without_recipient", notification_id=notification.get("id"))
            metrics.DELIVERY_UNROUTED.inc()
            return []
        names = [c.name for c in self.config.channels_for(recipient)]
        if not names:
            metrics.DELIVERY_UNROUTED.inc()
            return []
        for name in names:
            await self._channels[name].deliver(notification)
        return names

    def pending(self) -> int:
        """Notifications not yet delivered, over all channels."""
        return sum(c.pending() for c in self._channels.values())

    async def flush(self) -> None:
        """Send the e-mail digests now (webhooks deliver continuously)."""
        for email in self.emails.values():
            await email.flush()

    async def close(self, timeout: float = 10.0) -> None:
        """Wait up to ``timeout`` for webhook lanes, send the last digests, dead-letter the rest."""
        await asyncio.gather(
            *(webhook.close(timeout) for webhook in self.webhooks.values()),
            *(email.close() for email in self.emails.values()),
        )
        log.info("delivery_closed")
