"""The worker's Faust agent under ``agent.test_context()``: no broker, sends recorded.

Each test builds the real app (shipped rules/ and topics/) with create_app and
replaces ``send`` of the agent's BatchSender with an AsyncMock, so what the
agent sends (its records and the table's changelog records) is recorded as
(topic, partition, key, value) and nothing reaches Kafka. The agent reads two
topics; :func:`put` names the one a record comes from (case-events, or the
repartition topic) and its partition. The agent takes events in batches;
``agent.put`` returns once the agent has yielded for the batch holding the
record, which here is that record alone.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, Mock, patch

import orjson
import pytest
from prometheus_client import REGISTRY

from advisering.dev.demo import write_demo_sources
from advisering.dev.scenario import DEMO_EXPECTED, demo_scenario, synthetic_cpr
from advisering.edge.prepare import prepare_event
from advisering.events import CaseEvent, Vocabulary, encode_event
from advisering.kafka.topics import CASE_EVENTS, citizen_topic_name, load_vocabulary
from advisering.privacy import REDACTED, find_cprs, pseudonymise
from advisering.settings import Settings
from advisering.testing import load_matcher_and_vocabulary
from advisering.worker import bundle, faust_door
from advisering.worker.agent import BatchDone
from advisering.worker.app import WorkerApp, create_app
from advisering.worker.sending import SendFailed, partition_for

ROOT = Path(__file__).resolve().parents[2]
KEY = b"agent-tests-pseudonym-key-of-32-bytes"
PUT_TIMEOUT = 10.0
FREE_TEXT_CPR = synthetic_cpr(77)

# The scenario's citizens (synthetic_cpr numbers) and the cases open after all waves.
OPEN_CASES = {
    11: {"MOM-2026-00123", "DUBU-2025-0815", "DUBU-2026-0101"},
    22: {"CARE-2024-3301"},
    33: {"MOM-2026-00456", "SP-2025-0077"},
    44: {"KY-2026-1188", "SKOLE-2026-0042"},
    55: {"CARE-2023-1207", "SUND-2025-0912"},
}


def demo_sources_file(path: Path) -> Path:
    """The demo's source systems with their grants: the worker refuses to start without them."""
    write_demo_sources(path, load_vocabulary(ROOT / "topics"))
    return path


def citizen_key(number: int) -> bytes:
    """The table and repartition key of scenario citizen ``number``."""
    return pseudonymise(synthetic_cpr(number), KEY).encode()


@dataclass
class Harness:
    """The app under test and what its agents sent."""

    worker: WorkerApp
    vocabulary: Vocabulary
    settings: Settings
    owned: set[int]  # the table partitions the agent is told this worker owns
    fence: AsyncMock  # the agent's membership check before it writes states
    admit: Mock  # picks a batch's events to process now (all, unless a test says not)

    @property
    def repartition_topic(self) -> str:
        return self.worker.topics["citizen_events"].get_topic_name()

    def records(self) -> list[tuple[str, int | None, bytes | None, bytes | None]]:
        """Every record handed to the sender, in order."""
        mock = self.worker.sender.send
        return [record for call in mock.await_args_list for record in call.args[0]]

    def sent(self, role: str) -> list[tuple[bytes, bytes]]:
        """(key, value) of every record sent to the topic of ``role``, in order.

        For citizen_events: (pseudonym, event) of every citizen event the
        repartition records carry.
        """
        topic = self.worker.topics[role].get_topic_name()
        found = [(key, value) for name, _, key, value in self.records() if name == topic]
        if role == "citizen_events":
            return [pair for key, value in found for pair in bundle.unpack(value)]
        return [(key or b"", value or b"") for key, value in found]

    def sent_json(self, role: str) -> list[tuple[bytes, dict[str, Any]]]:
        return [(key, orjson.loads(value)) for key, value in self.sent(role)]

    def all_sent_bytes(self) -> bytes:
        return b"\n".join(k + b"\t" + v for role in self.worker.topics for k, v in self.sent(role))

    def table(self) -> dict[bytes, dict[str, Any]]:
        """The citizens table as JSON, per pseudonym key."""
        return {key: state.to_json() for key, state in self.worker.citizens.items()}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        bootstrap_servers="127.0.0.1:1",  # nothing listens there: a stray connect fails
        pseudonym_key=KEY.decode(),
        rules_dir=ROOT / "rules",
        topics_dir=ROOT / "topics",
        worker_app_id="advisering-agent-tests",
        worker_store="memory://",
        worker_partitions=2,
        worker_data_dir=tmp_path / "worker",
        worker_web_port=6067,
        sources_file=demo_sources_file(tmp_path / "sources.yaml"),
    )


