"""Ingest scenario 3: confluent-kafka producing the prepared events directly.

The same events, prepared and pseudonymised beforehand, to
advisering.case-events with the ingest producer's settings: as fast as it can
(flood), and with at most N records in flight (a closed loop like N
single-event HTTP clients). Events/s and per-record delivery latency
(delivery callback minus produce call).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
from confluent_kafka import KafkaError, Producer
from harness.cpu import ThreadCpuMeter
from harness.procfs import broker_pid
from harness.stats import latency_summary, median_run

from advisering.kafka.clients import CASE_EVENTS_PARTITIONER
from advisering.kafka.topics import CASE_EVENTS
from advisering.testing import end_offsets, kafka_at

# The ingest's producer (advisering.kafka.producer) uses these; direct uses the same,
# with the edge's partitioner (a citizen's key lands on the worker's partition for it).
PRODUCER_DEFAULTS: dict[str, Any] = {"enable.idempotence": True, "acks": "all", "linger.ms": 2,
                                     "partitioner": CASE_EVENTS_PARTITIONER}


def _produce_requests(stats: dict[str, Any]) -> int:
    """ProduceRequests sent so far, from librdkafka's statistics."""
    return sum(int(b.get("req", {}).get("Produce", 0)) for b in stats.get("brokers", {}).values())


@dataclass
class Deliveries:
    """Per record: when produce() was called and how long until its delivery callback."""

    n: int
    sent_at: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    confirmed: int = 0

    def __post_init__(self) -> None:
        self.sent_at = [0.0] * self.n
        self.latency = [0.0] * self.n

    def delivered(self, index: int, error: KafkaError | None, _message: Any) -> None:
        self.latency[index] = time.perf_counter() - self.sent_at[index]
        self.confirmed += 1
        if error is not None:
            self.failures.append(error.str())


@dataclass
class StatsProducer:
    """A producer with librdkafka's statistics every 100 ms (for its ProduceRequests)."""

    bootstrap: str
    latest: dict[str, Any] = field(default_factory=dict)
    producer: Producer = field(init=False)

    def __post_init__(self) -> None:
        self.producer = Producer({"bootstrap.servers": self.bootstrap,
                                  "client.id": "bench-direct", "statistics.interval.ms": 100,
                                  "stats_cb": self._seen, **PRODUCER_DEFAULTS})

    def _seen(self, text: str) -> None:
        self.latest.clear()
        self.latest.update(orjson.loads(text))

    def produce_requests(self) -> int:
        """ProduceRequests so far, from statistics newer than this call (-1: none came)."""
        self.latest.clear()
        deadline = time.monotonic() + 5
        while not self.latest and time.monotonic() < deadline:
            self.producer.poll(0.05)
        return _produce_requests(self.latest) if self.latest else -1

    def warm_up(self, record: tuple[bytes, bytes]) -> None:
        """Connection, metadata and the idempotent producer id, outside the figures."""
        self.producer.produce(CASE_EVENTS, key=record[0], value=record[1])
        if self.producer.flush(30):
            raise TimeoutError("direct: the warm-up record was not confirmed in 30s")


def produce_records(producer: Producer, records: list[tuple[bytes, bytes]],
                    window: int | None, deliveries: Deliveries, deadline: float,
                    timeout: float) -> None:
    """Produce every record (at most ``window`` unconfirmed), then flush."""
    n = len(records)
    for index, (key, value) in enumerate(records):
        if window is not None:
            while index - deliveries.confirmed >= window:
                producer.poll(0.05)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"direct: {deliveries.confirmed} of {n} confirmed in "
                                       f"{timeout}s")
        while True:
            deliveries.sent_at[index] = time.perf_counter()
            try:
                producer.produce(CASE_EVENTS, key=key, value=value,
                                 on_delivery=partial(deliveries.delivered, index))
                break
            except BufferError:
                producer.poll(0.05)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"direct: the queue stayed full for {timeout}s") from None
        producer.poll(0)
    remaining = producer.flush(max(1.0, deadline - time.monotonic()))
    if remaining or deliveries.failures or deliveries.confirmed != n:
        raise RuntimeError(f"direct: {remaining} unconfirmed, {deliveries.confirmed} confirmed, "
                           f"failures {deliveries.failures[:3]}")


def bench_direct(bootstrap: str, records: list[tuple[bytes, bytes]], window: int | None,
                 timeout: float) -> dict[str, Any]:
    """Produce ``records`` to case-events; ``window`` bounds the records in flight."""
    stats = StatsProducer(bootstrap)
    n = len(records)
    deliveries = Deliveries(n)
    stats.warm_up(records[0])
    requests_before = stats.produce_requests()
    before = end_offsets(kafka_at(bootstrap), CASE_EVENTS)
    meter = ThreadCpuMeter(None, broker_pid(bootstrap))
    deadline = time.monotonic() + timeout
    meter.start()
    began = time.perf_counter()
    produce_records(stats.producer, records, window, deliveries, deadline, timeout)
    seconds = time.perf_counter() - began
    cpu = meter.stop(n)
    requests_after = stats.produce_requests()
    produce_requests = (requests_after - requests_before
                        if requests_before >= 0 and requests_after >= 0 else None)
    written = sum(end_offsets(kafka_at(bootstrap), CASE_EVENTS).values()) - sum(before.values())
    return {"events": n, "window": window, "written_to_topic": written,
            "seconds": round(seconds, 3), "events_per_s": round(n / seconds),
            "delivery_latency": latency_summary(deliveries.latency),
            "produce_requests": produce_requests,
            "records_per_produce_request": (round(n / produce_requests, 1)
                                            if produce_requests else None),
            "cpu": cpu}


def bench_direct_rounds(bootstrap: str, records: list[tuple[bytes, bytes]],
                        window: int | None, rounds: int, timeout: float) -> dict[str, Any]:
    """``rounds`` runs; the figures of the median run by events/s, every run's rate kept."""
    return median_run([bench_direct(bootstrap, records, window, timeout)
                       for _ in range(rounds)])
