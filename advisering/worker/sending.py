"""Batched sends: a batch of events' records goes out as one Kafka batch per topic-partition.

Why: Faust's ``Topic.send`` costs about a hundred microseconds of Python per
record (a FutureMessage, aiokafka's accumulator, and with ``linger 0`` close to
one produce request per record), most of the worker's time when sent one by one. The
agents take events in batches (``stream.take_events``); the records they
produce go into aiokafka ``BatchBuilder`` objects and are handed over with one
``send_batch`` per topic-partition.

Partitions are chosen exactly as aiokafka's (and the Java client's) default
partitioner does, murmur2 of the key, so a pseudonym reaches the same
repartition-topic partition as with ``Topic.send`` and the citizens table stays
co-partitioned with it.

At-least-once: :meth:`BatchSender.send` returns only when Kafka has
acknowledged every batch, and the agents ack their events only after that, so
an offset is never committed ahead of its records. A batch Kafka refuses after
the producer's own retries raises :class:`SendFailed`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from aiokafka.partitioner import murmur2

from advisering import metrics

# (topic, partition or None for the key's partition, key, value or None for a tombstone)
Record = tuple[str, int | None, bytes | None, bytes | None]


class SendFailed(RuntimeError):
    """Kafka did not accept a batch of the worker's records."""


class BatchProducer(Protocol):
    """The part of aiokafka's AIOKafkaProducer this module uses (its public batch API)."""

    def partitions_for(self, topic: str) -> Awaitable[set[int]]:
        """The partition numbers of ``topic``."""

    def create_batch(self) -> Any:
        """An empty batch to append records to."""

    def send_batch(self, batch: Any, topic: str, *, partition: int) -> Awaitable[Any]:
        """Hand a batch over for one partition; gives the future of Kafka's acknowledgement."""


def partition_for(key: bytes | None, partitions: int, spread: int) -> int:
    """Aiokafka's default partitioner: murmur2 of the key; keyless records spread round."""
    if key is None:
        return spread % partitions
    return _positive_murmur2(key) % partitions


@functools.lru_cache(maxsize=65536)
def _positive_murmur2(key: bytes) -> int:
    """murmur2 of a key, as the partitioners use it; cached.

    aiokafka's murmur2 is pure Python, about ten microseconds for a pseudonym,
    and a citizen's pseudonym is hashed again for each of its events and
    audit records. 65,536 keys are a few megabytes.
    """
    hashed: int = murmur2(key)
    return hashed & 0x7FFFFFFF


class BatchSender:
    """Sends records grouped per topic-partition and waits for Kafka's acknowledgements."""

    def __init__(self, producer: Callable[[], BatchProducer]) -> None:
        self._producer = producer
        self._partitions: dict[str, int] = {}
        self._spread = 0

    async def _partition_count(self, producer: BatchProducer, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            found = await producer.partitions_for(topic)  # waits for the topic's metadata
            if not found:
                raise SendFailed(f"topic {topic} has no partitions")
            count = self._partitions[topic] = len(found)
        return count

    async def send(self, records: Iterable[Record]) -> dict[tuple[str, int], int]:
        """Send ``records`` in order per partition and wait for Kafka's acknowledgements.

        Returns the offset of the last record written per (topic, partition).
        """
        producer = self._producer()
        open_batches: dict[tuple[str, int], Any] = {}
        deliveries: list[tuple[tuple[str, int], int, asyncio.Future[Any]]] = []
        for topic, fixed, key, value in records:
            partition = fixed
            if partition is None:
                self._spread += 1
                partition = partition_for(key, await self._partition_count(producer, topic),
                                          self._spread)
            slot = (topic, partition)
            batch = open_batches.get(slot)
            if batch is None:
                batch = open_batches[slot] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                # Full: hand it over and start the next one (the first record always fits).
                deliveries.append((slot, batch.record_count(),
                                   await producer.send_batch(batch, topic, partition=partition)))
                batch = open_batches[slot] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        for slot, batch in open_batches.items():
            deliveries.append((slot, batch.record_count(),
                               await producer.send_batch(batch, slot[0], partition=slot[1])))
        if not deliveries:
            return {}
        metrics.SEND_BATCHES.inc(len(deliveries))
        results = await asyncio.gather(*(future for _, _, future in deliveries),
                                       return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise SendFailed(f"{len(failures)} of {len(results)} batches refused: "
                             f"{type(failures[0]).__name__}: {failures[0]}")
        last: dict[tuple[str, int], int] = {}
        for (slot, count, _), metadata in zip(deliveries, results, strict=True):
            base: int = getattr(metadata, "offset", -1)  # aiokafka's RecordMetadata
            last[slot] = max(last.get(slot, -1), base + count - 1)
        return last
