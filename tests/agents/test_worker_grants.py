"""The intake agent holds events to their source's grants and follows the sources file live."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock

import orjson
import pytest

from advisering.dev.demo import demo_grants
from advisering.dev.scenario import demo_scenario
from advisering.edge.prepare import prepare_event
from advisering.events import CaseEvent, encode_event
from advisering.http.sources import add_source, revoke_source, set_grants
from advisering.kafka.topics import CASE_EVENTS
from advisering.settings import Settings
from advisering.testing import load_matcher_and_vocabulary
from advisering.worker.app import WorkerApp, create_app

ROOT = Path(__file__).resolve().parents[2]
KEY = b"agent-tests-pseudonym-key-of-32-bytes"


@pytest.fixture
async def worker(tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[WorkerApp, Path]]:
    path = tmp_path / "sources.yaml"
    add_source(path, "momentum", demo_grants()["momentum"])
    settings = Settings(bootstrap_servers="127.0.0.1:1", pseudonym_key=KEY.decode(),
                        rules_dir=ROOT / "rules", topics_dir=ROOT / "topics",
                        worker_app_id="advisering-grant-tests", worker_partitions=2,
                        worker_data_dir=tmp_path / "worker", worker_web_port=6068,
                        sources_file=path, sources_reload_seconds=0)
    matcher, vocabulary = load_matcher_and_vocabulary(settings)
    # No broker: no group membership to confirm, and the test agent numbers records across
    # partitions (the lease and the partition order have their own unit tests).
    app = create_app(settings, matcher, vocabulary, fence=AsyncMock(return_value=None),
                     admit=list)
    app.app.conf.store = "memory://"  # type: ignore[assignment]  # faust coerces to URL
    app.app.finalize()
    app.app.flow_control.resume()
    monkeypatch.setattr(app.sender, "send", AsyncMock(return_value={}))
    yield app, path


def payload(raw: dict[str, Any], worker: WorkerApp) -> bytes:
    event = prepare_event(raw, KEY, worker.vocabulary)
    assert isinstance(event, CaseEvent), event
    return encode_event(event)


async def outcome(worker: WorkerApp, value: bytes) -> str:
    """'routed', or the reason of the dead letter the agent sent for case event ``value``."""
    mock = worker.sender.send
    before = len(mock.await_args_list)  # type: ignore[attr-defined]
    async with worker.agent.test_context() as agent:
        agent.original_channel = CASE_EVENTS  # the test wrapper names the record's topic so
        await asyncio.wait_for(agent.put(value, key=b"k"), 10)
    records = [r for call in mock.await_args_list[before:]  # type: ignore[attr-defined]
               for r in call.args[0]]
    letters = [orjson.loads(r[3]) for r in records if r[0] == "advisering.dead-letters"]
    return letters[0]["reason"] if letters else "routed"


async def test_intake_follows_grants_and_sources_without_restart(
    worker: tuple[WorkerApp, Path],
) -> None:
    """Unknown source, then registered, then granted more, then revoked: each counts at once."""
    app, path = worker
    children = demo_scenario()[1][0]  # dubu opening a boern-familie case
    assert await outcome(app, payload(children, app)) == "unknown_source"
    add_source(path, "dubu", demo_grants()["dubu"])
    assert await outcome(app, payload(children, app)) == "routed"
    forged = dict(children, source="momentum")
    assert await outcome(app, payload(forged, app)) == "not_granted"
    momentum = demo_grants()["momentum"]
    set_grants(path, "momentum", momentum.model_copy(
        update={"departments": (*momentum.departments, "boern-familie")}))
    assert await outcome(app, payload(forged, app)) == "routed"
    revoke_source(path, "dubu")
    assert await outcome(app, payload(children, app)) == "unknown_source"
