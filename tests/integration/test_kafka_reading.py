"""The one bounded read of a topic to its high watermark, on a real broker."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer

from advisering.kafka.reading import (
    ReadIncomplete,
    TopicReadError,
    open_consumer,
    read_range,
    read_to_end,
    topic_end,
)
from advisering.testing import kafka_at
from tests.integration.test_kafka_clients import create_topics


def filled_topic(bootstrap: str, count: int) -> str:
    """A new two-partition topic with ``count`` records, spread over both partitions."""
    topic = f"reading-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, topic, partitions=2)
    producer = Producer({"bootstrap.servers": bootstrap})
    for number in range(count):
        producer.produce(topic, value=str(number).encode(), partition=number % 2)
    assert producer.flush(30) == 0
    return topic


def test_reads_every_partition_to_the_end_it_had_at_the_start(bootstrap: str) -> None:
    """All records from the start offsets up to the high watermark, each partition in order."""
    topic = filled_topic(bootstrap, 10)
    assert topic_end(kafka_at(bootstrap), topic) == {0: 5, 1: 5}
    records = read_to_end(kafka_at(bootstrap), topic, {0: 2})
    assert [(r.partition, r.offset) for r in records if r.partition == 0] == [(0, 2), (0, 3),
                                                                              (0, 4)]
    assert len(records) == 3 + 5
    assert read_to_end(kafka_at(bootstrap), topic, {0: 5, 1: 5}) == []


def test_record_limit_and_deadline_raise_a_clear_error(bootstrap: str) -> None:
    """More records than allowed, or no time left, is ReadIncomplete naming the topic."""
    topic = filled_topic(bootstrap, 6)
    with pytest.raises(ReadIncomplete, match=f"{topic} holds more than 5 records"):
        read_to_end(kafka_at(bootstrap), topic, max_records=5)
    consumer = open_consumer(kafka_at(bootstrap), "test")
    try:
        with pytest.raises(ReadIncomplete, match=r"partitions \[0, 1\] not read to their end"):
            list(read_range(consumer, topic, {0: 0, 1: 0}, {0: 3, 1: 3}, timeout=-1.0))
    finally:
        consumer.close()


def test_a_missing_topic_is_an_error_not_a_hang(bootstrap: str) -> None:
    """Reading a topic the broker does not have fails at once with TopicReadError."""
    with pytest.raises(TopicReadError, match="not found"):
        read_to_end(kafka_at(bootstrap), f"absent-{uuid.uuid4().hex[:8]}", timeout=5.0)
