"""Routes each notification to the delivery channels its recipient's rules select.

One ``WebhookDelivery`` or ``EmailDigest`` per configured channel, built once;
``dispatch`` only queues, so a consumer of ``advisering.notifications`` can
call it per record without waiting for any endpoint. Notifications whose
recipient matches no channel are counted: they still reach the inbox.

``on_settled`` is handed to every channel: it hears of each (notification,
channel) that was delivered or dead-lettered. ``channel_names`` lets a durable
caller record which deliveries are due before it dispatches, and ``dispatch``
with ``channels`` sends a notification again to just the channels still due.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Collection
from typing import Protocol

import aiohttp

from advisering import metrics
from advisering.delivery.config import ChannelsConfig
from advisering.delivery.email import EmailDigest
from advisering.delivery.sink import Clock, DeadLetterSink, SettledHook, Sleep, no_settled_hook
from advisering.delivery.webhook import WebhookDelivery
from advisering.engine.notification import Notification
from advisering.log import get_logger

log = get_logger(__name__)


class DeliveryChannel(Protocol):
    """What the router needs of a channel's delivery."""

    name: str

    async def start(self) -> None:
        """Start the channel's background work before the first delivery."""

    async def deliver(self, notification: Notification) -> None:
        """Accept one notification (the channel sends it now or later, on its own)."""

    def pending(self) -> int:
        """How many accepted notifications are not yet sent."""


class DeliveryRouter:
    """All configured channels, started and closed together."""

    def __init__(
        self, config: ChannelsConfig, dead_letter_sink: DeadLetterSink, *,
        clock: Clock = time.time, sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        session: aiohttp.ClientSession | None = None,
        on_settled: SettledHook = no_settled_hook,
    ) -> None:
        self.config = config
        self.webhooks: dict[str, WebhookDelivery] = {}
        self.emails: dict[str, EmailDigest] = {}
        for channel in config.channels:
            if channel.webhook is not None:
                self.webhooks[channel.name] = WebhookDelivery(
                    channel.name, channel.webhook, dead_letter_sink, session=session,
                    clock=clock, sleep=sleep, jitter=jitter, on_settled=on_settled,
                )
            elif channel.email is not None:
                self.emails[channel.name] = EmailDigest(
                    channel.name, channel.email, dead_letter_sink, clock=clock, sleep=sleep,
                    on_settled=on_settled,
                )
        self._channels: dict[str, DeliveryChannel] = {**self.webhooks, **self.emails}

    async def start(self) -> None:
        """Open the webhooks' HTTP sessions and start the e-mail digest timers."""
        for channel in self._channels.values():
            await channel.start()
        log.info("delivery_started", webhooks=len(self.webhooks), emails=len(self.emails))

    def channel_names(self, notification: Notification) -> list[str]:
        """The channels ``dispatch`` would choose for this notification."""
        return [c.name for c in self.config.channels_for(notification.recipient)]

    async def dispatch(
        self, notification: Notification, *, channels: Collection[str] | None = None,
    ) -> list[str]:
        """Queue the notification on its channels; returns the names it was queued on.

        Without ``channels`` the recipient's matching channels are used. With
        ``channels`` (a re-dispatch of what is still due) exactly those are
        used; a name no longer configured is skipped and left out of the answer.
        """
        if channels is None:
            names = self.channel_names(notification)
            if not names:
                metrics.DELIVERY_UNROUTED.inc()
                return []
        else:
            names = [name for name in channels if name in self._channels]
            for name in channels:
                if name not in self._channels:
                    log.warning("delivery_channel_unknown", channel=name,
                                notification_id=notification.id)
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

    async def close(self, timeout: float = 10.0, *, dead_letter_rest: bool = True) -> None:
        """Wait up to ``timeout`` for webhook lanes, send the last digests, dead-letter the rest.

        ``dead_letter_rest=False`` leaves the rest unsettled instead (see the
        channels): for a caller that redelivers it after the restart.
        """
        await asyncio.gather(
            *(webhook.close(timeout, dead_letter_rest=dead_letter_rest)
              for webhook in self.webhooks.values()),
            *(email.close(dead_letter_rest=dead_letter_rest) for email in self.emails.values()),
        )
        log.info("delivery_closed")