@pytest.fixture
async def harness(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    matcher, vocabulary = load_matcher_and_vocabulary(settings)
    # One worker owning every partition of the table, as a worker alone in its group does.
    owned = set(range(settings.worker_partitions))
    fence = AsyncMock(return_value=None)  # a member in good standing, unless a test says not
    # The test agent numbers records across partitions, so they are not in offset order per
    # partition: every event is admitted (tests/unit/test_partition_order.py tests the order).
    admit = Mock(side_effect=list)
    worker = create_app(settings, matcher, vocabulary, owned_partitions=lambda: owned,
                        fence=fence, admit=admit)
    worker.app.conf.store = "memory://"  # type: ignore[assignment]  # faust coerces to URL
    worker.app.finalize()
    worker.app.flow_control.resume()
    monkeypatch.setattr(worker.sender, "send", AsyncMock(return_value={}))
    yield Harness(worker, vocabulary, settings, owned, fence, admit)
    assert not worker.app.producer.started
    assert not worker.app.consumer.started


def aim(agent: Any, topic: str) -> Any:
    """Make the test agent's next records come from ``topic`` (the wrapper names them so)."""
    agent.original_channel = topic
    return agent


async def put(agent: Any, value: bytes, key: bytes, *, topic: str = CASE_EVENTS,
              partition: int = 0) -> BatchDone:
    """Put one record read from ``topic``, wait until the agent yields for it; what it yielded."""
    before = agent.processed_offset
    await asyncio.wait_for(aim(agent, topic).put(value, key=key, partition=partition),
                           PUT_TIMEOUT)
    assert agent.processed_offset == before + 1
    done = agent.results[before]
    assert isinstance(done, BatchDone)
    return done


def home(citizen: bytes, harness: Harness) -> int:
    """The partition of a citizen's state (and of events keyed by its pseudonym)."""
    return partition_for(citizen, harness.settings.worker_partitions, 0)


def prepared(raw: dict[str, Any], vocabulary: Vocabulary) -> CaseEvent:
    result = prepare_event(raw, KEY, vocabulary)
    assert isinstance(result, CaseEvent), result
    return result


def as_json(event: CaseEvent) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude_none=True)


def assert_no_cpr(data: bytes, *cprs: str) -> None:
    text = data.decode("utf-8", errors="replace")
    assert find_cprs(text) == []
    for cpr in cprs:
        assert cpr not in text
        assert cpr.replace("-", "") not in text


# -- intake ------------------------------------------------------------------------------

async def test_valid_event_goes_to_citizen_events_once_per_distinct_party(
    harness: Harness,
) -> None:
    """Owning no partition of the table: every distinct party's copy moves, by its pseudonym."""
    harness.owned.clear()
    raw = demo_scenario()[0][0]
    raw["data"]["parties"] = [
        {"cpr": synthetic_cpr(11), "role": "primaer"},
        {"cpr": synthetic_cpr(66), "role": "medpart"},
        {"cpr": synthetic_cpr(11), "role": "vaerge"},  # the same citizen again
    ]
    payload = encode_event(prepared(raw, harness.vocabulary))
    async with harness.worker.agent.test_context() as agent:
        assert await put(agent, payload, key=b"MOM-2026-00123") == BatchDone(0, 2, 0, 0)
    assert harness.sent("citizen_events") == [(citizen_key(11), payload),
                                              (citizen_key(66), payload)]
    assert harness.sent("dead_letters") == []
    assert harness.sent("notifications") == harness.sent("audit") == []
    assert_no_cpr(harness.all_sent_bytes(), synthetic_cpr(11), synthetic_cpr(66))


def not_json(_: dict[str, Any]) -> bytes:
    return b"not json"


def not_json_with_cpr(_: dict[str, Any]) -> bytes:
    return b'{"note": "ring ' + FREE_TEXT_CPR.encode() + b'", oops'


