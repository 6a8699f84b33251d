"""One hop where it can: multi-party events reach every party, old keys still work (real broker)."""

from __future__ import annotations

import copy
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from advisering.dev.scenario import DEMO_EXPECTED, demo_scenario, synthetic_cpr
from advisering.edge.prepare import prepare_event
from advisering.events import CaseEvent, encode_event
from advisering.kafka.topics import CASE_EVENTS, NOTIFICATIONS, load_vocabulary
from advisering.privacy import pseudonymise
from advisering.settings import Settings
from advisering.testing import end_offsets, kafka_at
from advisering.worker.sending import partition_for
from tests.integration.bus import ROOT, WorkerProcess, run_cli, write_jsonl
from tests.integration.test_pipeline import (
    key_of,
    notifications_for,
    routes,
    scenario_citizens,
)

PARTITIONS = Settings().worker_partitions


def fresh(template: dict[str, Any], parties: list[str]) -> dict[str, Any]:
    """The template event with a new id, a new case id and these parties (CPR numbers)."""
    event = copy.deepcopy(template)
    event["id"] = str(uuid.uuid4())
    event["data"]["case"]["id"] += "-" + uuid.uuid4().hex[:6]
    event["subject"] = event["data"]["case"]["id"]
    event["data"]["parties"] = [{"cpr": cpr, "role": "primaer"} for cpr in parties]
    return event


def publish(worker: WorkerProcess, path: Path, events: list[dict[str, Any]]) -> None:
    result = run_cli(worker.env, "publish", str(write_jsonl(path, events)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_multi_party_event_reaches_every_partys_overview(
    worker: WorkerProcess, topics_ready: str, tmp_path: Path,
) -> None:
    """A job-centre case of two citizens on different partitions: each one's later children's
    case sees it (the second party's copy went through the repartition topic)."""
    bootstrap = topics_ready
    key = worker.env["ADVISERING_PSEUDONYM_KEY"].encode()
    first = synthetic_cpr(301)
    second = next(synthetic_cpr(n) for n in range(302, 400)
                  if partition_for(pseudonymise(synthetic_cpr(n), key).encode(), PARTITIONS, 0)
                  != partition_for(pseudonymise(first, key).encode(), PARTITIONS, 0))
    worker.wait_idle(bootstrap)
    before = routes(worker)
    start = end_offsets(kafka_at(bootstrap), NOTIFICATIONS)
    job_centre, children = demo_scenario()[0][0], demo_scenario()[1][0]
    publish(worker, tmp_path / "shared.jsonl", [fresh(job_centre, [first, second])])
    worker.wait_idle(bootstrap)
    moved = routes(worker)
    assert (moved.direct - before.direct, moved.repartitioned - before.repartitioned) == (1, 1)
    publish(worker, tmp_path / "children.jsonl",
            [fresh(children, [first]), fresh(children, [second])])
    worker.wait_idle(bootstrap)
    citizens = {pseudonymise(cpr, key) for cpr in (first, second)}
    found = [n for n in notifications_for(bootstrap, start, citizens)
             if n["rule"] == "ny-boernesag-orientering"]
    assert Counter(n["citizen"] for n in found) == Counter(dict.fromkeys(citizens, 1))


def test_events_keyed_by_case_id_are_still_processed(
    worker: WorkerProcess, topics_ready: str,
) -> None:
    """An older publisher keying by case id, wave by wave: the same notifications as the edge's."""
    bootstrap = topics_ready
    key = worker.env["ADVISERING_PSEUDONYM_KEY"].encode()
    vocabulary = load_vocabulary(ROOT / "topics")
    worker.wait_idle(bootstrap)
    before = routes(worker)
    start = end_offsets(kafka_at(bootstrap), NOTIFICATIONS)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for wave in demo_scenario():
        for raw in wave:
            event = prepare_event(raw, key, vocabulary)
            assert isinstance(event, CaseEvent), event
            old_key = (event.data.case.id if event.data.case else event.id).encode()
            producer.produce(CASE_EVENTS, key=old_key, value=encode_event(event))
        assert producer.flush(30) == 0
        worker.wait_idle(bootstrap)
    found = notifications_for(bootstrap, start, scenario_citizens(key.decode()))
    assert Counter(key_of(n) for n in found) == Counter(dict.fromkeys(DEMO_EXPECTED, 1))
    after = routes(worker)
    assert after.repartitioned > before.repartitioned  # not all landed on their citizen's
    events = sum(len(wave) for wave in demo_scenario())
    assert (after.direct - before.direct) + (after.repartitioned - before.repartitioned) == events
