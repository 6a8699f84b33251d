"""BatchSender: records grouped per topic-partition, Kafka's acknowledgements awaited."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import RecordMetadata, TopicPartition

from advisering.worker.sending import BatchSender, SendFailed, partition_for


@dataclass
class FakeBatch:
    capacity: int
    records: list[tuple[bytes | None, bytes | None]] = field(default_factory=list)

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: Any) -> object | None:
        if len(self.records) >= self.capacity:
            return None
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)


@dataclass
class FakeProducer:
    """Stands in for AIOKafkaProducer's batch API: the real one is used by the integration tests."""

    capacity: int = 1000
    refuse: set[str] = field(default_factory=set)
    sent: list[tuple[str, int, FakeBatch]] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(6))

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.capacity)

    async def send_batch(self, batch: FakeBatch, topic: str, *,
                         partition: int) -> asyncio.Future[Any]:
        self.sent.append((topic, partition, batch))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if topic in self.refuse:
            future.set_exception(RuntimeError("KafkaTimeoutError"))
        else:
            base = self.offsets.get((topic, partition), 0)
            self.offsets[(topic, partition)] = base + batch.record_count()
            future.set_result(RecordMetadata(topic, partition, TopicPartition(topic, partition),
                                             base, -1, 0, 0))
        return future


def test_partition_is_aiokafkas_default_partitioner() -> None:
    """A key goes where aiokafka's (and Java's) murmur2 partitioner would put it."""
    partitioner = DefaultPartitioner()
    for number in range(200):
        key = f"ps1-citizen-{number}".encode()
        assert partition_for(key, 6, 0) == partitioner(key, list(range(6)), list(range(6)))


async def test_records_are_grouped_per_topic_partition_in_order() -> None:
    """One batch per topic-partition, records in their order; explicit partitions are kept."""
    producer = FakeProducer()
    sender = BatchSender(lambda: producer)
    keys = [f"k{i}".encode() for i in range(50)]
    records: list[Any] = [("out", None, key, b"v" + key) for key in keys]
    records.append(("changelog", 4, b"k1", None))
    last = await sender.send(records)
    by_slot = {(topic, partition): batch.records for topic, partition, batch in producer.sent}
    assert len(by_slot) == len(producer.sent)  # one batch per slot
    assert by_slot[("changelog", 4)] == [(b"k1", None)]
    for key in keys:
        slot = ("out", partition_for(key, 6, 0))
        assert (key, b"v" + key) in by_slot[slot]
    for slot, batch in by_slot.items():
        if slot[0] == "out":
            assert [k for k, _ in batch] == [k for k in keys if partition_for(k, 6, 0) == slot[1]]
        assert last[slot] == len(batch) - 1


async def test_a_full_batch_is_handed_over_and_a_new_one_started() -> None:
    """More records than a batch holds make several batches; the last offset counts them all."""
    producer = FakeProducer(capacity=3)
    sender = BatchSender(lambda: producer)
    last = await sender.send([("out", 2, b"k", str(i).encode()) for i in range(8)])
    assert [len(batch.records) for _, _, batch in producer.sent] == [3, 3, 2]
    assert last == {("out", 2): 7}


async def test_a_refused_batch_raises_send_failed() -> None:
    """When Kafka refuses a batch, send raises instead of letting the offsets be committed."""
    producer = FakeProducer(refuse={"dead"})
    sender = BatchSender(lambda: producer)
    with pytest.raises(SendFailed, match="1 of 2 batches refused"):
        await sender.send([("ok", 0, b"a", b"1"), ("dead", 0, b"b", b"2")])


async def test_nothing_to_send_sends_nothing() -> None:
    """An empty batch of records makes no request."""
    producer = FakeProducer()
    assert await BatchSender(lambda: producer).send([]) == {}
    assert producer.sent == []