def cpr_in_free_text(base: dict[str, Any]) -> bytes:
    return orjson.dumps(dict(base, data=dict(base["data"], note=f"ring om {FREE_TEXT_CPR}")))


def unknown_type(base: dict[str, Any]) -> bytes:
    return orjson.dumps(dict(base, type="case.exploded"))


@pytest.mark.parametrize(
    ("build", "reason", "source"),
    [
        (not_json, "not_json", "unknown"),
        (not_json_with_cpr, "not_json", "unknown"),
        (cpr_in_free_text, "cpr_detected", "momentum"),
        (unknown_type, "unknown_type", "momentum"),
    ],
    ids=["not-json", "not-json-with-cpr", "cpr-in-free-text", "unknown-type"],
)
async def test_invalid_payload_is_dead_lettered_with_reason_and_cpr_redacted(
    harness: Harness, build: Callable[[dict[str, Any]], bytes], reason: str, source: str,
) -> None:
    """Invalid input goes to dead_letters with its reason, CPR redacted, nothing repartitioned."""
    base = as_json(prepared(demo_scenario()[0][0], harness.vocabulary))
    payload = build(base)
    async with harness.worker.agent.test_context() as agent:
        assert await put(agent, payload, key=b"MOM-2026-00123") == BatchDone(0, 0, 0, 0)
    assert harness.sent("citizen_events") == []
    [(key, raw_letter)] = harness.sent("dead_letters")
    letter = orjson.loads(raw_letter)
    assert key == source.encode()
    assert letter["reason"] == reason
    assert (letter["topic"], letter["partition"], letter["offset"]) == (CASE_EVENTS, 0, 0)
    assert_no_cpr(raw_letter, FREE_TEXT_CPR)
    if FREE_TEXT_CPR.encode() in payload:
        assert REDACTED in letter["payload"]
    if reason == "cpr_detected":
        assert letter["path"] == "data.note"
        assert letter["event_id"] == base["id"]


async def test_intake_keeps_running_after_bad_input(harness: Harness) -> None:
    """After invalid records the agent still routes the next valid event."""
    event = prepared(demo_scenario()[0][0], harness.vocabulary)
    payload = encode_event(event)
    elsewhere = 1 - home(citizen_key(11), harness)  # an old key's partition, not the citizen's
    async with harness.worker.agent.test_context() as agent:
        assert await put(agent, b"not json", key=b"x") == BatchDone(0, 0, 0, 0)
        assert await put(agent, cpr_in_free_text(as_json(event)), key=b"x") == BatchDone(0, 0, 0, 0)
        assert await put(agent, payload, key=b"MOM-2026-00123",
                         partition=elsewhere) == BatchDone(0, 1, 0, 0)
    assert [letter["reason"] for _, letter in harness.sent_json("dead_letters")] == [
        "not_json", "cpr_detected"]
    assert harness.sent("citizen_events") == [(citizen_key(11), payload)]


# -- correlate ---------------------------------------------------------------------------

def scenario_events(vocabulary: Vocabulary) -> list[CaseEvent]:
    """The demo scenario pseudonymised with KEY, wave after wave."""
    return [prepared(raw, vocabulary) for wave in demo_scenario() for raw in wave]


def one_event(citizen: bytes, payload: bytes) -> bytes:
    """A repartition record carrying one citizen event."""
    return bundle.pack([(citizen, payload)])


async def put_events(agent: Any, events: list[CaseEvent], harness: Harness) -> list[int]:
    """Put each event as its (only) citizen's repartition record; the notifications of each."""
    yielded = []
    for event in events:
        [party] = event.data.parties
        citizen = party.citizen.encode()
        done = await put(agent, one_event(citizen, encode_event(event)), key=citizen,
                         topic=harness.repartition_topic, partition=home(citizen, harness))
        assert (done.direct, done.repartitioned, done.arrived) == (0, 0, 1)
        yielded.append(done.notified)
    return yielded


def notification_key(notification: dict[str, Any]) -> tuple[str, str, str]:
    recipient = notification["recipient"]
    return (notification["rule"], recipient["caseworker"] or f"unit:{recipient['unit']}",
            notification["related_case"]["id"])


def repeats_skipped() -> float:
    return REGISTRY.get_sample_value("advisering_repeats_skipped_total") or 0.0


