"""Helpers for tests and benchmarks that talk to a real broker.

Shipped in the package (as structlog ships ``structlog.testing``) so that the
project's own tests, the benchmarks and an operator's smoke test share them.
Each takes a :class:`~advisering.kafka.connection.KafkaConnection`, so they
work against a secured cluster as the components do
(``KafkaConnection.from_settings(settings)``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Consumer, TopicPartition

from advisering.engine.matcher import Matcher
from advisering.engine.rules import load_rules
from advisering.events import Vocabulary
from advisering.kafka.clients import consumer_config
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.reading import Record, read_to_end, topic_end
from advisering.kafka.topics import load_vocabulary
from advisering.settings import Settings

__all__ = ["Record", "end_offsets", "group_lag", "group_positions", "kafka_at",
           "load_matcher_and_vocabulary", "read_topic", "wait_until_idle"]


def kafka_at(bootstrap: str) -> KafkaConnection:
    """The connection to the cluster at ``bootstrap`` with this environment's security settings.

    For tests and benchmarks that were given a cluster's address (a test
    broker, a benchmark's rig): the ``ADVISERING_KAFKA_*`` variables apply
    as they do to the components, so the same test runs on a secured cluster.
    """
    return KafkaConnection.from_settings(Settings(bootstrap_servers=bootstrap))


def load_matcher_and_vocabulary(settings: Settings) -> tuple[Matcher, Vocabulary]:
    """The rules of ``settings.rules_dir`` checked against its topics' vocabulary, as the worker."""
    vocabulary = load_vocabulary(settings.topics_dir, settings)
    return Matcher(load_rules(settings.rules_dir, vocabulary)), vocabulary


def end_offsets(kafka: KafkaConnection, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """The high watermark of every partition of ``topic``."""
    return topic_end(kafka, topic, timeout)


def read_topic(
    kafka: KafkaConnection, topic: str, start: dict[int, int] | None = None, *,
    timeout: float = 30.0,
) -> list[Record]:
    """Records of ``topic`` from ``start`` offsets (default: the beginning) to its end now.

    Raises :class:`~advisering.kafka.reading.ReadIncomplete` when the end is
    not reached within ``timeout`` seconds.
    """
    return read_to_end(kafka, topic, start, timeout=timeout, purpose="testing")


def group_lag(kafka: KafkaConnection, group: str, topics: Iterable[str]) -> int:
    """Records not yet committed by consumer group ``group`` on ``topics``."""
    return sum(behind for _, _, _, behind in group_positions(kafka, group, topics))


def group_positions(
    kafka: KafkaConnection, group: str, topics: Iterable[str]
) -> list[tuple[str, int, int, int]]:
    """(topic, partition, committed offset or -1, records behind the end) for ``group``."""
    # Reads the group's committed offsets only: it never subscribes, so never joins.
    consumer = Consumer(consumer_config(kafka, group=group, client_id="advisering-lag-probe"))
    try:
        positions = []
        for topic in topics:
            ends = end_offsets(kafka, topic)
            committed = consumer.committed([TopicPartition(topic, p) for p in ends], timeout=10)
            for tp in committed:
                done = tp.offset if tp.offset >= 0 else 0
                positions.append((topic, tp.partition, tp.offset,
                                  max(0, ends[tp.partition] - done)))
        return positions
    finally:
        consumer.close()


def wait_until_idle(
    kafka: KafkaConnection, group: str, topics: list[str], timeout: float = 120.0
) -> None:
    """Wait until ``group`` has committed everything on ``topics`` (twice in a row).

    On timeout the error names every partition still behind, with its
    committed offset: a stall at one partition reads differently from a
    worker that stopped altogether.
    """
    deadline = time.monotonic() + timeout
    quiet = 0
    lag = -1
    while time.monotonic() < deadline:
        lag = group_lag(kafka, group, topics)
        quiet = quiet + 1 if lag == 0 else 0
        if quiet >= 2:
            return
        time.sleep(0.5)
    behind = [f"{topic}[{partition}] committed {committed}, {count} behind"
              for topic, partition, committed, count in group_positions(kafka, group, topics)
              if count]
    raise TimeoutError(f"group {group} still has {lag} uncommitted record(s) on {topics}: "
                       + "; ".join(behind))
