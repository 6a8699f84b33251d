"""Reading a topic up to its high watermark, bounded in time and in records.

The rule set, a backtest's history, the demo's viewer and the tests all read
a topic from some offsets to the end it had when they began. That end is
fixed at the start, so records published meanwhile cannot make a read run
forever, and every read has a deadline (or an idle limit, for a long replay)
and optionally a record limit: when one is exceeded it raises
:class:`ReadIncomplete` saying which partitions were not read to their end,
rather than hanging or silently returning less.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from advisering.kafka.clients import consumer_config
from advisering.kafka.connection import KafkaConnection


class TopicReadError(RuntimeError):
    """The topic cannot be read at all: the broker does not answer or has no such topic."""


class ReadIncomplete(TimeoutError):
    """A bounded read stopped before the end: deadline, idle limit or record limit exceeded."""


@dataclass(frozen=True)
class Record:
    """One record as read: where it was, its key, value and (CreateTime) timestamp."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int = 0


def open_consumer(kafka: KafkaConnection, purpose: str) -> Consumer:
    """A consumer in a throwaway group that commits nothing; it reports each partition's end."""
    return Consumer(reader_config(kafka, purpose))


def reader_config(kafka: KafkaConnection, purpose: str) -> dict[str, Any]:
    """A reader's consumer: a group of its own that commits nothing, reporting partition ends."""
    return consumer_config(kafka, group=f"advisering-{purpose}-{uuid.uuid4()}",
                           client_id=f"advisering-{purpose}",
                           props={"enable.partition.eof": True})


def end_offsets(consumer: Consumer, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """The high watermark of every partition of ``topic``, by partition."""
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise TopicReadError(f"topic {topic} not found")
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
                for p in sorted(found.partitions)}
    except KafkaException as exc:
        raise TopicReadError(f"cannot read {topic}: {exc}") from exc


def read_range(
    consumer: Consumer, topic: str, start: Mapping[int, int], end: Mapping[int, int], *,
    timeout: float | None = 30.0, idle_timeout: float | None = None,
    max_records: int | None = None,
) -> Iterator[Record]:
    """The records of ``topic`` from ``start`` up to (not including) ``end``, in order.

    A partition missing from ``start`` or ``end`` is not read. Raises
    :class:`ReadIncomplete` after ``timeout`` seconds in all, after
    ``idle_timeout`` seconds without a record, or before yielding record
    number ``max_records + 1``.
    """
    todo = {p for p in end if p in start and start[p] < end[p]}
    if not todo:
        return
    consumer.assign([TopicPartition(topic, p, start[p]) for p in sorted(todo)])
    now = time.monotonic()
    deadline = None if timeout is None else now + timeout
    last_record, count = now, 0
    while todo:
        now = time.monotonic()
        if deadline is not None and now > deadline:
            raise ReadIncomplete(f"{topic}: partitions {sorted(todo)} not read to their end "
                                 f"within {timeout:g}s")
        if idle_timeout is not None and now - last_record > idle_timeout:
            raise ReadIncomplete(f"no records from {topic} for {idle_timeout:g}s; "
                                 f"partitions {sorted(todo)} not read to their end")
        for message in consumer.consume(num_messages=1000, timeout=0.2):
            partition = int(message.partition() or 0)
            error = message.error()
            if error is not None:
                # The partition's end (a public code despite its name): reached
                # even when compaction removed the records just before ``end``.
                if error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001 - public code
                    _done(consumer, topic, partition, todo)
                continue
            offset = int(message.offset() or 0)
            if partition not in todo or offset >= end[partition]:
                _done(consumer, topic, partition, todo)
                continue
            last_record = time.monotonic()
            count += 1
            if max_records is not None and count > max_records:
                raise ReadIncomplete(f"{topic} holds more than {max_records} records to read")
            yield Record(topic, partition, offset, message.key(), message.value(),
                         message.timestamp()[1])
            if offset + 1 >= end[partition]:
                _done(consumer, topic, partition, todo)


def read_to_end(
    kafka: KafkaConnection, topic: str, start: Mapping[int, int] | None = None, *,
    timeout: float = 30.0, max_records: int | None = None, purpose: str = "reader",
) -> list[Record]:
    """The records of ``topic`` from ``start`` (default: the beginning) to its end now."""
    consumer = open_consumer(kafka, purpose)
    try:
        ends = end_offsets(consumer, topic, timeout)
        begin = {p: (start or {}).get(p, 0) for p in ends}
        return list(read_range(consumer, topic, begin, ends, timeout=timeout,
                               max_records=max_records))
    finally:
        consumer.close()


def topic_end(kafka: KafkaConnection, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """The high watermark of every partition of ``topic``, with a consumer of its own."""
    consumer = open_consumer(kafka, "end")
    try:
        return end_offsets(consumer, topic, timeout)
    finally:
        consumer.close()


def _done(consumer: Consumer, topic: str, partition: int, todo: set[int]) -> None:
    if partition in todo:
        todo.discard(partition)
        consumer.pause([TopicPartition(topic, partition)])
