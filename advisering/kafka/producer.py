"""confluent-kafka's producer for asyncio code: one awaitable delivery per record.

A background thread serves the producer's delivery callbacks; each callback
resolves the asyncio future of its record on the event loop's thread. The
producer is idempotent with ``acks=all``, so a record reported delivered is
durably in Kafka.
"""

from __future__ import annotations

import asyncio
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from advisering.kafka.polling import PollThread


class DeliveryError(RuntimeError):
    """Kafka did not take a record (broker down, timeout, refused)."""


class AsyncProducer:
    """An idempotent confluent producer whose sends are awaited until Kafka confirms them.

    ``config`` is a client configuration (see ``client_config``); it may override the
    defaults (idempotence, ``acks=all``, ``linger.ms=2``).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        settings = {"enable.idempotence": True, "acks": "all", "linger.ms": 2}
        settings.update(config)
        self._producer = Producer(settings)
        self._poller = PollThread("kafka-delivery", lambda: self._producer.poll(0.05))

    def start(self) -> None:
        """Start the thread that serves the delivery callbacks (once, before sending)."""
        self._poller.start()

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Produce one record and wait until Kafka has confirmed it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def delivered(error: KafkaError | None, _message: Message) -> None:
            loop.call_soon_threadsafe(_settle, future, error)

        while True:
            try:
                self._producer.produce(topic, key=key, value=value, on_delivery=delivered)
                break
            except BufferError:
                await asyncio.sleep(0.01)
            except KafkaException as exc:
                raise DeliveryError(str(exc)) from exc
        await future

    async def send_all(self, records: list[tuple[str, bytes, bytes]]) -> None:
        """Produce many records; returns when all are confirmed, raises if any failed."""
        results = await asyncio.gather(
            *(self.send(topic, key, value) for topic, key, value in records),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise DeliveryError(f"{len(failures)} of {len(records)} record(s) not confirmed: "
                                f"{failures[0]}")

    async def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued (at most ``timeout`` seconds), then stop the callback thread."""
        await asyncio.to_thread(self._producer.flush, timeout)
        await asyncio.to_thread(self._poller.stop, 2.0)


def _settle(future: asyncio.Future[None], error: KafkaError | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(DeliveryError(error.str()))
