"""Probes of a secured broker: what a client meets when it connects, reads or shows a certificate.

Shared by tests/integration/test_kafka_secure.py; each returns what Kafka or
TLS said, so the test can assert the refusal it expects.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from advisering.kafka.connection import KafkaConnection

QUIET = {"log_level": 0}  # librdkafka repeats every refused connection on stderr
# librdkafka's local error codes are underscored members of KafkaError.
AUTHENTICATION = KafkaError._AUTHENTICATION  # noqa: SLF001
ALL_BROKERS_DOWN = KafkaError._ALL_BROKERS_DOWN  # noqa: SLF001
PARTITION_EOF = KafkaError._PARTITION_EOF  # noqa: SLF001


def tls_api_versions(port: int, certificate: Path, key: Path) -> str:
    """Send Kafka's ApiVersions (v0) over TLS with a client certificate; "answered" if it is.

    The server's certificate is not checked here (the controller's comes from
    its own CA): only whether the server accepts ours.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(certificate, key)
    request = struct.pack(">hhih", 18, 0, 1, 0)  # api key, version, correlation id, no client
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(struct.pack(">i", len(request)) + request)
        size = tls.recv(4)
    return "answered" if len(size) == 4 else f"closed after {len(size)} bytes"


def refused_everywhere(kafka: KafkaConnection) -> list[KafkaError]:
    """Assert ``kafka`` reaches no broker and gets no metadata; the errors librdkafka gave."""
    errors = connection_errors(kafka, until=ALL_BROKERS_DOWN)
    assert ALL_BROKERS_DOWN in {error.code() for error in errors}, errors
    admin = AdminClient({**kafka.confluent(), **QUIET})
    with pytest.raises(Exception, match=r"_TRANSPORT|Failed to get metadata"):
        admin.list_topics(timeout=5)
    return errors


def read_errors(kafka: KafkaConnection, topic: str, *, group: str,
                seconds: float = 8.0) -> set[int]:
    """The error codes a consumer in ``group`` meets reading ``topic`` for a few seconds."""
    codes: set[int] = set()
    consumer = Consumer({**kafka.confluent(), **QUIET, "group.id": group,
                         "enable.auto.commit": False,
                         "error_cb": lambda error: codes.add(error.code())})
    consumer.assign([TopicPartition(topic, 0, 0)])
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is not None:
                codes.add(message.error().code())
    finally:
        consumer.close()
    codes.discard(PARTITION_EOF)
    return codes


def connection_errors(kafka: KafkaConnection, seconds: float = 10.0,
                      until: int | None = None) -> list[KafkaError]:
    """The errors librdkafka reports while a producer of ``kafka`` tries to connect.

    Polls until the first error, or with ``until`` until an error of that code.
    """
    errors: list[KafkaError] = []
    producer = Producer({**kafka.confluent(), **QUIET, "error_cb": errors.append})
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (
            errors and (until is None or until in {error.code() for error in errors})):
        producer.poll(0.5)
    return errors
