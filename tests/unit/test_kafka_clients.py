"""librdkafka's log lines reach structlog at most once per kind per interval, with a count."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import Consumer, Producer

from advisering.kafka import clients as kafka_clients
from advisering.kafka.clients import (
    RateLimitedForwarder,
    case_events_producer_config,
    client_config,
)
from advisering.kafka.connection import KafkaConnection

PLAIN = KafkaConnection.plaintext("127.0.0.1:1")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def librdkafka_record(kind: str, text: str, level: int = logging.ERROR) -> logging.LogRecord:
    """A record as confluent-kafka's log callback makes it."""
    return logging.LogRecord("advisering.librdkafka", level, "", 0, "%s [%s] %s",
                             (kind, "rdkafka#consumer-1", text), None)


def forwarder(interval: float = 10.0) -> tuple[RateLimitedForwarder, Clock, list[Any]]:
    clock = Clock()
    lines: list[Any] = []
    handler = RateLimitedForwarder(interval, clock=clock,
                                   sink=lambda level, **fields: lines.append((level, fields)))
    return handler, clock, lines


def test_one_line_per_kind_per_interval_then_the_suppressed_count() -> None:
    """A hundred FAIL lines within 10 s give one line; the next after 10 s says 99 suppressed."""
    handler, clock, lines = forwarder(10.0)
    for _ in range(100):
        handler.handle(librdkafka_record("FAIL", "Connect to ipv4#127.0.0.1:1 failed"))
        clock.now += 0.05
    assert len(lines) == 1
    assert lines[0][1]["kind"] == "FAIL"
    assert lines[0][1]["suppressed"] == 0
    clock.now += 10.0
    handler.handle(librdkafka_record("FAIL", "Connect to ipv4#127.0.0.1:1 failed"))
    assert len(lines) == 2
    assert lines[1][1]["suppressed"] == 99
    assert lines[1][0] == logging.ERROR


def test_kinds_are_limited_independently() -> None:
    """A FAIL flood does not hide the first REQTMOUT line."""
    handler, _, lines = forwarder(10.0)
    for _ in range(5):
        handler.handle(librdkafka_record("FAIL", "refused"))
    handler.handle(librdkafka_record("REQTMOUT", "timed out", logging.WARNING))
    assert [fields["kind"] for _, fields in lines] == ["FAIL", "REQTMOUT"]


def test_lines_are_bounded_and_odd_records_are_forwarded() -> None:
    """A long librdkafka line is cut; a record not in confluent's shape still gets through."""
    handler, _, lines = forwarder(10.0)
    handler.handle(librdkafka_record("FAIL", "x" * 10_000))
    handler.handle(logging.LogRecord("x", logging.WARNING, "", 0, "plain %s", ("text",), None))
    assert len(lines[0][1]["message"]) == kafka_clients.MAX_LINE_CHARS
    assert lines[1][1] == {"kind": "x: plain %s", "client": "x", "message": "plain text",
                           "suppressed": 0}


def test_aiokafka_reconnect_errors_are_routed_through_the_limit(monkeypatch: Any) -> None:
    """With Kafka gone, aiokafka's per-attempt ERROR lines give one structlog line per template."""
    forwarded: list[Any] = []
    monkeypatch.setattr(kafka_clients.AIOKAFKA_FORWARDER, "_sink",
                        lambda level, **fields: forwarded.append((level, fields)))
    monkeypatch.setattr(kafka_clients.AIOKAFKA_FORWARDER, "_kinds", {})
    for handler in (kafka_clients.FORWARDER, kafka_clients.AIOKAFKA_FORWARDER):
        monkeypatch.setattr(handler, "interval", handler.interval)  # restored after the test
    logger = logging.getLogger("aiokafka")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    try:
        kafka_clients.configure_client_logging(10.0)
        for node in range(500):
            logger.error("Unable connect to node with id %s: %s", node % 3, "refused")
            logging.getLogger("aiokafka.consumer.fetcher").error(
                "Failed fetch messages from %s: %s", node % 3, "NodeNotReadyError")
        logger.debug("a debug line %s", 1)
    finally:
        logger.handlers, logger.level, logger.propagate = saved
    assert [fields["kind"] for _, fields in forwarded] == [
        "aiokafka: Unable connect to node with id %s: %s",
        "aiokafka.consumer.fetcher: Failed fetch messages from %s: %s"]
    assert forwarded[0][1]["message"] == "Unable connect to node with id 0: refused"


def test_client_config_passes_the_logger_and_backs_reconnects_off() -> None:
    """Every client gets the forwarding logger and a reconnect backoff of up to 10 s."""
    config = client_config(PLAIN, {"group.id": "g"})
    assert config["logger"] is kafka_clients.LIBRDKAFKA_LOGGER
    assert config["reconnect.backoff.max.ms"] == 10_000
    assert config["reconnect.backoff.ms"] >= 500
    assert config["group.id"] == "g"
    assert not kafka_clients.LIBRDKAFKA_LOGGER.propagate


def test_case_event_producers_partition_with_murmur2_as_the_worker() -> None:
    """The case-events producer config picks librdkafka's Java-compatible murmur2, keeps props."""
    config = case_events_producer_config(PLAIN, {"acks": "all"})
    assert config["partitioner"] == "murmur2_random"
    assert config["acks"] == "all"
    assert config["logger"] is kafka_clients.LIBRDKAFKA_LOGGER
    Producer(config)  # librdkafka accepts the configuration


def test_a_real_consumer_without_a_broker_logs_a_few_lines_not_one_per_attempt(
    monkeypatch: Any,
) -> None:
    """librdkafka's reconnect failures to a dead port reach the forwarder, rate-limited."""
    forwarded: list[Any] = []
    seen: list[str] = []
    monkeypatch.setattr(kafka_clients.FORWARDER, "_sink",
                        lambda _level, **fields: forwarded.append(fields))
    monkeypatch.setattr(kafka_clients.FORWARDER, "_kinds", {})
    monkeypatch.setattr(kafka_clients.FORWARDER, "interval", 10.0)
    counter = logging.Handler()
    counter.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    kafka_clients.LIBRDKAFKA_LOGGER.addHandler(counter)
    consumer = Consumer(client_config(PLAIN, {"group.id": "advisering-log-test",
                                                      "reconnect.backoff.ms": 50,
                                                      "reconnect.backoff.max.ms": 50}))
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            consumer.poll(0.1)
    finally:
        consumer.close()
        kafka_clients.LIBRDKAFKA_LOGGER.removeHandler(counter)
    assert len(seen) >= 5  # librdkafka tried (and logged) many times
    assert 1 <= len(forwarded) <= 3  # one per kind within the interval
    assert forwarded[0]["kind"] == "FAIL"
    assert "Connection refused" in forwarded[0]["message"]
