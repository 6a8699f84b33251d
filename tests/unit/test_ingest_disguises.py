"""HTTP ingest without a broker: each disguised CPR number of the corpus is a 422, never echoed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from advisering.dev.demo import demo_grants
from advisering.dev.scenario import demo_scenario
from advisering.http.server import create_web_app
from advisering.http.sources import add_source
from advisering.privacy import find_cprs
from advisering.settings import Settings
from tests.unit.cpr_corpus import REFUSED, event_bytes

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def client_and_key(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], str]]:
    sources = tmp_path / "sources.yaml"
    key = add_source(sources, "momentum", demo_grants()["momentum"])
    settings = Settings(bootstrap_servers="127.0.0.1:1", pseudonym_key="k" * 32,
                        sources_file=sources, topics_dir=ROOT / "topics",
                        ingest_max_body_bytes=1024 * 1024, ingest_max_events=len(REFUSED),
                        ingest_delivery_timeout=1.0)
    client = TestClient(TestServer(create_web_app(settings)))
    await client.start_server()
    yield client, key
    await client.close()


@pytest.mark.parametrize("position", ["subject", "id", "data.note"])
async def test_every_disguise_is_422_cpr_detected_without_the_value(
    client_and_key: Any, position: str
) -> None:
    """Each corpus disguise in subject, id or a data extension is 422 cpr_detected at its path."""
    client, key = client_and_key
    momentum = demo_scenario()[0][0]
    body = b"[" + b",".join(event_bytes(entry, position, momentum) for entry in REFUSED) + b"]"
    reply = await client.post("/api/v1/events", data=body,
                              headers={"Authorization": f"Bearer {key}",
                                       "Content-Type": "application/json"})
    assert reply.status == 422
    text = await reply.text()
    problems = (await reply.json())["problems"]
    for index, entry in enumerate(REFUSED):
        mine = [p for p in problems if p["index"] == index]
        assert mine, entry.note
        assert (mine[0]["reason"], mine[0]["path"]) == ("cpr_detected", position), entry.note
        for form in entry.forms():
            assert form not in text, entry.note
    assert find_cprs(text) == []
    assert "0101901234" not in text and "101901234" not in text