async def test_demo_scenario_gives_expected_notifications_audit_and_table(
    harness: Harness,
) -> None:
    """The demo scenario gives exactly DEMO_EXPECTED, one audit record each, and open cases."""
    async with harness.worker.agent.test_context() as agent:
        yielded = await put_events(agent, scenario_events(harness.vocabulary), harness)
    notifications = harness.sent_json("notifications")
    assert sum(yielded) == len(notifications) == len(DEMO_EXPECTED)
    assert Counter(notification_key(n) for _, n in notifications) == Counter(
        dict.fromkeys(DEMO_EXPECTED, 1))
    citizens = {citizen_key(number) for number in OPEN_CASES}
    for key, notification in notifications:
        assert key.decode() == notification_key(notification)[1]
        assert notification["citizen"].encode() in citizens
        assert notification["legal_basis"]
        assert "{" not in notification["message"]
    audit = harness.sent_json("audit")
    assert sorted((key, record["notification_id"]) for key, record in audit) == sorted(
        (n["citizen"].encode(), n["id"]) for _, n in notifications)
    for _, record in audit:
        assert record["citizen"].encode() in citizens
    assert harness.sent("dead_letters") == harness.sent("citizen_events") == []
    table = harness.table()
    assert {key: {case["id"] for case in state["cases"]} for key, state in table.items()} == {
        citizen_key(number): cases for number, cases in OPEN_CASES.items()}
    assert_no_cpr(harness.all_sent_bytes(), *(synthetic_cpr(n) for n in (11, 22, 33, 44, 55)))


async def test_redelivered_event_gives_no_new_notification(harness: Harness) -> None:
    """Re-putting an event right after it notifies nobody again; a new event id does."""
    events = scenario_events(harness.vocabulary)
    duplicates_before = repeats_skipped()
    async with harness.worker.agent.test_context() as agent:
        for event in events:
            await put_events(agent, [event], harness)
            table_after_first = harness.table()
            assert await put_events(agent, [event], harness) == [0]
            assert harness.table() == table_after_first
        # Caught by the processed-event memory: one redelivery counted per event.
        assert repeats_skipped() - duplicates_before == len(events)
        notifications = harness.sent_json("notifications")
        assert Counter(notification_key(n) for _, n in notifications) == Counter(
            dict.fromkeys(DEMO_EXPECTED, 1))
        assert len(harness.sent("audit")) == len(notifications)

        # The same news under a new event id is a new event (the death rule has no throttle).
        [death] = [e for e in events if e.type == "citizen.deceased"]
        again = CaseEvent.model_validate(dict(as_json(death), id="second-death-registration"))
        assert await put_events(agent, [again], harness) == [2]
    assert harness.sent("dead_letters") == []


async def test_replayed_scenario_gives_no_new_notification(harness: Harness) -> None:
    """Replaying every processed event after later ones (state ahead of offsets) notifies nobody."""
    events = scenario_events(harness.vocabulary)
    async with harness.worker.agent.test_context() as agent:
        await put_events(agent, events, harness)
        sent_before = harness.sent_json("notifications")
        table_before = harness.table()
        duplicates_before = repeats_skipped()

        yielded = await put_events(agent, events, harness)
        new = [notification_key(n) for _, n in harness.sent_json("notifications")[
            len(sent_before):]]
        assert new == []
        assert yielded == [0] * len(events)
        assert len(harness.sent("audit")) == len(sent_before)
        assert repeats_skipped() - duplicates_before == len(events)
        assert harness.table() == table_before


