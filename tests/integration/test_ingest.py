"""HTTP ingest on the real broker: events reach the worker; Kafka down is 503, then recovers."""

from __future__ import annotations

import os
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from advisering.dev.demo import demo_grants
from advisering.dev.scenario import DEMO_EXPECTED, demo_scenario
from advisering.http.server import create_web_app
from advisering.http.sources import add_source
from advisering.kafka.topics import CASE_EVENTS, NOTIFICATIONS, load_vocabulary
from advisering.settings import Settings
from advisering.testing import end_offsets, kafka_at, read_topic
from tests.integration.bus import ROOT, WorkerProcess, bus_env, run_cli, scratch_broker_env
from tests.integration.test_pipeline import key_of, notifications_for, scenario_citizens

SCRATCH_PORT = int(os.environ.get("ADVISERING_TEST_INGEST_PORT", "19292"))


def sources_of(waves: list[list[dict[str, Any]]]) -> set[str]:
    return {event["source"] for wave in waves for event in wave}


async def make_client(bootstrap: str, key: str, sources: Path,
                      delivery_timeout: float = 10.0) -> TestClient[Any, Any]:
    settings = Settings(bootstrap_servers=bootstrap, pseudonym_key=key, sources_file=sources,
                        topics_dir=ROOT / "topics", ingest_delivery_timeout=delivery_timeout)
    client = TestClient(TestServer(create_web_app(settings)))
    await client.start_server()
    return client


@pytest.fixture
async def ingest(bootstrap: str, tmp_path: Path) -> AsyncIterator[tuple[Any, dict[str, str], str]]:
    result = run_cli(bus_env(bootstrap), "topics", "apply", "--replication-factor", "1")
    assert result.returncode == 0, result.stderr
    sources = tmp_path / "sources.yaml"
    grants, vocabulary = demo_grants(), load_vocabulary(ROOT / "topics")
    keys = {name: add_source(sources, name, grants[name], vocabulary=vocabulary)
            for name in sources_of(demo_scenario())}
    pseudonym_key = secrets.token_hex(32)
    client = await make_client(bootstrap, pseudonym_key, sources)
    yield client, keys, pseudonym_key
    await client.close()


async def post(client: Any, keys: dict[str, str], events: list[dict[str, Any]]) -> None:
    by_source: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_source.setdefault(event["source"], []).append(event)
    for source, batch in by_source.items():
        reply = await client.post("/api/v1/events", json=batch,
                                  headers={"Authorization": f"Bearer {keys[source]}"})
        assert reply.status == 202, await reply.text()
        assert (await reply.json())["accepted"] == len(batch)


async def test_events_posted_over_http_yield_the_expected_notifications(
    ingest: tuple[Any, dict[str, str], str], bootstrap: str, tmp_path: Path
) -> None:
    """The demo scenario posted over HTTP gives exactly the expected notifications, once."""
    client, keys, pseudonym_key = ingest
    worker = WorkerProcess(bus_env(bootstrap, ADVISERING_PSEUDONYM_KEY=pseudonym_key),
                           tmp_path / "worker.log")
    worker.start()
    try:
        start = end_offsets(kafka_at(bootstrap), NOTIFICATIONS)
        waves = demo_scenario()
        for wave in waves:
            await post(client, keys, wave)
            worker.wait_idle(bootstrap)
        # A client retrying after a timeout re-sends the same events: accepted, no new notice.
        await post(client, keys, waves[2])
        worker.wait_idle(bootstrap)
        found = notifications_for(bootstrap, start, scenario_citizens(pseudonym_key))
    finally:
        worker.stop()
    assert Counter(key_of(n) for n in found) == Counter(dict.fromkeys(DEMO_EXPECTED, 1))
    assert 'advisering_ingest_events_total{outcome="accepted",reason=""}' in (
        await (await client.get("/metrics")).text())


@pytest.fixture
def scratch_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    env = scratch_broker_env(SCRATCH_PORT, tmp_path_factory.mktemp("ingest-broker"))
    assert run_cli(env, "kafka", "start", timeout=240).returncode == 0
    applied = run_cli(env, "topics", "apply", "--replication-factor", "1")
    assert applied.returncode == 0, applied.stderr
    yield env
    run_cli(env, "kafka", "stop")


async def test_kafka_down_is_503_and_nothing_is_lost_after_recovery(
    scratch_broker: dict[str, str], tmp_path: Path
) -> None:
    """With Kafka stopped the ingest answers 503 + Retry-After; resent after recovery it lands."""
    bootstrap = f"127.0.0.1:{SCRATCH_PORT}"
    sources = tmp_path / "sources.yaml"
    key = add_source(sources, "momentum", demo_grants()["momentum"])
    client = await make_client(bootstrap, secrets.token_hex(32), sources, delivery_timeout=3.0)
    event = demo_scenario()[0][0]
    auth = {"Authorization": f"Bearer {key}"}
    try:
        first = await client.post("/api/v1/events", json=event, headers=auth)
        assert first.status == 202
        assert run_cli(scratch_broker, "kafka", "stop").returncode == 0
        later = dict(event, id="after-outage-1")
        down = await client.post("/api/v1/events", json=later, headers=auth)
        assert down.status == 503
        assert down.headers["Retry-After"] == "5"
        assert (await client.get("/readyz")).status == 503
        assert run_cli(scratch_broker, "kafka", "start", timeout=240).returncode == 0
        again = await client.post("/api/v1/events", json=later, headers=auth)
        assert again.status == 202, await again.text()
    finally:
        await client.close()
    ids = [orjson.loads(r.value or b"")["id"] for r in read_topic(kafka_at(bootstrap), CASE_EVENTS)]
    assert event["id"] in ids
    assert "after-outage-1" in ids
