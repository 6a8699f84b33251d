"""Disguised CPR numbers written straight to Kafka: the worker dead-letters them, redacted."""

from __future__ import annotations

import orjson
from confluent_kafka import Producer

from advisering.kafka.topics import CASE_EVENTS, DEAD_LETTERS
from advisering.privacy import cpr_paths, find_cprs
from advisering.testing import end_offsets, kafka_at, read_topic
from tests.integration.bus import WorkerProcess
from tests.unit.cpr_corpus import REFUSED, base_event, event_bytes

POSITIONS = ("subject", "data.note", "key")


def test_every_disguise_on_the_topic_is_dead_lettered_and_redacted(
    worker: WorkerProcess, topics_ready: str
) -> None:
    """Each corpus disguise (subject, extension, key) is a redacted cpr_detected dead letter."""
    bootstrap = topics_ready
    start = end_offsets(kafka_at(bootstrap), DEAD_LETTERS)
    sent = {}
    producer = Producer({"bootstrap.servers": bootstrap})
    for index, entry in enumerate(REFUSED):
        for position in POSITIONS:
            event_id = f"disguise-{index}-{position}-{worker.app_id}"
            sent[event_id] = entry
            # Key "bypass": put there on purpose, skipped by the scan of every topic.
            producer.produce(CASE_EVENTS, key=b"bypass",
                             value=event_bytes(entry, position, base_event(event_id)))
    assert producer.flush(30) == 0
    worker.wait_idle(bootstrap)
    letters = {}
    for record in read_topic(kafka_at(bootstrap), DEAD_LETTERS, start, timeout=60):
        letter = orjson.loads(record.value or b"")
        letters[letter["event_id"]] = (letter, (record.value or b"").decode(), record.key)
    assert set(sent) <= set(letters)
    for event_id, entry in sent.items():
        letter, text, key = letters[event_id]
        assert letter["reason"] == "cpr_detected", entry.note
        assert key == b"momentum"
        assert find_cprs(text) == [], entry.note
        assert list(cpr_paths(letter)) == [], entry.note
        assert list(cpr_paths(orjson.loads(letter["payload"]))) == [], entry.note
        for form in entry.forms():
            assert form not in text, entry.note
    assert 'advisering_dead_letters_total{reason="cpr_detected"}' in worker.metrics()
    assert find_cprs(worker.log_path.read_text(errors="replace")) == []