async def test_engine_failure_is_dead_lettered_and_correlate_continues(
    harness: Harness,
) -> None:
    """An engine exception sends a processing_error dead letter; the next events still work."""
    opened, child_opened = (prepared(demo_scenario()[wave][0], harness.vocabulary)
                            for wave in (0, 1))
    parent = citizen_key(11)
    where = {"topic": harness.repartition_topic, "partition": home(parent, harness)}
    async with harness.worker.agent.test_context() as agent:
        with patch("advisering.worker.steps.process", side_effect=RuntimeError("engine bug")):
            done = await put(agent, one_event(parent, encode_event(opened)), key=parent, **where)
            assert done.notified == 0
        [(key, letter)] = harness.sent_json("dead_letters")
        assert key == b"momentum"
        assert letter["reason"] == "processing_error"
        assert letter["message"] == "RuntimeError"
        assert letter["event_id"] == opened.id
        assert letter["topic"] == citizen_topic_name(harness.settings.worker_app_id)
        assert parent not in harness.table()

        done = await put(agent, one_event(parent, encode_event(opened)), key=parent, **where)
        assert done.notified == 0
        done = await put(agent, one_event(parent, encode_event(child_opened)), key=parent,
                         **where)
        assert done.notified == 1
    [(_, notification)] = harness.sent_json("notifications")
    assert notification_key(notification) == (
        "ny-boernesag-orientering", "bf-0042", "DUBU-2025-0815")
    assert {case["id"] for case in harness.table()[parent]["cases"]} == {
        "MOM-2026-00123", "DUBU-2025-0815"}
    assert len(harness.sent("dead_letters")) == 1


async def test_undecodable_repartitioned_record_is_dead_lettered(harness: Harness) -> None:
    """A repartitioned record that is no CaseEvent is dead-lettered with why, CPR redacted."""
    parent = citizen_key(11)
    payload = b'{"id": "x", "note": "' + FREE_TEXT_CPR.encode() + b'"}'
    async with harness.worker.agent.test_context() as agent:
        done = await put(agent, one_event(parent, payload), key=parent,
                         topic=harness.repartition_topic, partition=home(parent, harness))
        assert done.notified == 0
    [(key, raw_letter)] = harness.sent("dead_letters")
    letter = orjson.loads(raw_letter)
    assert (key, letter["reason"]) == (b"unknown", "missing_field")
    assert_no_cpr(raw_letter, FREE_TEXT_CPR)
    assert harness.table() == {}
    assert harness.sent("notifications") == harness.sent("audit") == []


async def test_one_batch_of_the_whole_scenario_gives_the_same_notifications(
    harness: Harness,
) -> None:
    """Events of one citizen within one batch see each other's news: same result as one by one."""
    events = scenario_events(harness.vocabulary)
    async with harness.worker.agent.test_context() as agent:
        aim(agent, harness.repartition_topic)
        for event in events:
            [party] = event.data.parties
            citizen = party.citizen.encode()
            await agent.put(one_event(citizen, encode_event(event)), key=citizen,
                            partition=home(citizen, harness), wait=False)
        async with asyncio.timeout(PUT_TIMEOUT):
            while len(harness.sent("notifications")) < len(DEMO_EXPECTED):
                await asyncio.sleep(0.01)
        assert agent.processed_offset < len(events)  # fewer batches than events
    notifications = harness.sent_json("notifications")
    assert Counter(notification_key(n) for _, n in notifications) == Counter(
        dict.fromkeys(DEMO_EXPECTED, 1))
    assert {key: {case["id"] for case in state["cases"]}
            for key, state in harness.table().items()} == {
        citizen_key(number): cases for number, cases in OPEN_CASES.items()}


async def test_state_is_saved_after_the_notifications_on_the_events_partition(
    harness: Harness,
) -> None:
    """Per batch the notifications first, then one changelog record per citizen on its partition."""
    events = scenario_events(harness.vocabulary)
    changelog = harness.worker.citizens.changelog_topic.get_topic_name()
    partitions: dict[bytes, int] = {}
    async with harness.worker.agent.test_context() as agent:
        for event in events:
            [party] = event.data.parties
            citizen = party.citizen.encode()
            partitions[citizen] = home(citizen, harness)
            await put(agent, one_event(citizen, encode_event(event)), key=citizen,
                      topic=harness.repartition_topic, partition=partitions[citizen])
    calls = [call.args[0] for call in harness.worker.sender.send.await_args_list]
    assert len(calls) == 2 * len(events)  # per batch: the outputs, then the states
    saved: dict[bytes, bytes | None] = {}
    for outputs, states in zip(calls[0::2], calls[1::2], strict=True):
        assert all(record[0] != changelog for record in outputs)
        [(topic, partition, key, value)] = states  # one event per batch: one citizen
        assert key is not None
        assert (topic, partition) == (changelog, partitions[key])
        saved[key] = value
    assert {key: orjson.loads(value) for key, value in saved.items() if value} == harness.table()


