"""The correlate agent's save-time cap on a citizen's state, under ``agent.test_context()``.

Built like test_worker_agents.py (the real app, the sender's ``send`` an
AsyncMock), with a cap of 1 KiB so a few events pass it: a state that would
encode larger is not written, the batch's events of that citizen are dead
letters (``citizen_state_limit``) and send nothing else, and other citizens in
the same batch are not affected.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock

import orjson
import pytest

from advisering.dev.demo import write_demo_sources
from advisering.events import CaseEvent, encode_event
from advisering.settings import Settings
from advisering.testing import load_matcher_and_vocabulary
from advisering.worker import bundle
from advisering.worker.agent import encode_state
from advisering.worker.app import WorkerApp, create_app
from tests.unit.builders import CITIZEN_A, CITIZEN_B, at, case, event

ROOT = Path(__file__).resolve().parents[2]
CAP = 1024


@pytest.fixture
async def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[WorkerApp]:
    settings = Settings(
        bootstrap_servers="127.0.0.1:1", rules_dir=ROOT / "rules", topics_dir=ROOT / "topics",
        worker_app_id="advisering-limit-tests", worker_store="memory://", worker_partitions=2,
        worker_data_dir=tmp_path / "worker", worker_web_port=6068,
        citizen_max_state_bytes=CAP, sources_file=tmp_path / "sources.yaml",
    )
    matcher, vocabulary = load_matcher_and_vocabulary(settings)
    write_demo_sources(settings.sources_file, vocabulary)
    # No broker: no group membership to confirm, and the test agent numbers records across
    # partitions (the lease and the partition order have their own unit tests).
    app = create_app(settings, matcher, vocabulary, fence=AsyncMock(return_value=None),
                     admit=list)
    app.app.conf.store = "memory://"  # type: ignore[assignment]  # faust coerces to URL
    app.app.finalize()
    app.app.flow_control.resume()
    monkeypatch.setattr(app.sender, "send", AsyncMock(return_value={}))
    yield app


def sent(worker: WorkerApp, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    mock = worker.sender.send
    return [(key, value) for call in mock.await_args_list for name, _, key, value in call.args[0]
            if name == topic]


async def put_batch(agent: Any, pairs: list[tuple[str, CaseEvent]]) -> int:
    """One repartition record carrying ``pairs`` (one batch); what the agent yielded for it."""
    before = agent.processed_offset
    value = bundle.pack((citizen.encode(), encode_event(ev)) for citizen, ev in pairs)
    await asyncio.wait_for(agent.put(value, key=None), 10.0)
    return int(agent.results[before].notified)


def long_case(n: int) -> dict[str, Any]:
    return case(f"MOM-{n:03d}-" + "x" * 100, "jobcenter")


async def test_state_over_the_cap_is_kept_and_its_events_dead_lettered(
    worker: WorkerApp,
) -> None:
    """Over the cap: previous state kept, no notification, one dead letter per event of it."""
    topics = {role: topic.get_topic_name() for role, topic in worker.topics.items()}
    changelog = worker.citizens.changelog_topic.get_topic_name()
    bf = case("DUBU-1", "boern-familie", kle="34.15.00", caseworker="bf-0001")
    async with worker.agent.test_context() as agent:
        agent.original_channel = topics["citizen_events"]  # records come from this topic
        assert await put_batch(agent, [
            (CITIZEN_A, event("case.opened", bf, event_id="a-0", citizen=CITIZEN_A)),
            (CITIZEN_B, event("case.opened", bf, event_id="b-0", citizen=CITIZEN_B)),
        ]) == 0
        before = {key: encode_state(state) for key, state in worker.citizens.items()}
        assert set(before) == {CITIZEN_A.encode(), CITIZEN_B.encode()}

        sanction = event("benefit.changed", case("MOM-1", "jobcenter"), event_id="a-s",
                         citizen=CITIZEN_A, benefit={"action": "sanctioned"}, time=at(1))
        growth = [event("case.opened", long_case(n), event_id=f"a-{n + 1}", citizen=CITIZEN_A,
                        time=at(2)) for n in range(6)]
        other = event("document.added", bf, event_id="b-1", citizen=CITIZEN_B, time=at(1))
        batch = [(CITIZEN_A, sanction), (CITIZEN_B, other)] + [(CITIZEN_A, e) for e in growth]
        assert await put_batch(agent, batch) == 0
    assert sent(worker, topics["notifications"]) == sent(worker, topics["audit"]) == []
    letters = [orjson.loads(value or b"") for _, value in sent(worker, topics["dead_letters"])]
    assert [letter["event_id"] for letter in letters] == ["a-s"] + [e.id for e in growth]
    for letter in letters:
        assert letter["reason"] == "citizen_state_limit"
        assert f"max_state_bytes ({CAP})" in letter["message"]
    after = {key: encode_state(state) for key, state in worker.citizens.items()}
    assert after[CITIZEN_A.encode()] == before[CITIZEN_A.encode()]
    assert after[CITIZEN_B.encode()] != before[CITIZEN_B.encode()]  # the other citizen moved on
    # The second batch wrote B's state only; every record written is within the cap.
    records = sent(worker, changelog)
    assert [key for key, _ in records[2:]] == [CITIZEN_B.encode()]
    assert all(len(value or b"") <= CAP for _, value in records)
