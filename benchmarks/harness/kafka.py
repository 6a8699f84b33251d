"""Topic set-up and clean-up, preloading and consumers for the measured phases."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from advisering.kafka.apply import already_exists
from harness import log

PARTITIONS = 6  # as advisering.case-events and the worker's default


def create_topics(bootstrap: str, names: list[str], partitions: int = PARTITIONS,
                  config: dict[str, str] | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = config or {"cleanup.policy": "delete", "retention.ms": str(86400 * 1000)}
    new = [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config)
           for name in names]
    for name, future in admin.create_topics(new, operation_timeout=30).items():
        try:
            future.result(timeout=60)
        except KafkaException as exc:
            if not already_exists(exc):
                raise RuntimeError(f"cannot create topic {name}: {exc}") from exc


def delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics(names, operation_timeout=30).values():
        try:
            future.result(timeout=60)
        except Exception as exc:  # noqa: BLE001 - best effort: a benchmark's leftovers
            log(f"  (could not delete a topic: {exc})")


def delete_app_topics(bootstrap: str, app_id: str) -> None:
    """Drop a finished worker's internal topics (repartition, changelog, Faust's own)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(f"{app_id}-")]
    if names:
        delete_topics(bootstrap, names)


def produce_all(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]],
                timeout: float = 120.0) -> float:
    """Produce (key, value) records, wait for every acknowledgement; returns seconds.

    Keys are partitioned with murmur2 as the Java client and aiokafka (Faust) do.
    """
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all",
                         "enable.idempotence": True, "compression.type": "none",
                         "batch.num.messages": 10000, "queue.buffering.max.messages": 500000,
                         "partitioner": "murmur2_random"})
    failures: list[str] = []

    def delivered(error: KafkaError | None, _message: Any) -> None:
        if error is not None:
            failures.append(error.str())

    began = time.perf_counter()
    deadline = time.monotonic() + timeout
    for key, value in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"producing to {topic} timed out") from None
        producer.poll(0)
    remaining = producer.flush(max(1.0, deadline - time.monotonic()))
    if remaining or failures:
        raise RuntimeError(f"preload to {topic}: {remaining} unconfirmed, failures {failures[:3]}")
    return time.perf_counter() - began


def commit_offsets(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Start consumer group ``group`` at ``offsets`` (so reruns skip older records)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                        asynchronous=False)
    finally:
        consumer.close()


def assigned_consumer(bootstrap: str, starts: dict[str, dict[int, int]]) -> Consumer:
    consumer = Consumer({"bootstrap.servers": bootstrap,
                         "group.id": f"bench-watch-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": 20})
    consumer.assign([TopicPartition(topic, p, o) for topic, offsets in starts.items()
                     for p, o in offsets.items()])
    return consumer