async def wait_for_notifications(harness: Harness, count: int) -> None:
    await until(lambda: len(harness.sent("notifications")) >= count)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(PUT_TIMEOUT):
        while not condition():
            await asyncio.sleep(0.01)


def moved_records(harness: Harness) -> list[tuple[int, bytes]]:
    """(partition, value) of every repartition record sent so far, in order."""
    found = []
    for name, partition, _, value in harness.records():
        if name == harness.repartition_topic:
            assert partition is not None and value is not None
            found.append((partition, value))
    return found


async def read_back(agent: Any, harness: Harness,
                    records: list[tuple[int, bytes]] | None = None) -> int:
    """Put repartition records (all sent so far) back on the agent; the citizen events in them."""
    records = moved_records(harness) if records is None else records
    aim(agent, harness.repartition_topic)
    for partition, value in records:
        await agent.put(value, key=None, partition=partition, wait=False)
    return sum(len(bundle.unpack(value)) for _, value in records)


def total(agent: Any, count: str) -> int:
    """One of :class:`BatchDone`'s counts, summed over every batch the agent yielded."""
    return sum(getattr(done, count) for done in agent.results.values())


def routed(agent: Any) -> int:
    """Citizen copies of case events the agent has processed or moved so far."""
    return total(agent, "direct") + total(agent, "repartitioned")


def demo_counter() -> Counter[tuple[str, str, str]]:
    return Counter(dict.fromkeys(DEMO_EXPECTED, 1))


async def test_events_keyed_by_citizen_are_processed_in_one_hop(harness: Harness) -> None:
    """Case events on their first party's partition go straight to the engine: nothing moves."""
    events = scenario_events(harness.vocabulary)
    async with harness.worker.agent.test_context() as agent:
        done = [await put(agent, encode_event(event), key=event.key.encode(),
                          partition=home(event.key.encode(), harness)) for event in events]
    assert [(d.direct, d.repartitioned) for d in done] == [(1, 0)] * len(events)
    assert harness.sent("citizen_events") == []
    notifications = harness.sent_json("notifications")
    assert sum(d.notified for d in done) == len(notifications)
    assert Counter(notification_key(n) for _, n in notifications) == demo_counter()
    assert {key: {case["id"] for case in state["cases"]}
            for key, state in harness.table().items()} == {
        citizen_key(number): cases for number, cases in OPEN_CASES.items()}


async def test_a_copy_whose_partition_this_worker_does_not_own_moves(harness: Harness) -> None:
    """On its citizen's partition but that table partition is another worker's: it moves."""
    event = scenario_events(harness.vocabulary)[0]
    partition = home(event.key.encode(), harness)
    harness.owned.discard(partition)
    async with harness.worker.agent.test_context() as agent:
        done = await put(agent, encode_event(event), key=event.key.encode(), partition=partition)
    assert done == BatchDone(0, 1, 0, 0)
    assert harness.sent("citizen_events") == [(event.key.encode(), encode_event(event))]
    assert harness.table() == {}


async def test_copies_for_other_partitions_move_and_are_processed_when_read_back(
    harness: Harness,
) -> None:
    """A multi-party event: the copy on its partition is processed, the other moves, then counts."""
    raw = demo_scenario()[0][0]
    parent, other = 11, next(n for n in range(100, 200)
                             if home(citizen_key(n), harness) != home(citizen_key(11), harness))
    raw["data"]["parties"] = [{"cpr": synthetic_cpr(parent), "role": "primaer"},
                              {"cpr": synthetic_cpr(other), "role": "medpart"}]
    event = prepared(raw, harness.vocabulary)
    assert event.key.encode() == citizen_key(parent)  # the edge keys by the first party
    async with harness.worker.agent.test_context() as agent:
        assert await put(agent, encode_event(event), key=event.key.encode(),
                         partition=home(citizen_key(parent), harness)) == BatchDone(1, 1, 0, 0)
        assert harness.sent("citizen_events") == [(citizen_key(other), encode_event(event))]
        assert set(harness.table()) == {citizen_key(parent)}
        [(_, partition, _, value)] = [r for r in harness.records()
                                      if r[0] == harness.repartition_topic]
        assert partition == home(citizen_key(other), harness)
        assert value is not None
        done = await put(agent, value, key=b"", topic=harness.repartition_topic,
                         partition=partition)
        assert (done.direct, done.repartitioned, done.arrived) == (0, 0, 1)
    table = harness.table()
    assert set(table) == {citizen_key(parent), citizen_key(other)}
    assert [case["id"] for case in table[citizen_key(other)]["cases"]] == ["MOM-2026-00123"]


