"""Scenario 2: a raw confluent-kafka consume -> json.loads -> json.dumps -> produce loop.

The ceiling: what Kafka and librdkafka move per second with no framework and
the least work a JSON stage does per record (parse and write it again),
measured in this process over the preloaded topic.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer
from harness.cpu import ProcessCpuMeter
from harness.procfs import broker_pid


def bench_raw(bootstrap: str, topic_in: str, topic_out: str, n: int,
              timeout: float) -> dict[str, Any]:
    consumer = Consumer({"bootstrap.servers": bootstrap,
                         "group.id": f"bench-raw-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": True})
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    consumer.subscribe([topic_in])
    meter = ProcessCpuMeter({"loop": os.getpid(), "broker": broker_pid(bootstrap)})
    count = 0
    first: float | None = None
    deadline = time.monotonic() + timeout
    try:
        while count < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"raw loop: {count} of {n} records within {timeout}s")
            for message in consumer.consume(num_messages=500, timeout=0.5):
                if message.error():
                    continue
                if first is None:
                    first = time.perf_counter()
                    meter.start()
                while True:
                    try:
                        producer.produce(topic_out, key=message.key(),
                                         value=json.dumps(json.loads(message.value() or b"")))
                        break
                    except BufferError:
                        producer.poll(0.01)
                count += 1
            producer.poll(0)
        remaining = producer.flush(max(1.0, deadline - time.monotonic()))
        if remaining:
            raise TimeoutError(f"raw loop: {remaining} records unconfirmed")
        assert first is not None
        seconds = time.perf_counter() - first
        cpu = meter.stop(count)
    finally:
        consumer.close()
    return {"events": count, "seconds": round(seconds, 3), "events_per_s": round(count / seconds),
            "cpu": cpu}
