"""HTTP ingest without a broker: authentication, source check, validation, limits."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from advisering.dev.demo import demo_grants
from advisering.dev.scenario import demo_scenario, synthetic_cpr
from advisering.http.server import create_web_app
from advisering.http.sources import add_source, load_sources, rotate_key
from advisering.privacy import find_cprs
from advisering.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def client_and_keys(
    tmp_path: Path,
) -> AsyncIterator[tuple[TestClient[Any, Any], dict[str, str]]]:
    sources = tmp_path / "sources.yaml"
    keys = {name: add_source(sources, name, demo_grants()[name]) for name in ("momentum", "dubu")}
    settings = Settings(bootstrap_servers="127.0.0.1:1", pseudonym_key="k" * 32,
                        sources_file=sources, topics_dir=ROOT / "topics",
                        ingest_max_body_bytes=64 * 1024, ingest_max_events=5,
                        ingest_delivery_timeout=1.0)
    client = TestClient(TestServer(create_web_app(settings)))
    await client.start_server()
    yield client, keys
    await client.close()


def momentum_event() -> dict[str, Any]:
    return demo_scenario()[0][0]


async def test_missing_or_unknown_key_is_401(client_and_keys: Any) -> None:
    """Without a key, or with a key nobody registered, the answer is 401."""
    client, _ = client_and_keys
    reply = await client.post("/api/v1/events", json=momentum_event())
    assert reply.status == 401
    assert "Bearer" in reply.headers["WWW-Authenticate"]
    reply = await client.post("/api/v1/events", json=momentum_event(),
                              headers={"Authorization": "Bearer adv_forged"})
    assert reply.status == 401


async def test_other_sources_event_is_403(client_and_keys: Any) -> None:
    """A source may only publish events whose source is its own name."""
    client, keys = client_and_keys
    reply = await client.post("/api/v1/events", json=momentum_event(),
                              headers={"Authorization": f"Bearer {keys['dubu']}"})
    assert reply.status == 403
    body = await reply.json()
    assert body["problems"][0] == {"index": 0, "path": "source",
                                   "message": "source differs from the API key's source"}


async def test_validation_errors_are_422_with_paths(client_and_keys: Any) -> None:
    """Every invalid event of a batch is reported by index and field path; nothing published."""
    client, keys = client_and_keys
    good = momentum_event()
    bad_kle = orjson.loads(orjson.dumps(good))
    bad_kle["data"]["case"]["kle"] = "3"
    no_time = {k: v for k, v in good.items() if k != "time"}
    cpr_note = orjson.loads(orjson.dumps(good))
    cpr_note["data"]["note"] = f"borger {synthetic_cpr(3)}"
    reply = await client.post("/api/v1/events", json=[good, bad_kle, no_time, cpr_note],
                              headers={"X-API-Key": keys["momentum"]})
    assert reply.status == 422
    body = await reply.json()
    found = {(p["index"], p["reason"], p["path"]) for p in body["problems"]}
    assert (1, "invalid_field", "data.case.kle") in found
    assert (2, "missing_field", "time") in found
    assert (3, "cpr_detected", "data.note") in found
    assert not any(p["index"] == 0 for p in body["problems"])
    assert "nothing was published" in body["message"]
    assert not find_cprs(orjson.dumps(body).decode())


async def test_not_json_and_bad_ndjson_line_are_422(client_and_keys: Any) -> None:
    """A body that is not JSON, or an NDJSON line that is not, is 422 naming the line."""
    client, keys = client_and_keys
    auth = {"Authorization": f"Bearer {keys['momentum']}"}
    reply = await client.post("/api/v1/events", data=b"{oops",
                              headers={**auth, "Content-Type": "application/json"})
    assert reply.status == 422
    body = orjson.dumps(momentum_event()) + b"\n{oops\n"
    reply = await client.post("/api/v1/events", data=body,
                              headers={**auth, "Content-Type": "application/x-ndjson"})
    assert reply.status == 422
    assert "line 2" in (await reply.json())["message"]


async def test_oversized_body_is_413(client_and_keys: Any) -> None:
    """A body over the configured limit is refused with 413."""
    client, keys = client_and_keys
    reply = await client.post("/api/v1/events", data=b"[" + b" " * (70 * 1024) + b"]",
                              headers={"Authorization": f"Bearer {keys['momentum']}",
                                       "Content-Type": "application/json"})
    assert reply.status == 413


async def test_too_many_events_is_413(client_and_keys: Any) -> None:
    """A batch with more events than allowed is refused with 413."""
    client, keys = client_and_keys
    reply = await client.post("/api/v1/events", json=[momentum_event()] * 6,
                              headers={"Authorization": f"Bearer {keys['momentum']}"})
    assert reply.status == 413


async def test_wrong_content_type_is_415(client_and_keys: Any) -> None:
    """Only JSON and NDJSON bodies are taken."""
    client, keys = client_and_keys
    reply = await client.post("/api/v1/events", data=b"id=1",
                              headers={"Authorization": f"Bearer {keys['momentum']}",
                                       "Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 415


async def test_health_openapi_and_metrics(client_and_keys: Any) -> None:
    """healthz answers, readyz is 503 without Kafka, OpenAPI and metrics are served."""
    client, _ = client_and_keys
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 503
    document = await (await client.get("/api/v1/openapi.json")).json()
    batch = document["paths"]["/api/v1/events"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]["oneOf"][1]
    assert (batch["minItems"], batch["maxItems"]) == (1, 5)  # this server's ingest_max_events
    text = await (await client.get("/metrics")).text()
    assert "advisering_ingest_requests_total" in text


def test_sources_file_stores_only_hashes(tmp_path: Path) -> None:
    """`sources add` stores a SHA-256 hash, never the key, and refuses a duplicate name."""
    path = tmp_path / "sources.yaml"
    grants = demo_grants()["momentum"]
    key = add_source(path, "momentum", grants)
    assert key not in path.read_text()
    assert "momentum" in load_sources(path).sources
    with pytest.raises(ValueError, match="exists already"):
        add_source(path, "momentum", grants)
    assert rotate_key(path, "momentum", grace=dt.timedelta(0)) != key
    with pytest.raises(ValueError, match="lower-case"):
        add_source(path, "Bad Name", grants)