async def test_old_keyed_events_are_moved_and_give_the_same_notifications(
    harness: Harness,
) -> None:
    """Events keyed by case id (an older publisher), wave by wave: the same notifications."""
    async with harness.worker.agent.test_context() as agent:
        seen = 0
        for wave in demo_scenario():
            events = [prepared(raw, harness.vocabulary) for raw in wave]
            before = routed(agent)
            aim(agent, CASE_EVENTS)
            for event in events:
                old_key = (event.data.case.id if event.data.case else event.id).encode()
                await agent.put(encode_event(event), key=old_key,
                                partition=partition_for(old_key, 2, 0), wait=False)
            await until(lambda: routed(agent) == before + len(events))  # noqa: B023
            moved = moved_records(harness)[seen:]
            seen += len(moved)
            arrived = total(agent, "arrived")
            copies = await read_back(agent, harness, moved)
            await until(lambda: total(agent, "arrived") == arrived + copies)  # noqa: B023
        # Some sat on their citizen's partition by chance, the others moved.
        assert 0 < total(agent, "direct") < total(agent, "direct") + total(agent, "arrived")
    notifications = harness.sent_json("notifications")
    assert Counter(notification_key(n) for _, n in notifications) == demo_counter()


async def test_intake_sends_one_record_per_partition_that_correlate_reads(
    harness: Harness,
) -> None:
    """Owning no partition: a batch's copies travel one record per partition (their pseudonym's),
    and reading those records back gives exactly the expected notifications."""
    harness.owned.clear()
    events = scenario_events(harness.vocabulary)
    async with harness.worker.agent.test_context() as agent:
        aim(agent, CASE_EVENTS)
        for event in events:
            await agent.put(encode_event(event), key=event.key.encode(),
                            partition=home(event.key.encode(), harness), wait=False)
        async with asyncio.timeout(PUT_TIMEOUT):
            while len(harness.sent("citizen_events")) < len(events):
                await asyncio.sleep(0.01)
        records = [(partition, key, value) for name, partition, key, value in harness.records()
                   if name == harness.repartition_topic]
        assert len(records) < len(events)  # several events per record
        partitions = harness.settings.worker_partitions
        for partition, key, value in records:
            assert key is None and partition is not None and value is not None
            for citizen, _ in bundle.unpack(value):
                assert partition_for(citizen, partitions, 0) == partition
        assert harness.sent("notifications") == []
        assert await read_back(agent, harness) == len(events)
        await wait_for_notifications(harness, len(DEMO_EXPECTED))
    notifications = harness.sent_json("notifications")
    assert Counter(notification_key(n) for _, n in notifications) == demo_counter()


async def test_a_malformed_repartition_record_is_dead_lettered(harness: Harness) -> None:
    """A repartition record the agent cannot read goes to the dead letters, the agent goes on."""
    async with harness.worker.agent.test_context() as agent:
        where = {"topic": harness.repartition_topic}
        assert await put(agent, b"ps1-broken-line-without-event", key=b"",
                         **where) == BatchDone(0, 0, 0, 0)
        # A bare event keyed by its pseudonym is no repartition record either.
        assert await put(agent, b'{"id": "1"}', key=citizen_key(11),
                         **where) == BatchDone(0, 0, 0, 0)
    letters = [orjson.loads(value) for _, value in harness.sent("dead_letters")]
    assert [letter["reason"] for letter in letters] == ["processing_error"] * 2


