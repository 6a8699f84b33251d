"""HTTP ingest without a broker: deep JSON, undeclared data fields and too many parties are 422."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from advisering.dev.demo import demo_grants
from advisering.dev.scenario import demo_scenario, synthetic_cpr
from advisering.http.server import create_web_app
from advisering.http.sources import add_source
from advisering.privacy import find_cprs
from advisering.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SECRET = synthetic_cpr(9).replace("-", "")


@pytest.fixture
async def client_and_auth(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any],
                                                                  dict[str, str]]]:
    sources = tmp_path / "sources.yaml"
    key = add_source(sources, "momentum", demo_grants()["momentum"])
    settings = Settings(bootstrap_servers="127.0.0.1:1", pseudonym_key="k" * 32,
                        sources_file=sources, topics_dir=ROOT / "topics",
                        ingest_max_body_bytes=256 * 1024, ingest_max_events=5,
                        ingest_delivery_timeout=1.0)
    client = TestClient(TestServer(create_web_app(settings)))
    await client.start_server()
    yield client, {"Authorization": f"Bearer {key}"}
    await client.close()


def momentum_event() -> dict[str, Any]:
    return demo_scenario()[0][0]


def with_nesting(total_depth: int) -> bytes:
    """A momentum event whose data.note nests so that the event is ``total_depth`` deep."""
    inner = total_depth - 2  # the event object and data are two levels
    head, tail = orjson.dumps(dict(momentum_event(), data=dict(
        momentum_event()["data"], note="X"))).split(b'"X"')
    return head + b"[" * inner + f'"{SECRET}"'.encode() + b"]" * inner + tail


async def post(client: TestClient[Any, Any], auth: dict[str, str], body: bytes,
               content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    reply = await client.post("/api/v1/events", data=body,
                              headers={**auth, "Content-Type": content_type})
    return reply.status, await reply.json()


@pytest.mark.parametrize("depth", [33, 300, 1000, 5000])
async def test_deep_json_is_422_too_deep_without_echo(client_and_auth: Any, depth: int) -> None:
    """One event nested 33 to 5,000 deep is 422 too_deep (not 500), the body never echoed."""
    client, auth = client_and_auth
    status, body = await post(client, auth, with_nesting(depth))
    assert status == 422
    assert [(p["reason"], p["path"]) for p in body["problems"]] == [("too_deep", "")]
    assert SECRET not in orjson.dumps(body).decode()
    assert not find_cprs(orjson.dumps(body).decode())


async def test_batch_array_is_not_counted_as_a_level(client_and_auth: Any) -> None:
    """In a batch, an event 32 deep passes the depth check (then fails the schema); 33 does not."""
    client, auth = client_and_auth
    status, body = await post(client, auth, b"[" + with_nesting(32) + b"]")
    assert status == 422
    assert body["problems"][0]["reason"] == "cpr_detected"  # parsed: past the depth check
    status, body = await post(client, auth, b"[" + with_nesting(33) + b"]")
    assert (status, body["problems"][0]["reason"]) == (422, "too_deep")


async def test_deep_ndjson_line_is_422_naming_the_line(client_and_auth: Any) -> None:
    """An NDJSON line nested too deep is 422 too_deep naming its line and index."""
    client, auth = client_and_auth
    lines = orjson.dumps(momentum_event()) + b"\n" + with_nesting(400) + b"\n"
    status, body = await post(client, auth, lines, "application/x-ndjson")
    assert status == 422
    assert body["problems"][0]["reason"] == "too_deep"
    assert body["problems"][0]["index"] == 1
    assert "line 2" in body["message"]


@pytest.mark.parametrize(("change", "reason", "path"), [
    ({"note": "ring til borgeren"}, "unknown_field", "data.note"),
    ({"benefit": {"action": "stopped"}}, "unknown_field", "data.benefit"),
    ({"parties": [{"cpr": synthetic_cpr(n), "role": "primaer"} for n in range(21)]},
     "too_large", "data.parties"),
])
async def test_data_outside_the_schema_is_422(client_and_auth: Any, change: dict[str, Any],
                                              reason: str, path: str) -> None:
    """An undeclared data field, benefit on case.opened, 21 parties: 422 with reason and path."""
    client, auth = client_and_auth
    event = momentum_event()
    event["data"].update(change)
    status, body = await post(client, auth, orjson.dumps(event))
    assert status == 422
    assert (body["problems"][0]["reason"], body["problems"][0]["path"]) == (reason, path)
    assert not find_cprs(orjson.dumps(body).decode())
