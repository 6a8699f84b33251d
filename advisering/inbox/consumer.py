"""Feeding the inbox from ``advisering.notifications``: store first, then commit.

A background thread consumes the topic in batches, stores each batch in one
transaction of the store (ignoring ids it already has; the store's calls run
on the event loop), commits the Kafka offsets only after that, and then
hands the new notifications to the listeners (the live stream and the
delivery channels) on the event loop. With
``channels_for`` the store records each new notification's channel deliveries
as pending in that same transaction, before any listener sees it.

Several ``serve`` replicas on one PostgreSQL store form one consumer group,
so each notification is consumed by one of them (and stored once by id even
when a rebalance hands a batch to two). When the store fails (the database
is away), nothing is committed: the consumer goes back to its committed
offsets and tries the batch again after a pause.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from advisering import metrics
from advisering.engine.notification import Notification
from advisering.inbox.storage import InboxStorage
from advisering.inbox.store import ChannelsFor
from advisering.kafka.clients import consumer_config
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.polling import PollThread
from advisering.kafka.topics import NOTIFICATIONS
from advisering.log import get_logger

log = get_logger(__name__)

Listener = Callable[[list[Notification]], None]
STORE_RETRY_SECONDS = 2.0


class StoreFailed(Exception):
    """The store could not take a batch (its cause says why); nothing was committed."""


def inbox_consumer_config(kafka: KafkaConnection, group: str) -> dict[str, Any]:
    """The inbox's consumer: commits itself, after the batch is stored (never automatically)."""
    return consumer_config(kafka, group=group, client_id="advisering-inbox")


class NotificationConsumer:
    """Stores the notifications topic in the inbox and tells the listeners of new ones."""
    def __init__(
        self, kafka: KafkaConnection, group: str, store: InboxStorage, *,
        channels_for: ChannelsFor | None = None,
    ) -> None:
        self.store = store
        self._channels_for = channels_for
        self._consumer = Consumer(inbox_consumer_config(kafka, group))
        self._listeners: list[Listener] = []
        self._poller = PollThread("inbox-consumer", self._step)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.assigned = threading.Event()

    def add_listener(self, listener: Listener) -> None:
        """Called on the event loop with each batch of new notifications."""
        self._listeners.append(listener)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Subscribe and start polling in a thread; listeners are called on ``loop``."""
        self._loop = loop
        self._consumer.subscribe([NOTIFICATIONS], on_assign=lambda *_: self.assigned.set())
        self._poller.start()

    def stop(self) -> None:
        """Stop polling and leave the consumer group."""
        self._poller.stop(timeout=10)
        self._consumer.close()

    def _step(self) -> None:
        try:
            self.poll_once()
        except KafkaException as exc:
            log.warning("inbox_consume_failed", error=str(exc)[:200])
            self._poller.pause(1.0)
        except StoreFailed as exc:
            log.warning("inbox_store_failed", error=type(exc.__cause__).__name__)
            self._rewind()
            self._poller.pause(STORE_RETRY_SECONDS)

    def _rewind(self) -> None:
        """Back to the committed offsets: the batch that was not stored comes again."""
        assigned = self._consumer.assignment()
        if not assigned:
            return
        for tp in self._consumer.committed(assigned, timeout=10):
            if tp.offset >= 0:
                self._consumer.seek(tp)
            else:  # nothing committed yet: from the start, as auto.offset.reset says
                self._consumer.seek(TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING))

    def _store(self, batch: list[Notification]) -> list[Notification]:
        """Store one batch through the event loop; StoreFailed when the store refuses."""
        assert self._loop is not None, "start() first"
        future = asyncio.run_coroutine_threadsafe(
            self.store.add_many(batch, channels_for=self._channels_for), self._loop)
        try:
            return future.result()
        except Exception as exc:
            raise StoreFailed from exc

    def poll_once(self, timeout: float = 0.5) -> int:
        """Consume, store and commit one batch; returns how many notifications were new."""
        messages = self._consumer.consume(num_messages=500, timeout=timeout)
        batch: list[Notification] = []
        for message in messages:
            if message.error():
                continue
            try:
                value = Notification.decode(message.value() or b"")
            except ValueError:
                # Our own topic should never hold this; keep the position and say so.
                log.error("inbox_notification_unreadable", partition=message.partition(),
                          offset=message.offset())
                metrics.INBOX_UNREADABLE.inc()
                continue
            batch.append(value)
        if not messages:
            return 0
        new = self._store(batch)
        self._consumer.commit(asynchronous=False)
        metrics.INBOX_STORED.inc(len(new))
        if new and self._loop is not None:
            for listener in self._listeners:
                self._loop.call_soon_threadsafe(listener, new)
        return len(new)