async def test_a_refused_send_stops_the_worker_before_anything_is_acked(
    harness: Harness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When Kafka refuses the records, the app crashes (a restart redoes the uncommitted events)."""
    crash = AsyncMock(return_value=None)
    monkeypatch.setattr(harness.worker.app, "crash", crash)
    monkeypatch.setattr(harness.worker.sender, "send",
                        AsyncMock(side_effect=SendFailed("1 of 1 batches refused")))
    [event] = scenario_events(harness.vocabulary)[:1]
    async with harness.worker.agent.test_context() as agent:
        aim(agent, CASE_EVENTS)
        with pytest.raises(SendFailed):
            await asyncio.wait_for(agent.put(encode_event(event), key=event.key.encode()),
                                   PUT_TIMEOUT)
    crash.assert_awaited_once()


async def test_states_are_written_only_after_the_membership_is_confirmed(
    harness: Harness,
) -> None:
    """Each batch that changes states asks the fence first, after its notifications are sent."""
    sends_at_fence: list[int] = []
    harness.fence.side_effect = lambda: sends_at_fence.append(
        harness.worker.sender.send.await_count)
    events = scenario_events(harness.vocabulary)[:3]
    async with harness.worker.agent.test_context() as agent:
        await put_events(agent, events, harness)
    # Per batch: outputs sent (1 more send), fence, then the states (1 more send).
    assert sends_at_fence == [1, 3, 5]
    assert harness.worker.sender.send.await_count == 6


async def test_a_lost_membership_stops_the_worker_without_writing_states(
    harness: Harness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker that lost its partitions (a woken zombie) crashes before writing its states."""
    crash = AsyncMock(return_value=None)
    monkeypatch.setattr(harness.worker.app, "crash", crash)
    harness.fence.side_effect = faust_door.MembershipLost("the group's generation is -1")
    changelog = harness.worker.citizens.changelog_topic.get_topic_name()
    [event] = scenario_events(harness.vocabulary)[:1]
    [party] = event.data.parties
    citizen = party.citizen.encode()
    async with harness.worker.agent.test_context() as agent:
        with pytest.raises(faust_door.MembershipLost):
            await asyncio.wait_for(
                aim(agent, harness.repartition_topic).put(
                    one_event(citizen, encode_event(event)), key=citizen,
                    partition=home(citizen, harness)), PUT_TIMEOUT)
    crash.assert_awaited_once()
    assert harness.worker.sender.send.await_count == 1  # the outputs, never the states
    assert not [record for record in harness.records() if record[0] == changelog]
    assert harness.table() == {}


async def test_only_the_events_admitted_in_order_are_processed(harness: Harness) -> None:
    """An event the partition order holds back is neither processed nor sent."""
    harness.admit.side_effect = lambda _events: []  # every event comes too early
    [event] = scenario_events(harness.vocabulary)[:1]
    [party] = event.data.parties
    citizen = party.citizen.encode()
    async with harness.worker.agent.test_context() as agent:
        done = await put(agent, one_event(citizen, encode_event(event)), key=citizen,
                         topic=harness.repartition_topic, partition=home(citizen, harness))
    assert (done.direct, done.repartitioned, done.arrived, done.notified) == (0, 0, 0, 0)
    assert harness.admit.call_count == 1
    assert harness.records() == []
    assert harness.table() == {}


def latency_count() -> float:
    return REGISTRY.get_sample_value("advisering_notification_latency_seconds_count") or 0.0


async def test_publication_to_notification_latency_is_observed_per_one_hop_notification(
    harness: Harness,
) -> None:
    """Each notification of a case event processed where it was read is timed from its record."""
    events = scenario_events(harness.vocabulary)
    before = latency_count()
    async with harness.worker.agent.test_context() as agent:
        done = [await put(agent, encode_event(event), key=event.key.encode(),
                          partition=home(event.key.encode(), harness)) for event in events]
    notified = sum(d.notified for d in done)
    assert notified > 0
    assert latency_count() - before == notified


async def test_repartitioned_events_are_not_timed_from_their_repartition_record(
    harness: Harness,
) -> None:
    """A copy read back from the repartition topic has no publication time: not observed."""
    events = scenario_events(harness.vocabulary)
    before = latency_count()
    async with harness.worker.agent.test_context() as agent:
        assert sum(await put_events(agent, events, harness)) > 0
    assert latency_count() == before


async def test_input_lag_is_exported_and_reads_zero_before_the_consumer_runs(
    harness: Harness,
) -> None:
    """The worker's lag gauges exist per input and are computed at scrape, not crashing early."""
    assert not harness.worker.app.consumer.started
    for role in ("case_events", "citizen_events"):
        assert REGISTRY.get_sample_value(
            "advisering_worker_input_lag_records", {"input": role}) == 0.0
