"""The inbox's notifications to webhooks and e-mail, durably: at least once, never lost.

The delivery channels queue in memory, so on their own a notification still
queued when the service stops would never be delivered. This module ties the
``DeliveryRouter`` to the inbox's store (SQLite or PostgreSQL):

1. the consumer stores each new notification together with its due channel
   deliveries, state ``pending`` (one transaction, see ``InboxStore.add_many``);
2. ``listener`` hands the new notifications to the router (it only queues);
3. the channels report each final state (delivered or dead-lettered) through
   ``on_settled``, which marks that delivery ``settled``;
4. at start-up everything still pending is dispatched again, to exactly the
   channels it is still due on.

The price is at-least-once: a notification that was delivered but not yet
marked settled when the process died is sent again. A webhook receiver then
sees it twice, always with the same body id and the same ``Idempotency-Key``
(the notification id), and drops the repeat; an e-mail digest may list it in
two e-mails. Shutdown does not dead-letter what is still queued (that would
turn every planned restart into operator work): it stays pending for the next
start.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable

import aiohttp

from advisering import metrics
from advisering.delivery.config import ChannelsConfig
from advisering.delivery.router import DeliveryRouter
from advisering.delivery.sink import Clock, DeadLetterSink, Sleep
from advisering.engine.notification import Notification
from advisering.inbox.storage import InboxStorage
from advisering.log import get_logger

log = get_logger(__name__)

CHANNEL_REMOVED = "channel_removed"
"""Outcome of a pending delivery whose channel is no longer in the channels file."""


class DurableDelivery:
    """A ``DeliveryRouter`` whose every (notification, channel) is tracked in the store."""

    def __init__(
        self, config: ChannelsConfig, store: InboxStorage, dead_letter_sink: DeadLetterSink, *,
        clock: Clock = time.time, sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.store = store
        self.router = DeliveryRouter(
            config, dead_letter_sink, clock=clock, sleep=sleep, jitter=jitter, session=session,
            on_settled=self._settled,
        )
        self._batches: asyncio.Queue[list[Notification] | None] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False

    def channels_for(self, notification: Notification) -> list[str]:
        """The channels a new notification is due on; for ``InboxStorage.add_many``."""
        return self.router.channel_names(notification)

    async def start(self) -> int:
        """Start the channels and send again what is still pending; returns how many."""
        await self.router.start()
        redispatched = await self.redispatch()
        self._runner = asyncio.create_task(self._run())
        return redispatched

    async def redispatch(self) -> int:
        """Dispatch every pending delivery again, to just the channels it is still due on."""
        due = await self.store.unsettled()
        by_id: dict[str, tuple[Notification, list[str]]] = {}
        for item in due:  # in arrival order, so each recipient's lane keeps its order
            entry = by_id.setdefault(item.notification.id, (item.notification, []))
            entry[1].append(item.channel)
        for notification_id, (notification, channels) in by_id.items():
            queued = await self.router.dispatch(notification, channels=channels)
            for channel in set(channels) - set(queued):
                # The operator removed the channel: nothing can deliver this any more.
                await self._settled(notification_id, channel, CHANNEL_REMOVED)
        if due:
            metrics.DELIVERY_REDISPATCHED.inc(len(due))
            log.info("delivery_redispatched", deliveries=len(due), notifications=len(by_id))
        return len(due)

    def listener(self, notifications: list[Notification]) -> None:
        """Consumer listener (on the event loop): new, already-recorded notifications."""
        if self._closing:
            return  # still pending in the store: the next start sends them
        self._batches.put_nowait(notifications)

    async def _run(self) -> None:
        """Dispatch batches one after the other, so notifications keep their order."""
        while (batch := await self._batches.get()) is not None:
            for notification in batch:
                try:
                    await self.router.dispatch(notification)
                except Exception as exc:  # noqa: BLE001 - it stays pending; the next start sends it
                    log.error("delivery_dispatch_failed", notification_id=notification.id,
                              error=type(exc).__name__)

    async def _settled(self, notification_id: str, channel: str, outcome: str) -> None:
        """The channels' ``on_settled``: record the final state."""
        found = await self.store.mark_settled(notification_id, channel, outcome)
        if not found:
            log.warning("delivery_settled_unrecorded", notification_id=notification_id,
                        channel=channel, outcome=outcome)

    async def close(self, timeout: float = 10.0) -> None:
        """Dispatch what the consumer handed over, then close the router leaving the rest due."""
        self._closing = True
        if self._runner is not None:
            self._batches.put_nowait(None)
            done, _ = await asyncio.wait({self._runner}, timeout=timeout)
            if not done:
                self._runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._runner
            self._runner = None
        await self.router.close(timeout, dead_letter_rest=False)
