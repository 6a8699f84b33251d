"""The edge keys case events by their first party's pseudonym, on the worker's partition."""

from __future__ import annotations

import copy
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from advisering.dev.demo import demo_grants
from advisering.dev.scenario import demo_scenario, synthetic_cpr
from advisering.edge.client import Publisher
from advisering.http.sources import add_source
from advisering.kafka.clients import case_events_producer_config, client_config
from advisering.kafka.topics import CASE_EVENTS, load_vocabulary
from advisering.privacy import pseudonymise
from advisering.settings import Settings
from advisering.testing import end_offsets, kafka_at, read_topic
from advisering.worker.sending import partition_for
from tests.integration.bus import ROOT
from tests.integration.test_ingest import make_client, post

PARTITION_COUNTS = (6, 7, 12)
KEYS = 400


@pytest.fixture
def scratch_topics(bootstrap: str) -> Iterator[dict[int, str]]:
    """One fresh topic per partition count, deleted after the test."""
    names = {count: f"keys-{count}-{uuid.uuid4().hex[:8]}" for count in PARTITION_COUNTS}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    created = admin.create_topics([NewTopic(name, num_partitions=count, replication_factor=1)
                                   for count, name in names.items()], operation_timeout=30)
    for future in created.values():
        future.result(timeout=60)
    yield names
    for future in admin.delete_topics(list(names.values()), operation_timeout=30).values():
        future.result(timeout=60)


def delivered_partitions(config: dict[str, Any], topic: str,
                         keys: list[bytes]) -> dict[bytes, int]:
    """The partition librdkafka chose for each key, as its delivery reports say."""
    chosen: dict[bytes, int] = {}

    def report(error: KafkaError | None, message: Message) -> None:
        assert error is None, error
        key = message.key()
        assert isinstance(key, bytes)
        chosen[key] = message.partition()

    producer = Producer(config)
    for key in keys:
        producer.produce(topic, key=key, value=b"{}", on_delivery=report)
    assert producer.flush(60) == 0
    return chosen


def test_the_edge_partitioner_is_the_workers(
    bootstrap: str, scratch_topics: dict[int, str],
) -> None:
    """For many pseudonyms and partition counts, the edge's producer picks the worker's partition
    (and librdkafka's default partitioner would not)."""
    key = secrets.token_bytes(32)
    keys = [pseudonymise(synthetic_cpr(n), key).encode() for n in range(KEYS)]
    for count, topic in scratch_topics.items():
        edge = delivered_partitions(case_events_producer_config(kafka_at(bootstrap)), topic, keys)
        assert edge == {k: partition_for(k, count, 0) for k in keys}, count
        default = delivered_partitions(client_config(kafka_at(bootstrap)), topic, keys)
        assert default != edge, count


def scenario_with_several_parties() -> list[dict[str, Any]]:
    """The demo scenario in one list, plus copies whose first party is another citizen."""
    events = [event for wave in demo_scenario() for event in wave]
    for number, original in enumerate(events[:3]):
        event = copy.deepcopy(original)
        event["id"] = str(uuid.uuid4())
        event["data"]["parties"].insert(0, {"cpr": synthetic_cpr(900 + number), "role": "barn"})
        events.append(event)
    return events


def assert_keyed_by_first_party(bootstrap: str, start: dict[int, int],
                                events: list[dict[str, Any]], key: bytes) -> None:
    """Each event's record is keyed by its first party's pseudonym, on that key's partition."""
    expected = {(event["source"], event["id"]): pseudonymise(event["data"]["parties"][0]["cpr"],
                                                             key) for event in events}
    partitions = len(start)
    found: dict[tuple[str, str], str] = {}
    for record in read_topic(kafka_at(bootstrap), CASE_EVENTS, start, timeout=60):
        value = orjson.loads(record.value or b"")
        ident = (value["source"], value["id"])
        if ident not in expected:
            continue
        assert record.key is not None
        assert record.partition == partition_for(record.key, partitions, 0), ident
        found[ident] = record.key.decode()
    assert found == expected


def test_the_sdk_keys_each_event_by_its_first_party(bootstrap: str) -> None:
    """Published with the SDK, every event is keyed by its first party on the worker's partition."""
    key = secrets.token_hex(32)
    settings = Settings(bootstrap_servers=bootstrap, pseudonym_key=key,
                        topics_dir=ROOT / "topics")
    events = scenario_with_several_parties()
    start = end_offsets(kafka_at(bootstrap), CASE_EVENTS)
    with Publisher(settings) as publisher:
        assert all(result.ok for result in publisher.publish(events))
    assert_keyed_by_first_party(bootstrap, start, events, key.encode())


@pytest.fixture
async def ingest_client(bootstrap: str, tmp_path: Path) -> AsyncIterator[tuple[Any, dict[str, str],
                                                                              str]]:
    sources = tmp_path / "sources.yaml"
    grants, vocabulary = demo_grants(), load_vocabulary(ROOT / "topics")
    names = {event["source"] for event in scenario_with_several_parties()}
    keys = {name: add_source(sources, name, grants[name], vocabulary=vocabulary)
            for name in names}
    pseudonym_key = secrets.token_hex(32)
    client = await make_client(bootstrap, pseudonym_key, sources)
    yield client, keys, pseudonym_key
    await client.close()


async def test_the_ingest_keys_each_event_by_its_first_party(
    bootstrap: str, ingest_client: tuple[Any, dict[str, str], str],
) -> None:
    """Posted over HTTP, every event is keyed by its first party on the worker's partition."""
    client, keys, pseudonym_key = ingest_client
    events = scenario_with_several_parties()
    start = end_offsets(kafka_at(bootstrap), CASE_EVENTS)
    await post(client, keys, events)
    assert_keyed_by_first_party(bootstrap, start, events, pseudonym_key.encode())
