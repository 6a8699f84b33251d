"""Scenario 4b: publish -> notification latency of a running, caught-up worker.

Triggers that each fire a rule are published at a fixed rate; the first
notification naming a trigger's event id is its arrival.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer
from harness.children import Subprocess
from harness.kafka import assigned_consumer
from harness.stats import latency_figures

from advisering.kafka.clients import case_events_producer_config
from advisering.kafka.topics import CASE_EVENTS, NOTIFICATIONS
from advisering.testing import end_offsets, kafka_at
from scenarios.synthetic import Prepared


def warm_clients(bootstrap: str, warmup_topic: str) -> tuple[Consumer, Producer]:
    """A notifications consumer at the end and a producer, both warmed up.

    Metadata, producer id and fetch position come before the clock starts:
    the clients' own start-up is not the bus's latency.
    """
    consumer = assigned_consumer(bootstrap, {NOTIFICATIONS: end_offsets(kafka_at(bootstrap),
                                                                        NOTIFICATIONS)})
    producer = Producer(case_events_producer_config(
        kafka_at(bootstrap), {"acks": "all", "enable.idempotence": True, "linger.ms": 0}))
    producer.list_topics(CASE_EVENTS, timeout=10)
    producer.produce(warmup_topic, value=b"warm-up")
    if producer.flush(10):
        raise TimeoutError("latency producer: warm-up record not confirmed")
    consumer.consume(num_messages=1, timeout=0.5)
    return consumer, producer


def publish_and_watch(consumer: Consumer, producer: Producer, proc: Subprocess,
                      triggers: list[Prepared], rate: float,
                      timeout: float) -> tuple[dict[str, float], dict[str, float]]:
    """(published, arrived): wall-clock times by event id."""
    published: dict[str, float] = {}
    arrived: dict[str, float] = {}
    interval = 1.0 / rate
    began = time.monotonic()
    index = 0
    deadline = began + len(triggers) * interval + timeout
    while time.monotonic() < deadline:
        now = time.monotonic()
        if index < len(triggers) and now >= began + index * interval:
            trigger = triggers[index]
            published[trigger.event_id] = time.time()
            producer.produce(CASE_EVENTS, key=trigger.key, value=trigger.value)
            producer.poll(0)
            index += 1
            continue
        if index >= len(triggers) and len(arrived) >= len(triggers):
            break
        wait = min(0.005, max(0.0, began + index * interval - time.monotonic()))
        message = consumer.poll(wait if index < len(triggers) else 0.1)
        producer.poll(0)
        if message is None or message.error():
            continue
        seen = time.time()
        event_id = orjson.loads(message.value() or b"{}").get("trigger", {}).get("event_id")
        if event_id in published and event_id not in arrived:
            arrived[event_id] = seen
        proc.check_alive()
    return published, arrived


def measure_latency(bootstrap: str, proc: Subprocess, triggers: list[Prepared], rate: float,
                    timeout: float, warmup_topic: str) -> dict[str, Any]:
    """Publish triggers at ``rate``/s; first notification per trigger.event_id is its arrival."""
    consumer, producer = warm_clients(bootstrap, warmup_topic)
    started = time.time()
    published, arrived = publish_and_watch(consumer, producer, proc, triggers, rate, timeout)
    producer.flush(10)
    consumer.close()
    series = sorted((published[e] - started, (arrived[e] - published[e]) * 1000)
                    for e in arrived)
    latencies = sorted(latency for _, latency in series)
    if not latencies:
        raise RuntimeError(f"no notification for any of {len(triggers)} triggers\n"
                           f"{proc.log_tail()}")
    return {"published": len(published), "notified": len(arrived), "rate_per_s": rate,
            **latency_figures(latencies),
            "series": [[round(t, 3), round(x, 1)] for t, x in series]}


def pooled_latency(rounds: list[dict[str, Any]], rate: float) -> dict[str, Any]:
    """Percentiles over the latency samples of every round."""
    samples = sorted(x for r in rounds for _, x in r["series"])
    return {"published": sum(r["published"] for r in rounds),
            "notified": sum(r["notified"] for r in rounds), "rate_per_s": rate,
            **latency_figures(samples), "rounds": rounds}


def retag(value: bytes, event_id: str, days: int) -> bytes:
    """The same trigger under a new id, ``days`` later (past every throttle window)."""
    raw = orjson.loads(value)
    raw["id"] = event_id
    raw["time"] = (dt.datetime.fromisoformat(raw["time"]) + dt.timedelta(days=days)).isoformat()
    return orjson.dumps(raw)
