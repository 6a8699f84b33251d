"""Helpers for tests and benchmarks that talk to a real broker.

Shipped in the package (as structlog ships ``structlog.testing``) so that the
project's own tests, the benchmarks and an operator's smoke test share them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition


@dataclass(frozen=True)
class Record:
    """One Kafka record as read back, with where it was found."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def _consumer(bootstrap: str) -> Consumer:
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"advisering-testing-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })


def end_offsets(bootstrap: str, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """The high watermark of every partition of ``topic``."""
    consumer = _consumer(bootstrap)
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        partitions = metadata.topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in partitions
        }
    finally:
        consumer.close()


def read_topic(
    bootstrap: str, topic: str, start: dict[int, int] | None = None, *,
    until_count: int | None = None, timeout: float = 30.0,
) -> list[Record]:
    """Records of ``topic`` from ``start`` offsets (default: the beginning) to its end.

    The end is the high watermark when the call begins; with ``until_count``
    it reads until that many records arrived instead. Stops at ``timeout``.
    """
    consumer = _consumer(bootstrap)
    try:
        ends = end_offsets(bootstrap, topic)
        begin = {p: (start or {}).get(p, 0) for p in ends}
        consumer.assign([TopicPartition(topic, p, begin[p]) for p in ends])
        todo = {p for p in ends if ends[p] > begin[p]}
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until_count is not None:
                if len(records) >= until_count:
                    break
            elif not todo:
                break
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            record = Record(str(message.topic()), int(message.partition() or 0),
                            int(message.offset() or 0), message.key(), message.value())
            records.append(record)
            if record.offset + 1 >= ends.get(record.partition, 0):
                todo.discard(record.partition)
        return records
    finally:
        consumer.close()


def group_lag(bootstrap: str, group: str, topics: Iterable[str]) -> int:
    """Records not yet committed by consumer group ``group`` on ``topics``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        lag = 0
        for topic in topics:
            ends = end_offsets(bootstrap, topic)
            committed = consumer.committed([TopicPartition(topic, p) for p in ends], timeout=10)
            for tp in committed:
                done = tp.offset if tp.offset >= 0 else 0
                lag += max(0, ends[tp.partition] - done)
        return lag
    finally:
        consumer.close()


def wait_until_idle(
    bootstrap: str, group: str, topics: list[str], timeout: float = 120.0
) -> None:
    """Wait until ``group`` has committed everything on ``topics`` (twice in a row)."""
    deadline = time.monotonic() + timeout
    quiet = 0
    lag = -1
    while time.monotonic() < deadline:
        lag = group_lag(bootstrap, group, topics)
        quiet = quiet + 1 if lag == 0 else 0
        if quiet >= 2:
            return
        time.sleep(0.5)
    raise TimeoutError(f"group {group} still has {lag} uncommitted record(s) on {topics}")
