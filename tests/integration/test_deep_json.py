"""Deep JSON on the real broker: dead-lettered too_deep, and the worker goes on notifying."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer

from advisering.dev.scenario import demo_scenario, synthetic_cpr
from advisering.kafka.topics import (
    CASE_EVENTS,
    DEAD_LETTERS,
    NOTIFICATIONS,
    citizen_topic_name,
)
from advisering.privacy import find_cprs, pseudonymise
from advisering.testing import end_offsets, kafka_at, read_topic
from advisering.worker import bundle
from tests.integration.bus import WorkerProcess, run_cli, write_jsonl

SECRET = synthetic_cpr(91)
CITIZEN = b"ps1-" + b"a" * 52


def deep_event(inner: str) -> bytes:
    """A real event whose data.note holds ``inner`` 400 levels deep."""
    event = dict(demo_scenario()[0][0], id=f"deep-{uuid.uuid4().hex[:8]}")
    event["data"] = dict(event["data"], note="X", parties=[{"citizen": CITIZEN.decode()}])
    head, tail = orjson.dumps(event).split(b'"X"')
    return head + b"[" * 400 + orjson.dumps(inner) + b"]" * 400 + tail


def deep_records() -> list[bytes]:
    """Arrays, objects and an event with a deep field, 33 to 5,000 levels; one holds a CPR."""
    return [
        b"[" * 33 + b"]" * 33,
        b"[" * 1000 + b"]" * 1000,
        b'{"a":' * 300 + b"1" + b"}" * 300,
        b"[" * 5000,  # cut off, too
        deep_event(SECRET),
    ]


def produce(bootstrap: str, records: list[tuple[str, bytes]]) -> list[tuple[str, int, int]]:
    """Write ``(topic, value)`` records past the edge; their (topic, partition, offset)."""
    written: list[tuple[str, int, int]] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        assert error is None, error
        written.append((str(message.topic()), int(message.partition() or 0),
                        int(message.offset() or 0)))

    producer = Producer({"bootstrap.servers": bootstrap})
    for topic, value in records:
        # key "bypass": test_pipeline's CPR scan of every topic knows these were put there.
        producer.produce(topic, key=b"bypass", value=value, on_delivery=delivered)
    assert producer.flush(30) == 0
    return written


def test_deep_json_is_dead_lettered_and_the_worker_keeps_notifying(
    worker: WorkerProcess, bootstrap: str, tmp_path: Path
) -> None:
    """Deep records on case-events and on the repartition topic are too_deep; a trigger after
    them is notified and the worker is still alive."""
    letters_start = end_offsets(kafka_at(bootstrap), DEAD_LETTERS)
    notifications_start = end_offsets(kafka_at(bootstrap), NOTIFICATIONS)
    repartition = citizen_topic_name(worker.app_id)
    deep = deep_records()
    written = produce(bootstrap, [(CASE_EVENTS, value) for value in deep]
                      + [(repartition, bundle.pack([(CITIZEN, deep_event("x"))]))])
    worker.wait_idle(bootstrap)

    waves = demo_scenario()[:3]  # the third wave holds the job centre's sanction
    for number, wave in enumerate(waves):
        path = write_jsonl(tmp_path / f"wave-{number}.jsonl", wave)
        result = run_cli(worker.env, "publish", str(path))
        assert result.returncode == 0, result.stdout + result.stderr
        worker.wait_idle(bootstrap)

    letters = [orjson.loads(r.value or b"") for r in
               read_topic(kafka_at(bootstrap), DEAD_LETTERS, letters_start, timeout=60)]
    by_place: dict[tuple[str, int, int], dict[str, Any]] = {
        (letter["topic"], letter["partition"], letter["offset"]): letter for letter in letters}
    for place in written:
        assert place in by_place, (place, worker.log_tail())
        assert by_place[place]["reason"] == "too_deep"
    for letter in letters:
        text = orjson.dumps(letter).decode()
        assert SECRET not in text and SECRET.replace("-", "") not in text
        assert not find_cprs(text)

    parent = pseudonymise(synthetic_cpr(11), worker.env["ADVISERING_PSEUDONYM_KEY"].encode())
    notified = [orjson.loads(r.value or b"") for r in
                read_topic(kafka_at(bootstrap), NOTIFICATIONS, notifications_start, timeout=60)]
    assert any(n["rule"] == "sanktion-til-boernesag" and n["citizen"] == parent
               and n["recipient"]["caseworker"] == "bf-0042" for n in notified)
    assert worker.process is not None and worker.process.poll() is None
    assert worker.readiness() == 200
    assert 'advisering_dead_letters_total{reason="too_deep"}' in worker.metrics()
