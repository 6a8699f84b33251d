"""HTTP ingest and grants: 403 not_granted per event; keys rotated and revoked without restart."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from advisering.dev.demo import demo_grants
from advisering.dev.scenario import demo_scenario, event, synthetic_cpr
from advisering.grants import Grants
from advisering.http.server import create_web_app
from advisering.http.sources import add_source, revoke_source, rotate_key, set_grants
from advisering.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)
WHEN = dt.datetime(2026, 12, 3, 10, 0, tzinfo=dt.UTC)
FORGED_CPR = synthetic_cpr(66)


class WallClock:
    """The wall clock serve compares key expiries with, moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Any, Path, dict[str, str], WallClock]]:
    path = tmp_path / "sources.yaml"
    grants = demo_grants()
    keys = {name: add_source(path, name, grants[name], now=T0) for name in ("momentum", "cpr")}
    settings = Settings(bootstrap_servers="127.0.0.1:1", pseudonym_key="k" * 32,
                        sources_file=path, topics_dir=ROOT / "topics",
                        ingest_delivery_timeout=1.0, sources_reload_seconds=0)
    clock = WallClock()
    client = TestClient(TestServer(create_web_app(settings, wall_clock=clock)))
    await client.start_server()
    yield client, path, keys, clock
    await client.close()


async def post(client: Any, key: str, body: Any) -> tuple[int, dict[str, Any]]:
    reply = await client.post("/api/v1/events", json=body,
                              headers={"Authorization": f"Bearer {key}"})
    return reply.status, await reply.json()


def forged_death() -> dict[str, Any]:
    """The job centre's system announcing a citizen's death (only the CPR registry may)."""
    return event(900, "momentum", "citizen.deceased", WHEN, FORGED_CPR)


def forged_childrens_case() -> dict[str, Any]:
    """The job centre's system opening a children's case for its own insider."""
    case = {"id": "DUBU-FORGED-1", "kle": "34.15.00", "status": "opstaaet",
            "department": "boern-familie", "unit": "bf-syd", "caseworker": "insider-1"}
    return event(901, "momentum", "case.opened", WHEN, FORGED_CPR, case)


async def test_forged_events_are_403_not_granted_per_event(served: Any) -> None:
    """With the job centre's key: a death notice and a boern-familie case are refused by index."""
    client, _, keys, _ = served
    granted = demo_scenario()[0][0]  # momentum opening a job-centre case
    status, body = await post(client, keys["momentum"],
                              [granted, forged_death(), forged_childrens_case()])
    assert status == 403
    assert body["error"] == "not_granted"
    problems = {p["index"]: p for p in body["problems"]}
    assert set(problems) == {1, 2}
    assert (problems[1]["reason"], problems[1]["path"]) == ("not_granted", "type")
    assert "'citizen.deceased'" in problems[1]["message"]
    assert (problems[2]["reason"], problems[2]["path"]) == ("not_granted",
                                                            "data.case.department")
    assert "'boern-familie'" in problems[2]["message"]
    text = str(body)
    assert FORGED_CPR not in text and FORGED_CPR.replace("-", "") not in text
    assert "insider-1" not in text


async def test_registry_may_send_what_it_is_granted_only(served: Any) -> None:
    """The CPR registry's key gets past the grants with a death, not with a case event."""
    client, _, keys, _ = served
    death = event(902, "cpr", "citizen.deceased", WHEN, FORGED_CPR)
    status, body = await post(client, keys["cpr"], death)
    assert status == 503, body  # granted; nothing listens on 127.0.0.1:1
    case_event = dict(forged_childrens_case(), source="cpr")
    status, body = await post(client, keys["cpr"], case_event)
    assert status == 403
    assert body["problems"][0]["path"] == "type"


async def test_not_granted_comes_with_the_batchs_other_problems(served: Any) -> None:
    """A batch with an ungranted and an invalid event answers 403 listing both, by index."""
    client, _, keys, _ = served
    invalid = dict(demo_scenario()[0][0], time="yesterday")
    status, body = await post(client, keys["momentum"], [invalid, forged_death()])
    assert status == 403
    assert [(p["index"], p["reason"]) for p in body["problems"]] == [
        (0, "invalid_field"), (1, "not_granted")]


async def test_changed_grants_count_from_the_next_request(served: Any) -> None:
    """`sources grant` takes effect without a restart and without a new key."""
    client, path, keys, _ = served
    status, _ = await post(client, keys["momentum"], forged_childrens_case())
    assert status == 403
    set_grants(path, "momentum",
               Grants(types=("case.*",), departments=("jobcenter", "boern-familie")))
    status, body = await post(client, keys["momentum"], forged_childrens_case())
    assert status == 503, body  # past the grants now; Kafka is not there


async def test_rotation_grace_then_expiry_at_ingest(served: Any) -> None:
    """After `--rotate` both keys are accepted until the grace ends; then only the new one."""
    client, path, keys, clock = served
    new = rotate_key(path, "momentum", grace=dt.timedelta(hours=24), now=T0)
    empty: list[Any] = []  # an authenticated empty request is 422, an unknown key 401
    assert (await post(client, new, empty))[0] == 422
    clock.now = T0 + dt.timedelta(hours=23)
    assert (await post(client, keys["momentum"], empty))[0] == 422
    clock.now = T0 + dt.timedelta(hours=24, seconds=1)
    assert (await post(client, keys["momentum"], empty))[0] == 401
    assert (await post(client, new, empty))[0] == 422


async def test_revocation_counts_from_the_next_request(served: Any) -> None:
    """`sources revoke` refuses the source's keys at once, without a restart."""
    client, path, keys, _ = served
    assert (await post(client, keys["cpr"], []))[0] == 422
    revoke_source(path, "cpr")
    assert (await post(client, keys["cpr"], []))[0] == 401
    assert (await post(client, keys["momentum"], []))[0] == 422


async def test_new_source_is_accepted_without_restart_and_bad_file_keeps_old(
    served: Any,
) -> None:
    """A source added while serve runs is accepted; a broken file keeps the last good one."""
    client, path, keys, _ = served
    dubu = add_source(path, "dubu", demo_grants()["dubu"])
    assert (await post(client, dubu, []))[0] == 422
    path.write_text("sources: [not, a, mapping]\n")
    assert (await post(client, dubu, []))[0] == 422
    assert (await post(client, keys["momentum"], []))[0] == 422
    metrics = await (await client.get("/metrics")).text()
    assert 'advisering_sources_reloads_total{outcome="invalid"}' in metrics


async def test_source_without_grants_is_refused_everything(tmp_path: Path) -> None:
    """A key from a sources file without grants authenticates, but every event is 403."""
    path = tmp_path / "sources.yaml"
    key = add_source(path, "momentum", demo_grants()["momentum"])
    text = path.read_text()
    start = text.index("    grants:")
    end = text.index("    key_sha256:")
    path.write_text(text[:start] + text[end:])
    settings = Settings(bootstrap_servers="127.0.0.1:1", pseudonym_key="k" * 32,
                        sources_file=path, topics_dir=ROOT / "topics")
    client = TestClient(TestServer(create_web_app(settings)))
    await client.start_server()
    try:
        status, body = await post(client, key, demo_scenario()[0][0])
    finally:
        await client.close()
    assert status == 403
    assert "no grants" in body["problems"][0]["message"]
