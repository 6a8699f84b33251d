"""The chosen Kafka version works with confluent-kafka and with a real Faust worker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

HERE = Path(__file__).resolve().parent


def create_topics(bootstrap: str, *names: str, partitions: int = 2) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    for future in futures.values():
        future.result(timeout=30)


def consume(bootstrap: str, topic: str, count: int, timeout: float = 60.0) -> list[bytes]:
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"reader-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            values.append(message.value())
    finally:
        consumer.close()
    return values


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_confluent_round_trip(bootstrap: str) -> None:
    """Records produced with an idempotent confluent-kafka producer are consumed back."""
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, topic)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    sent = [f"record-{i}".encode() for i in range(20)]
    for i, value in enumerate(sent):
        producer.produce(topic, key=str(i % 3).encode(), value=value)
    assert producer.flush(30) == 0
    assert sorted(consume(bootstrap, topic, len(sent))) == sorted(sent)


def test_faust_worker_with_table(bootstrap: str, tmp_path: Path) -> None:
    """A real Faust worker with a table consumes, counts per key and produces."""
    suffix = uuid.uuid4().hex[:8]
    source, sink = f"probe-in-{suffix}", f"probe-out-{suffix}"
    create_topics(bootstrap, source, sink)
    env = dict(os.environ, PROBE_SUFFIX=suffix, PROBE_BOOTSTRAP=bootstrap,
               PROBE_WEB_PORT=str(free_port()),
               PROBE_DATADIR=str(tmp_path / "faust-data"))
    log_path = tmp_path / "faust.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, str(HERE / "faust_table_app.py"), "worker", "-l", "info"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
        )
    try:
        producer = Producer({"bootstrap.servers": bootstrap})
        for i in range(6):
            producer.produce(source, key=f"k{i % 2}".encode(), value=f"v{i}".encode())
        assert producer.flush(30) == 0
        got = consume(bootstrap, sink, 6, timeout=120)
        assert worker.poll() is None, log_path.read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    assert sorted(got) == [b"v0:1", b"v1:1", b"v2:2", b"v3:2", b"v4:3", b"v5:3"], (
        log_path.read_text()[-3000:]
    )
